"""The daemon's two jobs, run one at a time on its worker thread.

`sync_job`: fetch, resolve the branch, decide (scheduler.decide), wait for a
sync window or call `Engine.sync`, then post the final commit status and
update the failed-commit memory. `drift_job`: plan the last deployed revision
against live state (`Engine.drift`); report what drifted, record it per target
in the history (so a restart does not forget it), and correct it when
`self_heal` is on.

Invariants:
- Nothing here raises out of a job: a fetch that fails, an unknown target, a
  history that cannot be reached (no deploy starts then) or
  a broken backend is logged, and the daemon waits for the next trigger.
- A commit that fails validation gets an `error` status naming file:line and
  is never applied (the engine records it as an "error" deploy).
- The engine never runs two jobs at once for this daemon: the worker thread
  is the only caller.
- A failed deploy is deployed again only under reconciler.yaml's
  `defaults.retry` (Argo CD's `syncPolicy.retry`): at most `limit` more times,
  after exponential backoff, and only while that commit is still the head; then
  it waits for a new commit or an explicit sync, as any failed commit does.
- A deploy a shutdown interrupted is neither deployed nor failed in the
  memory: its commit stays `pending` ("interrupted by shutdown; resumes on
  restart"), and the next start deploys the head again from live state. The
  same holds for a deploy cut short because this replica stopped leading
  (`pending`, HANDED_OVER): the new leader re-plans it, and so does this
  replica when it leads again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from reconciler import plan as planner
from reconciler import pulls
from reconciler.daemon import scheduler, statuses, windows
from reconciler.daemon.fence import DeployFence
from reconciler.daemon.logging import fields
from reconciler.daemon.scheduler import Memory, Request, Verdict
from reconciler.engine import Engine, SyncResult
from reconciler.errors import HistoryError, ReconcilerError, ValidationError
from reconciler.history import DriftCheck, DriftedResource
from reconciler.history.fence import FencedError
from reconciler.model import Action, DesiredState, Plan
from reconciler.outcomes import DeployResult
from reconciler.reporters import State

log = logging.getLogger("reconciler.daemon")

ROLLOUTS = Counter("reconciler_daemon_rollouts_total", "Deploys the daemon ran", ["result"])
DRIFT_CHECKS = Counter("reconciler_daemon_drift_checks_total", "Drift checks", ["result"])
INTERRUPTED = "interrupted by shutdown; resumes on restart"
HANDED_OVER = "interrupted: another replica leads now and resumes it"
DRIFT_CHANGES = Gauge("reconciler_daemon_drift_changes",
                      "Changes the last drift check found between Git and live state")


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    revision: str
    checked: float
    summary: dict[str, int]
    resources: tuple[str, ...] = ()
    healed: bool = False


@dataclass(kw_only=True)
class WorkerState:
    """What the status page and tests may read; written by the worker only."""

    memory: Memory = field(default_factory=Memory)
    head: str | None = None
    running: str | None = None
    waiting: dict[str, str] = field(default_factory=dict)
    """Target -> why a sync window holds its deploy back."""
    last_result: SyncResult | None = None
    last_drift: DriftReport | None = None
    """The last drift check over all targets; restored from the history at start."""
    drift: dict[str, DriftCheck] = field(default_factory=dict)
    """Target -> its newest drift check; restored from the history at start."""
    fetched: bool = False
    fetch_error: str | None = None
    """Why the last fetch failed; None after a fetch that succeeded."""
    retry: Retry | None = None
    """The failed commit that `defaults.retry` will deploy again, and when."""


@dataclass(frozen=True, kw_only=True)
class Retry:
    sha: str
    attempt: int
    """1-based: the retry this is (at most the policy's limit)."""
    due: float
    """time.monotonic() from which it may run."""


class Worker:
    def __init__(self, engine: Engine, publisher: statuses.Publisher,
                 progress: statuses.Progress, queue: scheduler.WorkQueue,
                 *, self_heal: bool, clock: Callable[[], datetime] | None = None,
                 may_deploy: Callable[[], bool] = lambda: True,
                 scope: Callable[[Sequence[str]], list[str]] | None = None,
                 claim: Callable[[Sequence[str]], DeployFence] | None = None) -> None:
        self.engine = engine
        self.publisher = publisher
        self.progress = progress
        self.queue = queue
        self.self_heal = self_heal
        self.may_deploy = may_deploy
        """False on a follower (leader election): the job may have started as leader."""
        self.scope = scope
        """Shards: which of the selected targets this worker syncs (its shard's)."""
        self.claim = claim
        """Shards: the fence of a deploy of these targets (raises FencedError)."""
        self.state = WorkerState()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._waiting_posted: str | None = None
        self.idle = threading.Event()

    # --- sync --------------------------------------------------------------

    def sync_job(self, request: Request) -> None:
        # A deploy whose end the history could not store (a full disk, a server
        # down) must not show as running for good once the store is back.
        self.engine.record_pending()
        try:
            sha = self.engine.resolve(request.ref)
        except ReconcilerError as err:
            self.state.fetch_error = str(err)
            log.error("cannot fetch", extra=fields(reason=request.reason, error=str(err)))
            return
        self.state.fetched, self.state.head, self.state.fetch_error = True, sha, None
        try:
            desired: DesiredState | None = self.engine.load_revision(sha)
        except ValidationError:
            desired = None  # the engine records it and we post `error` below
        try:
            if desired is not None and self.scope is not None and not self._targets(desired):
                log.debug("no target of this shard", extra=fields(sha=sha))
                return
            blocked = self._blocked(desired) if desired is not None else ()
        except ReconcilerError as err:
            return self._refuse(sha, err)
        memory = self.state.memory
        verdict = scheduler.decide(memory, sha, explicit=request.explicit,
                                   blocked=bool(blocked))
        verdict = self._retry_verdict(sha, verdict, request)
        if verdict is Verdict.DEPLOY:
            self._deploy(sha, desired, request.reason, decided_with=memory)
        elif verdict is Verdict.WAIT_WINDOW and desired is not None:
            self._wait(sha, desired, blocked, request)
        else:
            # Polls find nothing new most of the time; only say so when asked.
            level = logging.DEBUG if request.reason in ("poll", "file-watch") else logging.INFO
            log.log(level, "nothing to deploy",
                    extra=fields(sha=sha, verdict=verdict.value, reason=request.reason))

    def _retry_verdict(self, sha: str, verdict: Verdict, request: Request) -> Verdict:
        """A failed head is deployed again once its retry is due (`defaults.retry`)."""
        retry = self.state.retry
        if retry is None or verdict is not Verdict.KNOWN_FAILED or retry.sha != sha:
            return verdict
        if time.monotonic() >= retry.due:
            return Verdict.DEPLOY
        # Woken early (another trigger shares the one timed slot): ask again at the due time.
        self.queue.put_at(retry.due, replace(request, reason="retry"))
        return verdict

    def _plan_retry(self, result: SyncResult, desired: DesiredState | None) -> None:
        """After a deploy: schedule the next retry of a failure, within the policy's limit."""
        previous = self.state.retry
        self.state.retry = None
        if result.result is not DeployResult.FAILURE or desired is None or not desired.retry.limit:
            return
        done = previous.attempt if previous is not None and previous.sha == result.revision else 0
        policy = desired.retry
        if done >= policy.limit:
            log.warning("deploy failed; no retry left", extra=fields(
                sha=result.revision, retries=done, limit=policy.limit))
            return
        delay = policy.delay(done + 1)
        self.state.retry = Retry(sha=result.revision, attempt=done + 1,
                                 due=time.monotonic() + delay)
        log.info("deploy failed; retrying", extra=fields(
            sha=result.revision, retry=done + 1, limit=policy.limit, delay=round(delay, 3)))
        self.queue.put_at(self.state.retry.due, Request(reason="retry"))

    def _targets(self, desired: DesiredState) -> list[str]:
        names = self.engine.selected_targets(desired)
        return names if self.scope is None else self.scope(names)

    def _blocked(self, desired: DesiredState) -> tuple[str, ...]:
        names = self._targets(desired)
        now = self._clock()
        blocked = windows.blocked_targets(desired.sync_windows, names, now)
        self.state.waiting = {t: windows.describe(desired.sync_windows, t, now) for t in blocked}
        return blocked

    def _refuse(self, sha: str, err: ReconcilerError) -> None:
        """The daemon cannot deploy this commit as configured (e.g. an unknown target)."""
        log.error("cannot deploy", extra=fields(sha=sha, error=str(err)))
        if sha not in self.state.memory.failed:
            self.publisher.publish(sha, State.ERROR, str(err))
        self.state.memory = scheduler.remember(self.state.memory, sha, ok=False)

    def _wait(self, sha: str, desired: DesiredState, blocked: tuple[str, ...],
              request: Request) -> None:
        now = self._clock()
        reasons = "; ".join(f"{t}: {self.state.waiting[t]}" for t in blocked)
        if self._waiting_posted != sha:
            self._waiting_posted = sha
            log.info("deploy waits for a sync window", extra=fields(sha=sha, windows=reasons))
            self.publisher.publish(sha, State.PENDING, f"waiting for sync window ({reasons})")
        changes = [windows.next_change(desired.sync_windows, t, now) for t in blocked]
        upcoming = [c for c in changes if c is not None]
        if upcoming:
            delay = max(0.0, (min(upcoming) - now).total_seconds()) + 0.05
            self.queue.put_at(time.monotonic() + delay, replace(request, reason="window"))

    def _deploy(self, sha: str, desired: DesiredState | None, reason: str, *,
                decided_with: scheduler.Memory | None = None) -> None:
        if self.engine.stop_requested:
            # Stopping already (the fetch ran on): a deploy now would record an
            # interrupted deploy that did nothing. The next start does it.
            log.info("stopping: deploy not started", extra=fields(sha=sha, trigger=reason))
            return
        if not self.may_deploy():
            # Leadership was lost while fetching: the new leader deploys this.
            log.info("not the leader any more: deploy not started",
                     extra=fields(sha=sha, trigger=reason))
            return
        if decided_with is not None and decided_with is not self.state.memory:
            # A shard was taken meanwhile and its memory read from the shared
            # history: the commit may be deployed (or failed) already. The
            # taking queued a job that decides again with that memory.
            log.info("memory replaced while deciding: deploy not started",
                     extra=fields(sha=sha, trigger=reason))
            return
        targets = self._targets(desired) if desired is not None else None
        fence = None
        if self.claim is not None and targets:
            try:
                fence = self.claim(targets)
            except FencedError:
                return  # the fence said why
            except HistoryError as err:
                log.error("history unavailable: deploy not started", extra=fields(
                    sha=sha, trigger=reason, error=str(err)))
                return
        if desired is not None and targets is not None:
            waves = sorted({a.wave for a in desired.apps.values() if a.target in targets})
            self.progress.expect(sha, waves)
        self.state.running, self.state.waiting = sha, {}
        log.info("rollout started", extra=fields(sha=sha, trigger=reason, targets=targets))
        try:
            result = self.engine.sync(
                sha, trigger=reason, fetch=False,
                targets=targets if self.scope is not None else None,
                guard=fence.guard if fence is not None else None)
        except FencedError:
            return  # refused at its start: the fence said why, nothing was written
        except HistoryError as err:
            # Nothing started: without its history no rollout may begin (it could
            # not record what it applies). Not a failure of the commit: the next
            # trigger tries again.
            log.error("history unavailable: deploy not started", extra=fields(
                sha=sha, trigger=reason, error=str(err)))
            return
        except ReconcilerError as err:
            self._refuse(sha, err)
            return
        finally:
            self.state.running = None
            self.progress.forget(sha)
        if fence is not None and fence.refused is not None:
            # Another replica holds these targets now and posts the commit's end.
            log.warning("rollout stopped: " + fence.refused, extra=fields(
                sha=sha, deploy=result.deploy_id))
            return
        self._finished(result)
        self._plan_retry(result, desired)

    def _finished(self, result: SyncResult) -> None:
        ok = result.result is DeployResult.SUCCESS
        if result.result is not DeployResult.INTERRUPTED:
            self.state.memory = scheduler.remember(self.state.memory, result.revision, ok=ok)
        self.state.last_result = result
        ROLLOUTS.labels(result=result.result).inc()
        # Only a shutdown stops the engine for good; any other interrupt of a
        # daemon's sync is a lost leadership.
        why = INTERRUPTED if self.engine.stop_requested else HANDED_OVER
        state, text = final_status(result, pulls.path_prefix(self.engine.settings.path),
                                   interrupted=why)
        level = logging.INFO if ok else logging.WARNING
        log.log(level, "rollout finished", extra=fields(
            sha=result.revision, result=result.result, deploy=result.deploy_id,
            rolled_back=result.rolled_back, message=text))
        self.publisher.publish(result.revision, state, text)

    # --- drift -------------------------------------------------------------

    def restore_drift(self, latest: dict[str, DriftCheck]) -> None:
        """Seed the drift state from the history's newest check per target."""
        self.state.drift = dict(latest)
        self.state.last_drift = report_of(latest.values())

    def drift_job(self) -> None:
        try:
            found = self.engine.drift(self._drift_targets())
        except ReconcilerError as err:
            DRIFT_CHECKS.labels(result="error").inc()
            log.error("drift check failed", extra=fields(error=str(err)))
            return
        if not found.revision:
            return  # nothing deployed yet
        report = drift_report(found, time.time())
        self.state.last_drift = report
        DRIFT_CHANGES.set(len(report.resources))
        checks = drift_checks(found, self._checked_targets(found), report.checked)
        self.state.drift.update({c.target: c for c in checks})
        try:
            ids = self.engine.history.record_drift(checks)
        except HistoryError as err:
            # The page still shows it until a restart; the next check is recorded anew.
            ids = []
            log.error("cannot record the drift check", extra=fields(error=str(err)))
        if found.empty:
            DRIFT_CHECKS.labels(result="clean").inc()
            log.debug("no drift", extra=fields(sha=found.revision))
            return
        DRIFT_CHECKS.labels(result="drift").inc()
        log.warning("drift detected", extra=fields(
            sha=found.revision, summary=planner.summary_line(found),
            resources=list(report.resources[:20]), self_heal=self.self_heal))
        if self.self_heal and self._heal(found.revision, report):
            drifted = [c for c in checks if c.drifted]
            self.state.drift.update({c.target: replace(c, healed=True) for c in drifted})
            try:
                self.engine.history.mark_drift_healed(
                    i for i, c in zip(ids, checks, strict=False) if c.drifted)
            except HistoryError as err:
                log.error("cannot record the self-heal", extra=fields(error=str(err)))

    def _drift_targets(self) -> list[str] | None:
        """Shards: the targets of this worker's shard in its last deployed commit."""
        if self.scope is None:
            return None
        deployed = self.state.memory.deployed
        return self._targets(self.engine.load_revision(deployed)) if deployed else []

    def _checked_targets(self, found: Plan) -> set[str]:
        """Every target the check compared, clean ones included: a clean check must
        replace a target's earlier drift, yet the plan names only changed apps."""
        targets = {c.target for c in found.changes()}
        try:
            targets.update(self._targets(self.engine.select(found.revision).desired))
        except ReconcilerError as err:
            log.warning("drift check: cannot list the checked targets",
                        extra=fields(sha=found.revision, error=str(err)))
        return targets

    def _heal(self, sha: str, report: DriftReport) -> bool:
        """Sync `sha` again; True when that sync succeeded."""
        try:
            desired = self.engine.load_revision(sha)
            if self._blocked(desired):
                log.info("self-heal waits for a sync window", extra=fields(sha=sha))
                return False
        except ReconcilerError as err:
            log.error("cannot self-heal", extra=fields(sha=sha, error=str(err)))
            return False
        self._deploy(sha, desired, "self-heal")
        result = self.state.last_result
        healed = (result is not None and result.revision == sha
                  and result.result is DeployResult.SUCCESS)
        self.state.last_drift = replace(report, healed=healed)
        return healed


def drift_report(found: Plan, now: float) -> DriftReport:
    resources = tuple(
        f"{c.target}:{c.host + '/' if c.host else ''}{c.id} ({c.action.value})"
        for c in found.changes()
    )
    return DriftReport(revision=found.revision, checked=now, summary=found.summary(),
                       resources=resources)


def drift_checks(found: Plan, targets: set[str], now: float) -> list[DriftCheck]:
    """One history row per checked target: resource ids and actions, never a diff
    or a value (a drifted Secret's diff is redacted, but its id is all we need)."""
    listed: dict[str, list[DriftedResource]] = {t: [] for t in targets}
    for c in found.changes():
        listed.setdefault(c.target, []).append(
            DriftedResource(host=c.host, resource=str(c.id), action=c.action.value))
    return [DriftCheck(target=t, checked_at=now, revision=found.revision,
                       drifted=len(items), resources=tuple(items))
            for t, items in sorted(listed.items())]


def report_of(checks: Iterable[DriftCheck]) -> DriftReport | None:
    """The page's DriftReport from stored per-target checks (None: never checked).
    The revision and time are the newest check's; `healed` only when every
    drifted target was healed."""
    ordered = sorted(checks, key=lambda c: c.checked_at)
    if not ordered:
        return None
    summary = {a.value: 0 for a in Action}
    resources: list[str] = []
    for check in ordered:
        for r in check.resources:
            summary[r.action] = summary.get(r.action, 0) + 1
            where = f"{r.host}/" if r.host else ""
            resources.append(f"{check.target}:{where}{r.resource} ({r.action})")
    drifted = [c for c in ordered if c.drifted]
    return DriftReport(revision=ordered[-1].revision, checked=ordered[-1].checked_at,
                       summary=summary, resources=tuple(resources),
                       healed=bool(drifted) and all(c.healed for c in drifted))


def final_status(result: SyncResult, prefix: str = "", *,
                 interrupted: str = INTERRUPTED) -> tuple[State, str]:
    """The commit status that ends a deploy, from the engine's result. `prefix` is
    the state root inside the repository (`pulls.path_prefix`): problems name
    files from the repository root, as the pull-request plan of the same commit
    and `reconciler validate` do. `interrupted` is the description of an
    interrupted deploy: why it stopped and who resumes it."""
    # Said last, so no cut loses it: the history did not record this end.
    note = "; not in history (see log)" if result.unrecorded else ""
    if result.result is DeployResult.SUCCESS:
        return State.SUCCESS, statuses.ending_with(result.message or "deployed", note)
    if result.result is DeployResult.INTERRUPTED:
        # Still pending: the next start re-syncs the head and posts its end.
        return State.PENDING, statuses.ending_with(interrupted, note)
    if result.result is DeployResult.ERROR:
        if result.problems:
            return State.ERROR, statuses.ending_with(statuses.validation_description(
                ValidationError(result.problems), prefix), note)
        return State.ERROR, statuses.ending_with(
            result.message or "invalid state repository", note)
    if result.rolled_back:
        tail = "rolled back"
    elif result.rollback_failed:
        tail = "rollback failed"
    else:
        tail = "not rolled back"
    return State.FAILURE, statuses.ending_with(result.message or "deploy failed",
                                               f"; {tail}{note}")
