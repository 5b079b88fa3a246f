"""Builds model objects for plan cases without going through the loader, so the
plan tests pin the planner alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.model import (
    App,
    BackendKind,
    DesiredState,
    LiveResource,
    LiveView,
    Location,
    Resource,
    ResourceId,
    Target,
)

CASES = Path(__file__).parent / "cases"


def rid(text: str) -> ResourceId:
    """"Kind:/vm/path", "Kind/name" or "Kind/namespace/name"."""
    if ":" in text:
        kind, name = text.split(":", 1)
        return ResourceId(kind=kind, name=name)
    parts = text.split("/")
    if len(parts) == 3:
        return ResourceId(kind=parts[0], namespace=parts[1], name=parts[2])
    return ResourceId(kind=parts[0], name=parts[1])


def build_state(apps: Mapping[str, Any], targets: Mapping[str, Any]) -> DesiredState:
    here = Location(file="reconciler.yaml", line=1)
    return DesiredState(
        revision="r1",
        targets={
            name: Target(name=name, backend=BackendKind(t.get("backend", "vm")), options={},
                         location=here)
            for name, t in targets.items()
        },
        apps={name: build_app(name, spec) for name, spec in apps.items()},
    )


def build_app(name: str, spec: Mapping[str, Any]) -> App:
    loc = Location(file=f"apps/{name}/app.yaml", line=1)
    resources = tuple(
        Resource(id=rid(r), app=name, body=dict(body or {}), location=loc,
                 secret=rid(r).kind == "Secret")
        for r, body in (spec.get("resources") or {}).items()
    )
    return App(
        name=name, target=spec.get("target", "t"), wave=int(spec.get("wave", 0)),
        depends_on=tuple(spec.get("depends_on", ())), resources=resources,
        prune=bool(spec.get("prune", True)), location=loc,
    )


def build_view(target: str, spec: Mapping[str, Any], state: DesiredState) -> LiveView:
    hosts = tuple(spec.get("hosts", [""]))
    desired = {
        (h, r.id): r.body
        for app in state.apps.values() if app.target == target
        for r in app.resources for h in hosts
    }
    live = {}
    for entry in spec.get("live", []):
        key = (entry.get("host", ""), rid(entry["id"]))
        live[key] = LiveResource(id=key[1], host=key[0], state=dict(entry.get("state") or {}),
                                 owner_app=entry.get("owner"))
    return LiveView(target=target, hosts=hosts, desired=desired, live=live)


def load_case(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return data
