"""One reconcile, start to finish: source -> load -> live -> plan -> rollout -> record.

The engine is the library that `reconciler sync`, `reconciler plan`, the daemon
and the tests all call; the shells around it only parse arguments and choose
triggers. Every plan against live state runs one pipeline, whose stages the
engine owns: `select` (load, select targets), then `reading` (open backends,
read live, plan); `planned` composes them for `plan`, `drift` and pull-request
plans, and `sync` starts its deploy record between the two. Invariants:
- A commit that fails validation is recorded as an "error" deploy and never
  applied, in part or whole.
- One sync per target at a time: an flock per target under `data_dir/locks`
  (held across processes and threads), always taken in name order.
- A sync with nothing to change and nothing left to verify calls no backend
  write and no health probe.
- The plan comes from fresh live state every time, so a sync killed at any
  moment is finished by the next one; hosts that were applied but never passed
  their health gate (inventory state "intent"/"applied") are gated again.
- Every deploy, event, app result and inventory change lands in the history;
  the last good revision per app is marked only after every wave and the prune
  succeeded.
- A started deploy always ends in the history: any exception as a returned
  "failure" (the daemon remembers it and does not retry), an interrupt as
  "interrupted" (the next sync resumes it from live state). When the history
  cannot store the end (a full disk, a server down), the deploy still ends:
  its result says why (`unrecorded`), and `record_pending` stores it later;
  a process that stops first leaves it to the next open (marked interrupted).
- `request_stop()` (a shutdown) ends the running sync early and cleanly: the
  batch in flight finishes its writes, a health gate is abandoned at its next
  poll, and no new batch, wave, prune or rollback starts. A deploy it cut
  short returns "interrupted": no rollback, no last good revision, not a
  failure to remember. Its inventory is as a kill would leave it, only never
  mid-apply, so the next sync re-plans from live state and gates hosts left
  "applied". A sync the stop cut nothing from ends as it would have.
- `interrupt(why)` does the same to the sync in flight only: it is forgotten
  when that sync ends, and the next sync runs in full. The daemon uses it when
  this replica loses leadership, so it stops its rollout at a batch boundary
  and can still lead (and sync) again later; `request_stop()` stays final,
  because a shutting-down process must not start another sync.
- `sync(targets=..., guard=...)` (a replica's shards): only those targets, and
  every history write of the deploy runs `guard` first in its transaction
  (`History.fenced`). A guard that refuses (FencedError) ends the deploy
  "interrupted" and nothing more of it is recorded, not even later; since the
  inventory row of each apply is written before the backend call, a refusal
  also comes before the next apply.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from backends.base import Backend, BackendContext, Keeper, open_backend
from reconciler import plan as planner
from reconciler import redact
from reconciler.errors import (
    ConfigError,
    HistoryError,
    Problem,
    ReconcilerError,
    ValidationError,
)
from reconciler.events import Event, EventBus, EventKind, Listener
from reconciler.history import History, HistorySettings, open_history
from reconciler.history.fence import FencedError
from reconciler.history.store import Guard
from reconciler.load import LoadCache
from reconciler.model import DesiredState, LiveView, Plan, Target
from reconciler.outcomes import UNVERIFIED, DeployResult
from reconciler.render import Renderer, load_rendered
from reconciler.rollout import rollback
from reconciler.rollout.batches import with_verification
from reconciler.rollout.rollback import RollbackResult
from reconciler.rollout.runner import Rollout, RolloutOptions, unexpected
from reconciler.source import Credentials, Mirror
from reconciler.source.verify import VerifyPolicy, require_signature

Opener = Callable[[Target, BackendContext], Backend]
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    repo: str
    """URL (file://, ssh://, https://) or local path of the state repository."""
    rev: str = "HEAD"
    """Branch, tag or commit that `sync()` deploys when not told otherwise."""
    path: str = "."
    data_dir: Path
    credentials: Credentials | None = None
    targets: tuple[str, ...] = ()
    """Only these targets are read and changed; empty means every target."""
    refspecs: tuple[str, ...] = ()
    max_workers: int = 4
    history: HistorySettings = field(default_factory=HistorySettings)
    """Where the history lives: SQLite under data_dir unless a PostgreSQL URL is set."""
    verify: VerifyPolicy | None = None
    """When set, a commit is loaded (planned, applied) only if its signature verifies."""


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    result: DeployResult
    """success, failure (applied and unhealthy, or a backend failed), error (invalid)
    or interrupted (returned after `Engine.request_stop()` or `Engine.interrupt()` cut
    the rollout short;
    recorded, then re-raised, when the sync raised KeyboardInterrupt or SystemExit)."""
    deploy_id: int
    revision: str
    summary: dict[str, int] = field(default_factory=dict)
    message: str = ""
    rolled_back: bool = False
    """Every app the failed rollout changed (with rollback: auto) is back at its last good state."""
    rollback_failed: bool = False
    """A rollback was tried and did not bring some app back: it needs a person."""
    problems: tuple[Problem, ...] = ()
    plan: Plan | None = None
    unrecorded: str = ""
    """Why the history could not store this deploy's end ("" when it did); the
    engine stores it later (`Engine.record_pending`)."""


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The first stages of the pipeline: a commit loaded, and the targets to read."""

    desired: DesiredState
    targets: tuple[str, ...]
    """Sorted; the settings' targets, or every target the commit defines."""


@dataclass(frozen=True, kw_only=True)
class Reading:
    """The last stages: the selection's backends open, their live views, the plan."""

    selection: Selection
    backends: Mapping[str, Backend]
    """Open only inside the `Engine.reading` / `Engine.planned` block that made it."""
    views: Mapping[str, LiveView]
    plan: Plan

    @property
    def desired(self) -> DesiredState:
        return self.selection.desired


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        *,
        opener: Opener = open_backend,
        rollout_options: RolloutOptions | None = None,
        long_running: bool = False,
    ) -> None:
        """`long_running` (the daemon): backends may keep state between syncs (a
        Kubernetes target's watch-fed cache), until `close()`."""
        self.settings = settings
        self._keeper = Keeper() if long_running else None
        self.history = open_history(settings.history, settings.data_dir)
        self.events = EventBus()
        self.events.subscribe(self._record_event)
        self.mirror = Mirror(settings.repo, settings.data_dir, settings.credentials)
        self._opener = opener
        self._options = rollout_options or RolloutOptions(max_workers=settings.max_workers)
        self._cache = LoadCache()
        self._renderer = Renderer(targets=frozenset(settings.targets))
        self._loaded: dict[str, DesiredState] = {}
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        """Final: set by request_stop(), and every later sync starts already stopped."""
        self._cuts_lock = threading.Lock()
        self._cuts: set[_Cut] = set()
        """One per sync in flight: the stop event its rollouts poll (see interrupt())."""
        self._unrecorded: dict[int, SyncResult] = {}
        """Deploys that ended but whose end the history could not store (yet)."""
        self._recorders: dict[int, History] = {}
        """Deploy id -> the (fenced) history its events are recorded in, while it runs."""

    def request_stop(self) -> None:
        """Stop the running sync after its batch in flight, and any later one before
        it writes; final for this engine (it is shutting down). Thread-safe."""
        with self._cuts_lock:
            self._stop.set()
            for cut in self._cuts:
                cut.set("a stop request")

    def interrupt(self, why: str = "an interrupt request") -> bool:
        """Stop the sync in flight as `request_stop()` does (batch in flight finished,
        nothing new started, recorded "interrupted", no rollback), but for that sync
        only: the next sync starts afresh. `why` completes the deploy's message
        ("interrupted by <why>: ..."). True when a sync was in flight. Thread-safe."""
        with self._cuts_lock:
            for cut in self._cuts:
                cut.set(why)
            return bool(self._cuts)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.events.subscribe(listener)

    def close(self) -> None:
        self.record_pending()
        if self._keeper is not None:
            self._keeper.close()
        self.history.close()

    # --- source and load ---------------------------------------------------

    def resolve(self, rev: str | None = None, *, fetch: bool = True) -> str:
        if fetch:
            self.mirror.fetch(self.settings.refspecs)
        return self.mirror.resolve(rev or self.settings.rev)

    def load_revision(self, sha: str) -> DesiredState:
        """The desired state of commit `sha` (cached; raises ValidationError)."""
        with self._load_lock:
            if sha not in self._loaded:
                if len(self._loaded) >= 8:
                    self._loaded.pop(next(iter(self._loaded)))
                if self.settings.verify is not None:
                    require_signature(self.mirror.path, sha, self.settings.verify)
                tree = self.mirror.tree(sha, self.settings.path)
                self._loaded[sha] = load_rendered(tree, cache=self._cache,
                                                  renderer=self._renderer)
            return self._loaded[sha]

    def load(self, rev: str | None = None) -> tuple[str, DesiredState]:
        sha = self.resolve(rev)
        return sha, self.load_revision(sha)

    def select(self, sha: str, targets: Collection[str] | None = None) -> Selection:
        """Pipeline stages load and select: commit `sha` (signature verified when
        configured; raises ValidationError) and the targets this engine reads for it
        (raises ConfigError for a target the commit does not define); `targets`:
        only these of them (the shards a replica holds)."""
        desired = self.load_revision(sha)
        return Selection(desired=desired,
                         targets=tuple(_only(self.selected_targets(desired), targets)))

    def selected_targets(self, desired: DesiredState) -> list[str]:
        wanted = self.settings.targets or tuple(desired.targets)
        unknown = sorted(set(wanted) - set(desired.targets))
        if unknown:
            known = ", ".join(sorted(desired.targets)) or "none"
            raise ConfigError(f"unknown target {', '.join(unknown)} (the state repo has: {known})")
        return sorted(set(wanted))

    # --- live state and plans ----------------------------------------------

    @contextmanager
    def backends(self, desired: DesiredState, names: Sequence[str]) -> Iterator[dict[str, Backend]]:
        """Open the backends of `names`; every one opened is closed again."""
        opened: dict[str, Backend] = {}
        context = BackendContext(data_dir=self.settings.data_dir, revision=desired.revision,
                                 keeper=self._keeper)
        try:
            for name in names:
                opened[name] = self._opener(desired.targets[name], context)
            yield opened
        finally:
            for backend in opened.values():
                backend.close()

    def read_live(
        self, desired: DesiredState, backends: Mapping[str, Backend],
        names: Sequence[str] | None = None,
    ) -> dict[str, LiveView]:
        """Each target's live view, read in bulk, targets in parallel."""
        chosen = list(names if names is not None else backends)
        missing = [n for n in chosen if n not in backends]
        if missing:
            raise ConfigError(f"target {', '.join(missing)} is not selected for this sync")

        def read(name: str) -> LiveView:
            resources = [r for a in desired.apps.values() if a.target == name
                         for r in a.resources]
            return backends[name].read_live(resources, self.history.inventory(name))

        with ThreadPoolExecutor(max_workers=max(1, min(4, len(chosen)))) as pool:
            return dict(zip(chosen, pool.map(read, chosen), strict=True))

    @contextmanager
    def reading(self, selection: Selection) -> Iterator[Reading]:
        """Pipeline stages open, read live and plan, for a selection; the backends
        close when the block ends. Reads only: nothing is applied here."""
        with self.backends(selection.desired, selection.targets) as opened:
            views = self.read_live(selection.desired, opened)
            yield Reading(selection=selection, backends=opened, views=views,
                          plan=planner.plan(selection.desired, views))

    @contextmanager
    def planned(self, sha: str, *, locked: bool = False,
                targets: Collection[str] | None = None) -> Iterator[Reading]:
        """The whole pipeline for commit `sha`: load -> select -> open -> read live
        -> plan. `locked` holds the selected targets' locks for the block (a drift
        check); a plan takes none, so it never waits for a rollout. `sync` runs
        the same stages (`select`, then `reading`) with its deploy record started
        between them, so a target that cannot be opened or read is a recorded
        failure."""
        selection = self.select(sha, targets)
        lock = self._locked(selection.targets) if locked else nullcontext()
        with lock, self.reading(selection) as found:
            yield found

    def plan(self, rev: str | None = None, *, fetch: bool = True) -> Plan:
        """What a sync of `rev` would do now; `fetch=False` when the caller has just
        fetched (a pull request's head). Takes no target lock: a plan only reads,
        and a pull request's plan must not wait for a long rollout of the same target."""
        with self.planned(self.resolve(rev, fetch=fetch)) as found:
            return found.plan

    def drift(self, targets: Collection[str] | None = None) -> Plan:
        """The last successfully deployed revision planned against live state now;
        `targets`: of these targets only (the shards a replica holds)."""
        revision = self.history.last_successful_revision(targets)
        if revision is None:
            return Plan(revision="", waves=())
        self.mirror.fetch(self.settings.refspecs)
        with self.planned(revision, locked=True, targets=targets) as found:
            return found.plan

    # --- sync --------------------------------------------------------------

    def sync(
        self, rev: str | None = None, trigger: str = "cli", *, fetch: bool = True,
        targets: Collection[str] | None = None, guard: Guard | None = None,
    ) -> SyncResult:
        """Deploy `rev`; `fetch=False` when the caller has just fetched and resolved it.

        `targets`: only these of the selected targets (a replica's shards).
        `guard`: run first in every history write of the deploy (`History.fenced`);
        when it refuses (FencedError), the deploy stops at once and records
        nothing more: the result is "interrupted" and nothing is stored later."""
        with self._cut() as cut:
            if guard is not None:
                cut.history = self.history.fenced(guard)
            return self._sync_revision(rev, trigger, fetch, cut, targets)

    @contextmanager
    def _cut(self) -> Iterator[_Cut]:
        """This sync's stop: interrupt() sets it while the sync runs, and it is dropped
        at the end, so an interrupt never reaches a later sync."""
        cut = _Cut(self.history)
        with self._cuts_lock:
            if self._stop.is_set():
                cut.set("a stop request")
            self._cuts.add(cut)
        try:
            yield cut
        finally:
            with self._cuts_lock:
                self._cuts.discard(cut)

    def _sync_revision(self, rev: str | None, trigger: str, fetch: bool, cut: _Cut,
                       targets: Collection[str] | None = None) -> SyncResult:
        sha = self.resolve(rev, fetch=fetch)
        self.record_pending()
        try:
            selection = self.select(sha, targets)
        except ValidationError as err:
            return self._invalid(sha, trigger, err, cut)
        with self._locked(selection.targets):
            deploy_id = cut.history.start_deploy(sha, trigger, targets=selection.targets)
            with self._cuts_lock:
                self._recorders[deploy_id] = cut.history
            try:
                return self._run_deploy(deploy_id, selection, cut)
            finally:
                with self._cuts_lock:
                    self._recorders.pop(deploy_id, None)

    def _run_deploy(self, deploy_id: int, selection: Selection, cut: _Cut) -> SyncResult:
        sha = selection.desired.revision
        self._emit(EventKind.DEPLOY_STARTED, deploy_id, sha, status=DeployResult.RUNNING)
        try:
            result = self._sync(deploy_id, selection, cut)
        except FencedError as err:
            # Not a failure of the commit: another replica holds its targets now.
            result = SyncResult(result=DeployResult.INTERRUPTED, deploy_id=deploy_id, revision=sha,
                                message=str(err))
        except Exception as err:
            # Even a bug ends as a recorded failure the caller can remember:
            # an exception instead would leave the daemon retrying this commit.
            why = (str(err) if isinstance(err, ReconcilerError)
                   else unexpected(err, f"the sync of {sha[:12]}"))
            result = SyncResult(result=DeployResult.FAILURE, deploy_id=deploy_id, revision=sha,
                                message=why)
        except BaseException as err:
            # Ctrl-C or exit: the rollout stopped part way, as if killed; the
            # next sync re-plans from live state, so this is not a failure.
            self._finish(SyncResult(result=DeployResult.INTERRUPTED, deploy_id=deploy_id,
                                    revision=sha,
                                    message=f"interrupted: {type(err).__name__}"),
                         cut.history)
            raise
        return self._finish(result, cut.history)

    def _sync(self, deploy_id: int, selection: Selection, cut: _Cut) -> SyncResult:
        desired, names = selection.desired, selection.targets
        sha = desired.revision
        with self.reading(selection) as found:
            opened, views, steps = found.backends, found.views, found.plan
            self._forget_stale(views, cut.history)
            verify = self._unverified(desired, views)
            full = with_verification(steps, desired, verify)

            def result(outcome: DeployResult, message: str, back: RollbackResult | None = None
                       ) -> SyncResult:
                return SyncResult(result=outcome, deploy_id=deploy_id, revision=sha,
                                  summary=steps.summary(), plan=steps, message=message,
                                  rolled_back=back is not None and back.rolled_back,
                                  rollback_failed=back is not None and back.failed)

            if not full.waves and not full.prune:
                self._mark_good(desired, names, deploy_id, cut.history)
                return result(DeployResult.SUCCESS, "in sync: nothing to do")
            runner = self._rollout(deploy_id, desired, opened, views, verify, cut)
            waves = runner.run_waves(full)
            if cut.is_set() and not waves.ok:
                # Even after a real failure: a rollback can take as long as the
                # rollout, and the next sync of this commit fails and rolls back.
                failed = waves.message if waves.halted else ""
                return result(DeployResult.INTERRUPTED, cut.message(
                    "; ".join(p for p in (waves.stopped, failed) if p)))
            if not waves.ok:
                back = rollback.roll_back(
                    runner, waves.outcomes,
                    last_good=lambda app: self.history.last_good(app, desired.apps[app].target
                                                                 if app in desired.apps
                                                                 else None),
                    load_revision=self.load_revision,
                    read_live=lambda d, t: self.read_live(d, opened, t),
                    make_rollout=lambda d: self._rollout(deploy_id, d, opened, views, {}, cut),
                )
                if back.interrupted:
                    return result(DeployResult.INTERRUPTED,
                                  cut.message(f"{waves.message}; rollback: {back.message}"))
                return result(DeployResult.FAILURE, waves.message + _rollback_note(back), back)
            pruned = runner.run_prune(full)
            if pruned.interrupted and not pruned.halted:
                return result(DeployResult.INTERRUPTED, cut.message("before pruning"))
            if not pruned.ok:
                return result(DeployResult.FAILURE, pruned.message)
        self._mark_good(desired, names, deploy_id, cut.history)
        return result(DeployResult.SUCCESS, planner.summary_line(steps))

    def _rollout(
        self, deploy_id: int, desired: DesiredState, opened: Mapping[str, Backend],
        views: Mapping[str, LiveView], verify: Mapping[str, Sequence[str]], cut: _Cut,
    ) -> Rollout:
        # Before any command of `desired` runs (forward or rollback): its output
        # may quote them, and every edge masks with these.
        self.events.secrets.add(redact.secret_values(desired))
        options = RolloutOptions(
            max_workers=self._options.max_workers, clock=self._options.clock,
            sleep=self._options.sleep, verify=verify,
            fleet={name: view.hosts for name, view in views.items()},
        )
        return Rollout(deploy_id=deploy_id, desired=desired, backends=opened,
                       recorder=cut.history, emit=self.events.emit, options=options,
                       stop=cut.event)

    def _unverified(
        self, desired: DesiredState, views: Mapping[str, LiveView]
    ) -> dict[str, tuple[str, ...]]:
        """Hosts per app that were applied but never passed their health gate."""
        out: dict[str, set[str]] = {}
        for name, view in views.items():
            for entry in self.history.inventory_entries(name):
                app = desired.apps.get(entry.app)
                if (entry.state in UNVERIFIED and app is not None
                        and app.target == name and entry.host in view.hosts):
                    out.setdefault(entry.app, set()).add(entry.host)
        return {app: tuple(sorted(hosts)) for app, hosts in out.items()}

    def _forget_stale(self, views: Mapping[str, LiveView], history: History) -> None:
        """Drop inventory rows of things that neither exist nor are wanted any more."""
        for name, view in views.items():
            stale = [key for key in history.inventory(name)
                     if key not in view.live and key not in view.desired]
            if stale:
                history.remove_inventory(name, stale)

    def _mark_good(self, desired: DesiredState, names: Sequence[str], deploy_id: int,
                   history: History) -> None:
        apps = [(a.name, a.target) for a in desired.apps.values() if a.target in names]
        history.mark_good(apps, desired.revision, deploy_id)

    def _invalid(self, sha: str, trigger: str, err: ValidationError, cut: _Cut) -> SyncResult:
        deploy_id = cut.history.start_deploy(sha, trigger)
        self._emit(EventKind.DEPLOY_STARTED, deploy_id, sha, status=DeployResult.RUNNING)
        result = SyncResult(result=DeployResult.ERROR, deploy_id=deploy_id, revision=sha,
                            message=f"invalid: {err}", problems=err.problems)
        return self._finish(result, cut.history)

    def _finish(self, result: SyncResult, history: History | None = None) -> SyncResult:
        """Record the end of a deploy, its message masked (`reconciler.redact`); it
        ends even when the history cannot say so. Then the result says why, and the
        row is closed by `record_pending` (unless the fence refused it: another
        replica owns the deploy's targets, and this one writes nothing more)."""
        result = replace(result, message=self.events.secrets.redact(result.message))
        try:
            (history or self.history).finish_deploy(
                result.deploy_id, result.result, result.message,
                rolled_back=result.rolled_back, summary=result.summary)
        except FencedError as err:
            result = replace(result, result=DeployResult.INTERRUPTED, unrecorded=str(err))
        except HistoryError as err:
            log.error("deploy #%d ended (%s: %s) but its end is not recorded: %s",
                      result.deploy_id, result.result, result.message, err)
            result = replace(result, unrecorded=str(err))
            with self._cuts_lock:
                self._unrecorded[result.deploy_id] = result
        self._emit(EventKind.DEPLOY_FINISHED, result.deploy_id, result.revision,
                   status=result.result, message=result.message)
        return result

    def _record_event(self, event: Event) -> None:
        with self._cuts_lock:
            history = self._recorders.get(event.deploy_id, self.history)
        try:
            history.record_event(event)
        except FencedError:
            return  # said once by the fence; this replica records nothing more
        except HistoryError as err:
            # One line, not the bus's traceback: the store is full or away, and
            # the deploy goes on (its inventory writes fail it if they must).
            log.error("event %s of deploy #%d not recorded: %s", event.kind.value,
                      event.deploy_id, err)

    def record_pending(self) -> int:
        """Store the ends of deploys the history could not record when they ended
        (a full disk, a server that was down). Returns how many are still not
        recorded. The daemon calls it before each job; a process that stops
        first leaves them to the next open, which marks them interrupted."""
        with self._cuts_lock:
            pending = list(self._unrecorded.values())
        for result in pending:
            try:
                self.history.finish_deploy(
                    result.deploy_id, result.result,
                    f"{result.message}; recorded late: {result.unrecorded}",
                    rolled_back=result.rolled_back, summary=result.summary)
            except HistoryError:
                continue
            with self._cuts_lock:
                self._unrecorded.pop(result.deploy_id, None)
        with self._cuts_lock:
            return len(self._unrecorded)

    def _emit(
        self, kind: EventKind, deploy_id: int, revision: str, *, status: DeployResult,
        message: str = "",
    ) -> None:
        self.events.emit(Event(kind=kind, deploy_id=deploy_id, revision=revision,
                               status=status, message=message))

    @contextmanager
    def _locked(self, names: Sequence[str]) -> Iterator[None]:
        """flock each target's lock file, in name order so two syncs never deadlock."""
        folder = self.settings.data_dir / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            for name in sorted(names):
                handle = stack.enter_context(open(folder / f"{_safe(name)}.lock", "a+b"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield


class _Cut:
    """The stop of one sync: the event its rollouts poll, and why it was set; and
    the history its writes go to (fenced for a replica's shard)."""

    def __init__(self, history: History) -> None:
        self.event = threading.Event()
        self.why = ""
        self.history = history

    def set(self, why: str) -> None:
        # The first reason stays: a shutdown after a lost leadership changes
        # nothing about why the rollout stopped.
        if not self.event.is_set():
            self.why = why
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def message(self, what: str) -> str:
        head = f"interrupted by {self.why or 'a stop request'}"
        return f"{head}: {what}" if what else head


def _rollback_note(back: RollbackResult) -> str:
    if not back.apps:
        return ""
    return f"; {'rollback failed' if back.failed else 'rollback'}: {back.message}"


def _only(names: Sequence[str], targets: Collection[str] | None) -> list[str]:
    return [n for n in names if targets is None or n in targets]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
