"""The rollout in progress, folded from engine events into one immutable value.

The status page shows "wave n of m" and every app and host with its state while
a deploy runs. The engine does not keep such a picture (it emits events and
forgets), so this module folds the event stream into a `RolloutState`: `fold`
is pure (state, event, layout -> state), and `RolloutTracker` holds the latest
value behind a lock for the HTTP threads.

Invariants:
- `fold` never raises on an event it did not expect (a tracker started in the
  middle of a deploy, a wave the layout did not name): it adds what it learns.
- Events of a rollback carry the old revision; they move host states but never
  overwrite the result the app had in this deploy.
- Only engine vocabulary flows in (app, target and host names, statuses and
  the engine's messages), never resource bodies, so no secret can reach here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from reconciler.events import Event, EventKind
from reconciler.model import HealthStatus
from reconciler.outcomes import DeployResult, StepStatus

Layout = tuple[tuple[int, tuple[tuple[str, str], ...]], ...]
"""Waves in order, each with its (app, target) pairs: what a deploy is expected to touch."""


class Shown(StrEnum):
    """States the page shows between the engine's outcomes (reconciler.outcomes), which
    it shows as they are: a wave, app or host not reached yet, or one in flight."""

    PENDING = "pending"
    RUNNING = "running"
    APPLYING = "applying"
    CHECKING = "checking"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"
    ROLLING_BACK = "rolling back"


@dataclass(frozen=True, kw_only=True)
class HostState:
    host: str
    state: str = Shown.PENDING
    """pending, applying, checking, healthy, degraded or failed."""


@dataclass(frozen=True, kw_only=True)
class AppState:
    app: str
    target: str
    wave: int
    state: str = Shown.PENDING
    """pending, running, success, failure, skipped, halted, rolling back, rolled back."""
    health: str = ""
    hosts: tuple[HostState, ...] = ()
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class WaveState:
    wave: int
    state: str = Shown.PENDING
    apps: tuple[AppState, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RolloutState:
    deploy_id: int
    revision: str
    started: float
    state: str = DeployResult.RUNNING
    """A DeployResult: running, then how the deploy ended."""
    current_wave: int | None = None
    waves: tuple[WaveState, ...] = ()
    message: str = ""
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.state == DeployResult.RUNNING

    def position(self) -> tuple[int, int]:
        """(n, m) for "wave n of m"; n is 0 before the first wave starts."""
        numbers = [w.wave for w in self.waves]
        n = numbers.index(self.current_wave) + 1 if self.current_wave in numbers else 0
        return n, len(numbers)


def start(event: Event, layout: Layout) -> RolloutState:
    waves = tuple(
        WaveState(wave=number, apps=tuple(AppState(app=a, target=t, wave=number) for a, t in apps))
        for number, apps in layout
    )
    return RolloutState(deploy_id=event.deploy_id, revision=event.revision,
                        started=event.timestamp, waves=waves)


def fold(state: RolloutState | None, event: Event, layout: Layout = ()) -> RolloutState:
    """The rollout after `event`. A new deploy id starts a fresh picture."""
    if state is None or state.deploy_id != event.deploy_id:
        state = start(event, layout)
    kind = event.kind
    if kind is EventKind.DEPLOY_STARTED:
        return replace(state, state=DeployResult.RUNNING)
    if kind is EventKind.DEPLOY_FINISHED:
        return replace(state, state=event.status or DeployResult.SUCCESS, message=event.message,
                       finished=event.timestamp)
    if kind in (EventKind.WAVE_STARTED, EventKind.WAVE_DONE) and event.wave is not None:
        status: str = StepStatus.RUNNING if kind is EventKind.WAVE_STARTED else event.status
        state = _with_wave(state, event.wave, lambda w: replace(w, state=status))
        return replace(state, current_wave=event.wave) if status == StepStatus.RUNNING else state
    if event.app and event.wave is not None:
        own = event.revision == state.revision
        return _with_app(state, event, lambda a: _app_step(a, event, own))
    return state


def _app_step(app: AppState, event: Event, own: bool) -> AppState:
    kind = event.kind
    if kind is EventKind.ROLLBACK_STARTED:
        return replace(app, state=Shown.ROLLING_BACK, message=event.message or app.message)
    if kind is EventKind.ROLLBACK_DONE:
        text = f"rolled back ({event.status})" if event.status else "rolled back"
        return replace(app, state=text, message=event.message or app.message)
    hosts = _host_step(app.hosts, event)
    if not own or app.state.startswith(Shown.ROLLING_BACK):
        return replace(app, hosts=hosts)  # a rollback's own steps: hosts only
    if kind is EventKind.APP_DONE:
        return replace(app, state=event.status, hosts=hosts, message=event.message)
    if kind is EventKind.HEALTH_CHECKED:
        return replace(app, state=Shown.RUNNING, health=event.status, hosts=hosts)
    if kind is EventKind.PRUNE_DONE:
        return replace(app, state=f"pruned ({event.status})", hosts=hosts, message=event.message)
    return replace(app, state=Shown.RUNNING, hosts=hosts)


_HOST_STATE: dict[EventKind, Callable[[str], str]] = {
    EventKind.BATCH_STARTED: lambda s: Shown.APPLYING,
    EventKind.BATCH_APPLIED:
        lambda s: Shown.CHECKING if s == StepStatus.SUCCESS else Shown.FAILED,
    EventKind.HEALTH_CHECKED:
        lambda s: Shown.HEALTHY if s == HealthStatus.HEALTHY else Shown.DEGRADED,
}


def _host_step(hosts: tuple[HostState, ...], event: Event) -> tuple[HostState, ...]:
    step = _HOST_STATE.get(event.kind)
    if step is None or not event.hosts:
        return hosts
    new = step(event.status)
    known = {h.host for h in hosts}
    updated = [replace(h, state=new) if h.host in event.hosts else h for h in hosts]
    updated.extend(HostState(host=h, state=new) for h in event.hosts if h not in known)
    return tuple(updated)


def _with_wave(
    state: RolloutState, number: int, change: Callable[[WaveState], WaveState]
) -> RolloutState:
    waves = list(state.waves)
    index = next((i for i, w in enumerate(waves) if w.wave == number), None)
    if index is None:
        waves.append(WaveState(wave=number))
        waves.sort(key=lambda w: w.wave)
        index = next(i for i, w in enumerate(waves) if w.wave == number)
    waves[index] = change(waves[index])
    return replace(state, waves=tuple(waves))


def _with_app(
    state: RolloutState, event: Event, change: Callable[[AppState], AppState]
) -> RolloutState:
    number = event.wave if event.wave is not None else 0

    def in_wave(wave: WaveState) -> WaveState:
        apps = list(wave.apps)
        index = next((i for i, a in enumerate(apps) if a.app == event.app), None)
        if index is None:
            apps.append(AppState(app=event.app, target=event.target, wave=number))
            index = len(apps) - 1
        apps[index] = change(apps[index])
        return replace(wave, apps=tuple(apps))

    # A rollback's events may name the wave of the old revision: find the app first.
    for wave in state.waves:
        if any(a.app == event.app for a in wave.apps):
            return _with_wave(state, wave.wave, in_wave)
    return _with_wave(state, number, in_wave)


class RolloutTracker:
    """The latest rollout, updated by an EventBus listener, read by HTTP threads."""

    def __init__(self, layout: Callable[[str], Layout] | None = None) -> None:
        self._layout = layout or (lambda _revision: ())
        self._lock = threading.Lock()
        self._state: RolloutState | None = None

    def __call__(self, event: Event) -> RolloutState:
        with self._lock:
            current = self._state
        fresh = current is None or current.deploy_id != event.deploy_id
        # The layout may read git objects: never under the lock.
        layout = self._layout(event.revision) if fresh else ()
        with self._lock:
            self._state = fold(self._state, event, layout)
            return self._state

    @property
    def state(self) -> RolloutState | None:
        with self._lock:
            return self._state


def layout_of(apps: Sequence[tuple[str, str, int]]) -> Layout:
    """(app, target, wave) triples -> the Layout, waves ascending, apps by name."""
    waves: dict[int, list[tuple[str, str]]] = {}
    for app, target, wave in apps:
        waves.setdefault(wave, []).append((app, target))
    return tuple((w, tuple(sorted(waves[w]))) for w in sorted(waves))
