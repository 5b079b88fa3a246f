"""Small builders for YARN backend tests: specs, apps, and a stand-in for `plan`.

`changes()` follows the plan rules of docs/architecture.md (create when
nothing is live, update when comparable forms differ, delete what the app owns
and no longer names) so these tests exercise the backend without the planner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backends.base import Inventory
from reconciler.model import (
    Action,
    App,
    Change,
    LiveView,
    Location,
    Resource,
    ResourceId,
)

TARGET = "analytics"


def service_spec(
    name: str = "sleeper",
    *,
    version: str = "1.0.0",
    count: int = 2,
    command: str = "sleep 900000",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "components": [
            {
                "name": "sleeper",
                "number_of_containers": count,
                "artifact": {"id": "centos:7", "type": "DOCKER"},
                "launch_command": command,
                "resource": {"cpus": 1, "memory": "256"},
            }
        ],
        **extra,
    }


def resource(body: Mapping[str, Any], app: str = "batch") -> Resource:
    return Resource(
        id=ResourceId(kind="Service", name=str(body["name"])),
        app=app,
        body=body,
        location=Location(file=f"apps/{app}/{body['name']}.yaml", line=1),
    )


def app_of(*bodies: Mapping[str, Any], name: str = "batch") -> App:
    return App(
        name=name,
        target=TARGET,
        resources=tuple(resource(b, name) for b in bodies),
        location=Location(file=f"apps/{name}/app.yaml"),
    )


def changes(view: LiveView, app: App) -> list[Change]:
    by_id = {r.id: r for r in app.resources}
    out: list[Change] = []
    for key, want in sorted(view.desired.items()):
        live = view.live.get(key)
        if live is None or dict(live.state) != dict(want):
            out.append(
                Change(
                    id=key[1],
                    app=app.name,
                    target=view.target,
                    action=Action.CREATE if live is None else Action.UPDATE,
                    desired=want,
                    live=None if live is None else live.state,
                    resource=by_id[key[1]],
                )
            )
    for key, live in sorted(view.live.items()):
        if live.owner_app == app.name and key not in view.desired:
            out.append(
                Change(
                    id=key[1],
                    app=app.name,
                    target=view.target,
                    action=Action.DELETE,
                    live=live.state,
                )
            )
    return out


def inventory_of(names: Sequence[str], app: str = "batch") -> Inventory:
    return {("", ResourceId(kind="Service", name=n)): app for n in names}
