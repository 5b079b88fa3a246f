"""In-memory fakes for the rollout engine's unit tests (the only place fakes are used).

`FakeBackend` keeps live state in a dict, logs every call in one shared,
ordered log, and reports a host Degraded while its live File content is
"bad", so a release can break one host and a rollback can heal it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backends.base import ApplyResult, HealthReport, Inventory
from reconciler import plan as planner
from reconciler.events import Event
from reconciler.history import History
from reconciler.model import (
    Action,
    App,
    BackendKind,
    BatchSize,
    Change,
    DesiredState,
    HealthStatus,
    LiveResource,
    LiveView,
    Location,
    Resource,
    ResourceId,
    RolloutSpec,
    Target,
)
from reconciler.rollout.runner import Rollout, RolloutOptions

HOSTS = ("h1", "h2", "h3", "h4", "h5")


@dataclass
class FakeBackend:
    target: Target
    hosts: tuple[str, ...]
    log: list[tuple[Any, ...]]
    live: dict[tuple[str, ResourceId], dict[str, Any]] = field(default_factory=dict)
    progressing: dict[str, int] = field(default_factory=dict)
    """app -> probes that answer Progressing before the app turns Healthy."""
    notes: dict[str, str] = field(default_factory=dict)
    """path -> what apply says (ApplyResult.messages) about each change to it, per host."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        desired = {(h, r.id): dict(r.body) for r in resources for h in self.hosts}
        live = {
            k: LiveResource(id=k[1], host=k[0], state=v, owner_app=inventory.get(k))
            for k, v in self.live.items()
        }
        return LiveView(target=self.target.name, hosts=self.hosts, desired=desired, live=live)

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        with self.lock:
            for c in changes:
                self.log.append(("apply", app.name, c.host, c.id.name, c.action.value))
                if c.action is Action.DELETE:
                    self.live.pop((c.host, c.id), None)
                else:
                    self.live[(c.host, c.id)] = dict(c.desired or {})
        said = tuple(f"{c.host}: {self.notes[c.id.name]}" for c in changes
                     if c.id.name in self.notes)
        return ApplyResult(applied=len(changes), messages=said)

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        with self.lock:
            self.log.append(("health", app.name, tuple(hosts)))
            if self.progressing.get(app.name, 0) > 0:
                self.progressing[app.name] -= 1
                return HealthReport(status=HealthStatus.PROGRESSING, message="starting")
            bad = {h for (h, rid), body in self.live.items()
                   if h in hosts and body.get("content") == "bad"
                   and rid in {r.id for r in app.resources}}
        statuses = {h: HealthStatus.DEGRADED if h in bad else HealthStatus.HEALTHY
                    for h in hosts}
        overall = HealthStatus.DEGRADED if bad else HealthStatus.HEALTHY
        return HealthReport(status=overall, hosts=statuses,
                            message=f"bad content on {sorted(bad)}" if bad else "")

    def close(self) -> None:
        pass


def target(name: str = "fleet") -> Target:
    return Target(name=name, backend=BackendKind.VM, options={}, location=Location(file="x"))


def app(
    name: str,
    files: Mapping[str, str],
    *,
    wave: int = 0,
    depends_on: Iterable[str] = (),
    batch: int | None = None,
    max_failures: int = 0,
    target_name: str = "fleet",
) -> App:
    resources = tuple(
        Resource(id=ResourceId(kind="File", name=path), app=name,
                 body={"path": path, "content": content}, location=Location(file="f"))
        for path, content in files.items()
    )
    size = BatchSize(count=batch) if batch else BatchSize(percent=100)
    return App(name=name, target=target_name, wave=wave, depends_on=tuple(depends_on),
               rollout=RolloutSpec(batch=size, max_failures=max_failures),
               resources=resources, timeout=5.0, location=Location(file=f"apps/{name}"))


def desired(revision: str, *apps: App) -> DesiredState:
    return DesiredState(revision=revision, targets={"fleet": target()},
                        apps={a.name: a for a in apps})


@dataclass
class Harness:
    """One fake fleet, a real SQLite history and every event a rollout emitted."""

    history: History
    backend: FakeBackend
    log: list[tuple[Any, ...]]
    events: list[Event]

    def views(self, state: DesiredState) -> dict[str, LiveView]:
        resources = [r for a in state.apps.values() for r in a.resources]
        return {"fleet": self.backend.read_live(resources, self.history.inventory("fleet"))}

    def rollout(self, state: DesiredState, deploy_id: int = 1) -> Rollout:
        return Rollout(deploy_id=deploy_id, desired=state, backends={"fleet": self.backend},
                       recorder=self.history, emit=self.emit,
                       options=RolloutOptions(sleep=lambda _s: None, fleet={"fleet": HOSTS}))

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.history.record_event(event)

    def sync(self, state: DesiredState) -> tuple[Rollout, Any]:
        runner = self.rollout(state)
        steps = planner.plan(state, self.views(state))
        return runner, runner.run_waves(steps)

    def contents(self, path: str) -> dict[str, str]:
        return {h: body["content"] for (h, rid), body in sorted(self.backend.live.items())
                if rid.name == path}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    log: list[tuple[Any, ...]] = []
    history = History(tmp_path)
    history.start_deploy("r", "test")
    yield Harness(history=history, backend=FakeBackend(target(), HOSTS, log), log=log, events=[])
    history.close()
