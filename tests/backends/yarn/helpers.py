"""Small builders for YARN backend tests: specs, apps, a health poller, and a
stand-in for `plan`.

`changes()` follows the plan rules of docs/architecture.md (create when
nothing is live, update when comparable forms differ, delete what the app owns
and no longer names) so these tests exercise the backend without the planner.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from backends.base import Backend, Inventory
from reconciler.model import (
    Action,
    App,
    Change,
    HealthStatus,
    LiveView,
    Location,
    Resource,
    ResourceId,
)

TARGET = "analytics"
SVC = "/app/v1/services"


def service_spec(
    name: str = "sleeper",
    *,
    version: str = "1.0.0",
    count: int = 2,
    command: str = "sleep 900000",
    **extra: Any,
) -> dict[str, Any]:
    """One component running `command` as a local process (no artifact)."""
    return {
        "name": name,
        "version": version,
        "components": [
            {
                "name": "sleeper",
                "number_of_containers": count,
                "launch_command": command,
                "resource": {"cpus": 1, "memory": "128"},
            }
        ],
        **extra,
    }


def sync(backend: Backend, app: App, inventory: Inventory | None = None) -> list[Change]:
    view = backend.read_live(app.resources, inventory or {})
    todo = changes(view, app)
    backend.apply(app, todo)
    return todo


def wait_health(
    backend: Backend, app: App, want: HealthStatus = HealthStatus.HEALTHY, timeout: float = 120.0
) -> tuple[HealthStatus, list[HealthStatus]]:
    """Poll health every half second until `want` or `timeout`; (last, all seen)."""
    seen: list[HealthStatus] = []
    deadline = time.monotonic() + timeout
    while True:
        status = backend.health(app, [""]).status
        seen.append(status)
        if status == want or time.monotonic() > deadline:
            return status, seen
        time.sleep(0.5)


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
