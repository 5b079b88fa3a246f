"""Applying a plan: waves in order, apps of a wave concurrently, hosts in batches.

Invariants this module keeps:
- A wave starts only after every app of the previous wave applied all of its
  batches and each batch passed its health gate.
- Inside a wave, an app starts only after its dependencies in that wave
  succeeded; apps of a wave otherwise run concurrently on a bounded pool.
- After each batch the health gate runs on that batch's hosts. Failed hosts are
  counted per app; once they exceed `rollout.max_failures` the app fails, the
  rollout halts, and no further batch, app or wave is started anywhere.
- The inventory is written before a change is applied ("intent", or
  "deleting"), marked "applied" (or removed) after, and "healthy" once its
  host passed the gate: a process killed at any point leaves enough behind for
  the next run to prune and re-verify.
- One backend call at a time per host (the Backend protocol asks for it).
- A stop request (`stop`, shared by every rollout of a deploy) never cuts an
  apply in half: the batch in flight finishes its writes, its health gate is
  abandoned at the next poll, and no further batch, app, wave or prune
  starts. What it cut short ends "interrupted", never "failure", so it does
  not halt the rollout into a rollback; hosts left "applied" are gated by the
  next sync.
- A host batched only for that re-check which fails it counts as changed by
  the rollout that re-checks it (`AppOutcome.rechecked`): the interrupted
  deploy changed it, and no other rollout will ever roll it back.
- An app with `prune_first` deletes what its plan prunes before its first
  batch (on every host at once, as the prune phase would), so a revert can
  free space before it writes; the prune phase then skips it. A failed early
  prune fails the app before any write, and its hosts count as changed.
- An app that fails in a batch (its apply or its health gate) or in its early
  prune is reported once to a backend that has `sync_failed` (Kubernetes runs
  SyncFail hooks); the notes it returns end the app's message, and an error
  in it never changes the outcome. An app that could not be planned is not
  reported: nothing of it was tried.
- Every step is an Event; nothing here writes history except the inventory.
  The notes a backend returns with an apply (what it deliberately left, such
  as a non-empty Directory) end the message of that batch's or prune's event.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from backends.base import ApplyResult, Backend, HealthReport
from reconciler.errors import HistoryError, ReconcilerError
from reconciler.events import Event, EventKind, with_notes
from reconciler.history import InventoryEntry
from reconciler.model import (
    Action,
    App,
    AppPlan,
    Change,
    DesiredState,
    HealthStatus,
    HostKey,
    Location,
    Plan,
)
from reconciler.outcomes import AppStatus, EventStatus, InventoryState, StepStatus
from reconciler.rollout import gate
from reconciler.rollout.batches import Batch, batches

T = TypeVar("T")

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """The part of the history a rollout writes: the inventory."""

    def set_inventory(self, entries: Iterable[InventoryEntry]) -> None: ...
    def mark_inventory(self, target: str, keys: Iterable[HostKey], state: InventoryState
                       ) -> None: ...
    def remove_inventory(self, target: str, keys: Iterable[HostKey]) -> None: ...


@dataclass(frozen=True, kw_only=True)
class AppOutcome:
    app: str
    target: str
    wave: int
    status: AppStatus
    """success, failure, halted (not finished because another app failed), skipped,
    interrupted (a stop request left it unstarted or part done)."""
    hosts: tuple[str, ...] = ()
    """Hosts whose changes were (at least partly) sent to the backend."""
    failed_hosts: tuple[str, ...] = ()
    created: tuple[HostKey, ...] = ()
    """(host, id) of every create sent to the backend: what rollback may delete."""
    rechecked: tuple[str, ...] = ()
    """Hosts with no changes here, batched only to re-check what an earlier,
    interrupted deploy applied to them, that failed the check."""
    message: str = ""

    @property
    def changed(self) -> bool:
        """Whether a rollback must return this app: hosts failing their re-check
        count, since no one else will ever undo what was applied to them."""
        return bool(self.hosts or self.rechecked)


@dataclass
class _Progress:
    """What one app has sent so far. Kept outside the app's call, so an app that
    crashes half way still reports the hosts it changed and rollback finds them."""

    touched: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    created: list[HostKey] = field(default_factory=list)
    rechecked: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RolloutResult:
    outcomes: tuple[AppOutcome, ...] = ()
    halted: bool = False
    interrupted: bool = False
    """A stop request left part of the plan undone (an app, a wave or a prune)."""
    not_started: tuple[int, ...] = ()
    """Waves a stop request kept from starting."""

    @property
    def ok(self) -> bool:
        return (not self.halted and not self.interrupted
                and all(o.status is AppStatus.SUCCESS for o in self.outcomes))

    @property
    def message(self) -> str:
        bad = [o for o in self.outcomes if o.status is AppStatus.FAILURE]
        return "; ".join(f"{o.app}: {o.message}" for o in bad) or "ok"

    @property
    def stopped(self) -> str:
        """What a stop request cut short, for the deploy's message."""
        cut = [f"{o.app}: {o.message}" for o in self.outcomes if o.status is AppStatus.INTERRUPTED]
        if self.not_started:
            cut.append(f"wave {', '.join(map(str, self.not_started))} not started")
        return "; ".join(cut)


@dataclass(frozen=True, kw_only=True)
class RolloutOptions:
    max_workers: int = 4
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] | None = None
    """The health gate's pause between probes; None: real time, cut short by a stop request."""
    fleet: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Host order per target, for deterministic batches."""
    verify: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Hosts per app to health-check even without changes (see batches.with_verification)."""


class Rollout:
    """One pass of a plan against open backends, for one deploy."""

    def __init__(
        self,
        *,
        deploy_id: int,
        desired: DesiredState,
        backends: Mapping[str, Backend],
        recorder: Recorder,
        emit: Callable[[Event], None],
        options: RolloutOptions | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.deploy_id = deploy_id
        self.desired = desired
        self.backends = backends
        self.recorder = recorder
        self._emit = emit
        self.options = options or RolloutOptions()
        self.halt = threading.Event()
        """Set on failure: nothing new starts, and the caller rolls back."""
        self.stop = stop or threading.Event()
        """Set from outside to stop early without failing (see the module docstring)."""
        self._interrupted = threading.Event()
        self._host_locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._first: dict[str, list[AppPlan]] = {}
        """Prunes of `prune_first` apps, taken at the start of the app's turn."""
        self._pruned_first: set[str] = set()

    def event(self, kind: EventKind, *, status: EventStatus = "", **fields: Any) -> None:
        self._emit(Event(kind=kind, deploy_id=self.deploy_id,
                         revision=self.desired.revision, status=status, **fields))

    # --- waves -------------------------------------------------------------

    def run_waves(self, plan: Plan) -> RolloutResult:
        outcomes: list[AppOutcome] = []
        not_started: tuple[int, ...] = ()
        in_waves = {ap.app for wave in plan.waves for ap in wave.apps}
        for ap in plan.prune:
            app = self.desired.apps.get(ap.app)
            if app is not None and app.prune_first and ap.app in in_waves:
                self._first.setdefault(ap.app, []).append(ap)
        for index, wave in enumerate(plan.waves):
            if self.halt.is_set():
                break
            if self.stop.is_set():
                self._interrupted.set()
                not_started = tuple(w.wave for w in plan.waves[index:])
                break
            self.event(EventKind.WAVE_STARTED, wave=wave.wave, status=StepStatus.RUNNING)
            results = self._run_wave(wave.apps)
            outcomes.extend(results)
            done = RolloutResult(outcomes=tuple(results))
            status = _wave_status(results)
            if status is AppStatus.FAILURE:
                self.halt.set()
            elif status is AppStatus.INTERRUPTED:
                self._interrupted.set()
            self.event(EventKind.WAVE_DONE, wave=wave.wave, status=status,
                       message=done.message if status is AppStatus.FAILURE else done.stopped)
        return self._result(outcomes, not_started)

    def _result(
        self, outcomes: Sequence[AppOutcome], not_started: tuple[int, ...] = ()
    ) -> RolloutResult:
        return RolloutResult(outcomes=tuple(outcomes), halted=self.halt.is_set(),
                             interrupted=self._interrupted.is_set(), not_started=not_started)

    def _run_wave(self, apps: Sequence[AppPlan]) -> list[AppOutcome]:
        in_wave = {a.app for a in apps}
        pending = list(apps)
        done: dict[str, AppOutcome] = {}
        running: dict[Future[AppOutcome], AppPlan] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.options.max_workers)) as pool:
            try:
                while pending or running:
                    self._start_ready(pool, pending, running, in_wave, done)
                    if running:
                        finished, _ = wait(running, return_when=FIRST_COMPLETED)
                        for future in finished:
                            done[running.pop(future).app] = future.result()
            except BaseException:
                # Leaving the pool waits for the apps still running: without the
                # halt, an interrupt would let them go on through every batch.
                self.halt.set()
                raise
        return [done[a.app] for a in apps]

    def _start_ready(
        self, pool: ThreadPoolExecutor, pending: list[AppPlan],
        running: dict[Future[AppOutcome], AppPlan], in_wave: set[str],
        done: dict[str, AppOutcome],
    ) -> None:
        """Submit every pending app whose dependencies are done; skip the blocked."""
        for ap in self._ready(pending, in_wave, done):
            pending.remove(ap)
            blocked = self._blocked_reason(ap, in_wave, done)
            if blocked:
                # Not failed: an app a stop request kept from starting is left
                # to the next sync, which plans it afresh.
                status = (AppStatus.INTERRUPTED if self.stop.is_set() and not self.halt.is_set()
                          else AppStatus.SKIPPED)
                done[ap.app] = self._finish(ap, status, _Progress(), blocked)
            else:
                running[pool.submit(self._run_app_safely, ap)] = ap
        if not running and pending:  # a dependency cycle slipped past validation
            for ap in pending:
                done[ap.app] = self._finish(ap, AppStatus.SKIPPED, _Progress(), "dependency cycle")
            pending.clear()

    def _deps(self, ap: AppPlan, in_wave: set[str]) -> list[str]:
        app = self.desired.apps.get(ap.app)
        return [d for d in (app.depends_on if app else ()) if d in in_wave]

    def _ready(
        self, pending: list[AppPlan], in_wave: set[str], done: Mapping[str, AppOutcome]
    ) -> list[AppPlan]:
        return [ap for ap in pending if all(d in done for d in self._deps(ap, in_wave))]

    def _blocked_reason(
        self, ap: AppPlan, in_wave: set[str], done: Mapping[str, AppOutcome]
    ) -> str:
        if self.halt.is_set():
            return "not started: the rollout halted"
        if self.stop.is_set():
            return "not started: stop requested"
        failed = [d for d in self._deps(ap, in_wave) if done[d].status is not AppStatus.SUCCESS]
        return f"not started: dependency {', '.join(failed)} failed" if failed else ""

    # --- one app -----------------------------------------------------------

    def _run_app_safely(self, ap: AppPlan) -> AppOutcome:
        progress = _Progress()
        try:
            return self._run_app(ap, progress)
        except HistoryError as err:
            # Not a bug: the history is full or away, and what is applied
            # without its inventory row could not be pruned or rolled back.
            self.halt.set()
            return self._finish(ap, AppStatus.FAILURE, progress, str(err))
        except Exception as err:  # a backend bug must still end the app, not the thread
            self.halt.set()
            return self._finish(ap, AppStatus.FAILURE, progress,
                                unexpected(err, f"app {ap.app} on target {ap.target}"))

    def _run_app(self, ap: AppPlan, progress: _Progress) -> AppOutcome:
        app = self.desired.apps[ap.app]
        if ap.error:
            # Unplannable: nothing of it is applied, and the rollout halts here.
            self.halt.set()
            return self._finish(ap, AppStatus.FAILURE, progress, ap.error)
        early = self._prune_early(app, ap, progress)
        if early is not None:
            return early
        planned = batches(ap.changes, app.rollout.batch,
                          fleet=self.options.fleet.get(ap.target, ()),
                          verify=self.options.verify.get(ap.app, ()))
        for batch in planned:
            if self.halt.is_set():
                return self._finish(ap, AppStatus.HALTED, progress,
                                    f"halted before batch {batch.index + 1} of {len(planned)}")
            if self.stop.is_set():
                return self._finish(ap, AppStatus.INTERRUPTED, progress,
                                    f"stopped before batch {batch.index + 1} of {len(planned)}")
            changed = {c.host for c in batch.changes}
            progress.touched.extend(h for h in batch.hosts if h in changed)
            progress.created.extend((c.host, c.id) for c in batch.changes
                                    if c.action is Action.CREATE)
            report = self._run_batch(app, ap, batch)
            progress.failed.extend(report.failed)
            if report.probes:  # a failed apply checked nothing: no re-check failed
                progress.rechecked.extend(h for h in report.failed if h not in changed)
            progress.reason = report.message if report.failed else progress.reason
            if len(progress.failed) > app.rollout.max_failures:
                self.halt.set()
                reason = self._after_failure(app, ap, batch.hosts, _too_many(app, progress))
                return self._finish(ap, AppStatus.FAILURE, progress, reason)
            if report.abandoned:
                return self._finish(
                    ap, AppStatus.INTERRUPTED, progress,
                    f"stopped in the health gate of batch {batch.index + 1} of {len(planned)}")
        failed = progress.failed
        note = f"{len(failed)} host(s) failed within max_failures" if failed else ""
        return self._finish(ap, AppStatus.SUCCESS, progress, note)

    def _prune_early(self, app: App, ap: AppPlan, progress: _Progress) -> AppOutcome | None:
        """Run a prune_first app's deletions; its outcome when they did not all succeed."""
        prunes = self._first.pop(ap.app, [])
        if not prunes:
            return None
        hosts = sorted({c.host for p in prunes for c in p.changes})
        progress.touched.extend(hosts)
        done = self.run_prune(Plan(revision=self.desired.revision, waves=(),
                                   prune=tuple(prunes)))
        self._pruned_first.add(ap.app)
        failed = [o.message for o in done.outcomes if o.status is not AppStatus.SUCCESS]
        if failed:
            reason = self._after_failure(app, ap, hosts, failed[0])
            return self._finish(ap, AppStatus.FAILURE, progress, reason)
        if len(done.outcomes) < len(prunes):
            return self._finish(ap, AppStatus.INTERRUPTED, progress, "stopped before its prune")
        return None

    def _after_failure(self, app: App, ap: AppPlan, hosts: Sequence[str], reason: str) -> str:
        """Tell a backend that reacts to failures (`sync_failed`: the Kubernetes
        SyncFail hooks) that the app failed; its notes end the app's message."""
        notify = getattr(self.backends[ap.target], "sync_failed", None)
        if notify is None:
            return reason
        try:
            notes = self._locked(ap.target, hosts, lambda: notify(app, reason))
        except Exception as err:  # the failure stays the app's outcome either way
            return with_notes(reason, [unexpected(err, f"sync_failed of app {ap.app}")])
        return with_notes(reason, list(notes))

    def _run_batch(self, app: App, ap: AppPlan, batch: Batch) -> gate.GateResult:
        """Apply one batch and gate it; the gate's result says which hosts failed, and why."""
        common = {"wave": ap.wave, "app": ap.app, "target": ap.target, "hosts": batch.hosts}
        self.event(EventKind.BATCH_STARTED, status=StepStatus.RUNNING,
                   message=f"batch {batch.index + 1}", **common)
        if batch.changes:
            try:
                result = self._apply(app, ap.target, batch.changes)
            except ReconcilerError as err:
                self.event(EventKind.BATCH_APPLIED, status=StepStatus.FAILURE, message=str(err),
                           **common)
                return gate.GateResult(statuses={}, failed=batch.hosts, message=str(err),
                                       probes=0)
            self.event(EventKind.BATCH_APPLIED, status=StepStatus.SUCCESS,
                       message=with_notes(f"{result.applied} write(s)", result.messages),
                       **common)
        report = gate.wait_healthy(
            lambda hosts: self._locked(ap.target, hosts, lambda: self._probe(app, ap, hosts)),
            batch.hosts, gate.GatePolicy.for_app(app),
            clock=self.options.clock, sleep=self.options.sleep or self._pause, stop=self.stop,
        )
        # Every resource of the app on a passing host is verified, including
        # those a killed run applied earlier (hosts batched only to be checked).
        self.recorder.mark_inventory(
            ap.target, [(h, r.id) for h in report.passed for r in app.resources],
            InventoryState.HEALTHY)
        self.event(EventKind.HEALTH_CHECKED, status=_gate_status(report),
                   message=report.message, **common)
        return report

    def _pause(self, seconds: float) -> None:
        # A stop request wakes the gate at once rather than after its backoff.
        self.stop.wait(seconds)

    def _probe(self, app: App, ap: AppPlan, hosts: Sequence[str]) -> HealthReport:
        return self.backends[ap.target].health(app, hosts)

    def _apply(self, app: App, target: str, changes: Sequence[Change]) -> ApplyResult:
        writes = [c for c in changes if c.action is not Action.DELETE]
        deletes = [c for c in changes if c.action is Action.DELETE]
        revision = self.desired.revision
        self.recorder.set_inventory(
            InventoryEntry(target=target, host=c.host, id=c.id, app=c.app, wave=app.wave,
                           revision=revision,
                           state=(InventoryState.DELETING if c.action is Action.DELETE
                                  else InventoryState.INTENT))
            for c in changes
        )
        hosts = sorted({c.host for c in changes})
        result = self._locked(target, hosts, lambda: self.backends[target].apply(app, changes))
        self.recorder.mark_inventory(target, _keys(writes), InventoryState.APPLIED)
        self.recorder.remove_inventory(target, _keys(deletes))
        return result

    def _locked(self, target: str, hosts: Sequence[str], call: Callable[[], T]) -> T:
        with ExitStack() as stack:
            for host in sorted(set(hosts)):  # one global order: no deadlock
                with self._locks_guard:
                    lock = self._host_locks.setdefault((target, host), threading.Lock())
                stack.enter_context(lock)
            return call()

    def _finish(
        self, ap: AppPlan, status: AppStatus, progress: _Progress, message: str
    ) -> AppOutcome:
        outcome = AppOutcome(app=ap.app, target=ap.target, wave=ap.wave, status=status,
                             hosts=tuple(dict.fromkeys(progress.touched)),
                             failed_hosts=tuple(progress.failed),
                             created=tuple(dict.fromkeys(progress.created)),
                             rechecked=tuple(dict.fromkeys(progress.rechecked)),
                             message=message)
        self.event(EventKind.APP_DONE, wave=ap.wave, app=ap.app, target=ap.target,
                   hosts=outcome.hosts, status=status, message=message)
        return outcome

    # --- prune -------------------------------------------------------------

    def run_prune(self, plan: Plan) -> RolloutResult:
        """Deletions, in the plan's reverse wave order, one app at a time, no gate."""
        outcomes: list[AppOutcome] = []
        for ap in plan.prune:
            if ap.app in self._pruned_first:
                continue  # done before its writes (prune_first)
            if self.stop.is_set():
                # Deletes left undone stay in the inventory: the next sync prunes them.
                self._interrupted.set()
                break
            app = self.desired.apps.get(ap.app) or _orphan(ap)
            hosts = sorted({c.host for c in ap.changes})
            common = {"wave": ap.wave, "app": ap.app, "target": ap.target, "hosts": tuple(hosts)}
            try:
                result = self._apply(app, ap.target, ap.changes)
            except Exception as err:
                why = (str(err) if isinstance(err, ReconcilerError)
                       else unexpected(err, f"prune of {ap.app} on target {ap.target}"))
                self.event(EventKind.PRUNE_DONE, status=StepStatus.FAILURE, message=why, **common)
                outcomes.append(AppOutcome(app=ap.app, target=ap.target, wave=ap.wave,
                                           status=AppStatus.FAILURE, hosts=tuple(hosts),
                                           message=f"prune: {why}"))
                self.halt.set()
                break
            self.event(EventKind.PRUNE_DONE, status=StepStatus.SUCCESS,
                       message=with_notes(f"{len(ap.changes)} deleted, {result.applied} write(s)",
                                          result.messages), **common)
            outcomes.append(AppOutcome(app=ap.app, target=ap.target, wave=ap.wave,
                                       status=AppStatus.SUCCESS, hosts=tuple(hosts)))
        return self._result(outcomes)


def unexpected(err: Exception, where: str) -> str:
    """A one-line message for an error outside the project's vocabulary.

    Its text may quote anything a backend or library held (a manifest, a file's
    content), so it goes nowhere: the log gets the type and the traceback's
    frames, the events and the history the type alone.
    """
    frames = "".join(traceback.format_tb(err.__traceback__))
    log.error("unexpected %s in %s; traceback (message withheld):\n%s",
              type(err).__name__, where, frames)
    return f"unexpected {type(err).__name__} in {where} (see the log)"


def _wave_status(results: Sequence[AppOutcome]) -> AppStatus:
    """success; interrupted when a stop request was all that kept apps from it; else failure."""
    statuses = {o.status for o in results}
    if statuses <= {AppStatus.SUCCESS}:
        return AppStatus.SUCCESS
    return (AppStatus.INTERRUPTED if statuses <= {AppStatus.SUCCESS, AppStatus.INTERRUPTED}
            else AppStatus.FAILURE)


def _gate_status(report: gate.GateResult) -> HealthStatus:
    if report.healthy:
        return HealthStatus.HEALTHY
    return HealthStatus.DEGRADED if report.failed else HealthStatus.UNKNOWN


def _too_many(app: App, progress: _Progress) -> str:
    failed = progress.failed
    # Kubernetes and YARN have one unnamed host: the reason is all there is to say.
    named = ", ".join(h for h in failed if h)
    return (f"{len(failed)} host(s) failed (max_failures {app.rollout.max_failures})"
            + (f": {named}" if named else "")
            + (f" ({progress.reason})" if progress.reason else ""))


def _keys(changes: Iterable[Change]) -> list[HostKey]:
    return [(c.host, c.id) for c in changes]


def _orphan(ap: AppPlan) -> App:
    """A stand-in for an app that Git no longer names, so its objects can be pruned."""
    return App(name=ap.app, target=ap.target, wave=ap.wave, location=Location(file=""))
