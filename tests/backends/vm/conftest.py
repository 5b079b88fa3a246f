"""Builders for VM backend tests: targets, resources, apps, and a plan-like diff.

`changes` compares a LiveView the way reconciler.plan does (create when nothing
is live, update when the comparable forms differ), so these tests exercise the
backend without depending on the planner.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from backends.base import BackendContext
from backends.vm import VmBackend
from backends.vm import open as open_vm
from reconciler import plan as planner
from reconciler.model import (
    Action,
    App,
    BackendKind,
    Change,
    CheckKind,
    DesiredState,
    HealthCheck,
    LiveView,
    Location,
    Plan,
    Resource,
    ResourceId,
    Target,
)
from tests.support.sshd import SshFleet

HERE = Location(file="apps/test/app.yaml", line=1)


def resource(kind: str, name: str, app: str = "web", *, secret: bool = False,
             **body: Any) -> Resource:
    return Resource(id=ResourceId(kind=kind, name=name), app=app, body=body,
                    location=HERE, secret=secret)


def app(resources: Sequence[Resource], *, name: str = "web",
        health: Sequence[HealthCheck] = ()) -> App:
    return App(name=name, target="vm", resources=tuple(resources), health=tuple(health),
               location=HERE)


def check(kind: CheckKind, **spec: Any) -> HealthCheck:
    return HealthCheck(kind=kind, spec=spec, timeout=5.0, location=HERE)


def target(**options: Any) -> Target:
    return Target(name="vm", backend=BackendKind.VM, options=options, location=HERE)


def changes(view: LiveView, the_app: App) -> list[Change]:
    out: list[Change] = []
    for res in the_app.resources:
        for host in view.hosts:
            want = view.desired[(host, res.id)]
            have = view.live.get((host, res.id))
            if have is not None and dict(have.state) == dict(want):
                continue
            out.append(Change(
                id=res.id, app=the_app.name, target="vm", host=host, resource=res,
                action=Action.CREATE if have is None else Action.UPDATE,
                desired=want, live=None if have is None else have.state,
            ))
    return out


def inventory_of(view: LiveView, the_app: App) -> Mapping[tuple[str, ResourceId], str]:
    return {(h, r.id): the_app.name for h in view.hosts for r in the_app.resources}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def local_backend(tmp_path: Path) -> Iterator[VmBackend]:
    backend = open_vm(target(transport="local", root=str(tmp_path / "root")),
                      BackendContext(data_dir=tmp_path / "data"))
    (tmp_path / "root").mkdir()
    yield backend
    backend.close()


def ssh_target(fleet: SshFleet, root: str, **extra: Any) -> Target:
    options: dict[str, Any] = {
        "transport": "ssh", "hosts": [h.spec for h in fleet.hosts], "user": fleet.user,
        "identity_file": str(fleet.identity_file), "known_hosts": str(fleet.known_hosts),
        "root": root, "connect_timeout": 5,
    }
    options.update(extra)
    return target(**options)


def plan_for(view: LiveView, *apps: App) -> Plan:
    """reconciler.plan over one VM target's view: the diffs a reviewer sees."""
    desired = DesiredState(revision="r", targets={"vm": target()},
                           apps={a.name: a for a in apps})
    return planner.plan(desired, {"vm": view})
