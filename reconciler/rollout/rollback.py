"""Rollback: return the apps a failed rollout changed to their last good revision.

Only apps that this rollout changed, and whose policy is `rollback: auto`, are
rolled back. Changed means it sent them changes, or one of their hosts failed
the re-check of what an interrupted deploy (of this revision or an earlier
one) applied to it: that deploy never finished, so its changes are this
rollout's to undo, and no later rollout would see them as changed. They go
in reverse wave order (then reverse name order), one at a time. For each,
the revision it last deployed successfully at is loaded, planned for that app
alone against *fresh* live state (what the failed rollout left behind), and
applied through the same batches and the same health gate, so a rollback
never waits longer than a rollout would.

An app new in this rollout (no last good revision) has "not there" as its
last good state: rollback deletes exactly the objects this rollout created
for it (a create went to the backend) that are live and still owned by it.
Objects it only updated existed before and are left alone, because there is
no older version to return them to; every backend refuses to delete what it
does not own anyway. On a re-checked host the creates were made by the
interrupted deploy and not recorded as such (an update of an object that
existed before is indistinguishable in the inventory), so nothing there is
deleted: the outcome is "skipped" and names the hosts left for a human.

A rollback is tried once per app and never rolled back itself: when it
fails, the result says so and the app stays as the failed rollback left it.

A host that cannot be reached when the rollback reads live state (its
backend raises HostsUnreachable) does not stop the others: the app is planned
and returned on every host that was reached, and ends "partial", naming the
unreachable hosts it had changed ("failure" when it reached none of them).
Their inventory keeps what the failed rollout applied (not "healthy"), so
the next sync that reaches them plans them from what they hold and converges
them.

A stop request (the failed rollout's `stop`) starts no further app's
rollback, and the rollout of the one in progress stops after its batch in
flight; those apps end "interrupted", and the deploy with them: the next
sync re-plans from live state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from reconciler import plan as planner
from reconciler.errors import HostsUnreachable, ReconcilerError
from reconciler.events import EventKind
from reconciler.model import Action, AppPlan, Change, DesiredState, LiveView, Plan, RollbackPolicy
from reconciler.outcomes import RollbackStatus, StepStatus
from reconciler.rollout.runner import AppOutcome, Rollout, RolloutResult, unexpected

LoadRevision = Callable[[str], DesiredState]
ReadLive = Callable[[DesiredState, Sequence[str]], Mapping[str, LiveView]]
"""(desired, target names) -> live views of those targets."""
MakeRollout = Callable[[DesiredState], Rollout]


@dataclass(frozen=True, kw_only=True)
class RollbackOutcome:
    app: str
    status: RollbackStatus
    """success, failure, partial (back on every host but the unreachable ones),
    skipped (left as is) or interrupted (by a stop request)."""
    revision: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class RollbackResult:
    apps: tuple[RollbackOutcome, ...] = ()

    @property
    def rolled_back(self) -> bool:
        """Every app that needed it is back: a partial rollback is not one."""
        return bool(self.apps) and self.ok

    @property
    def ok(self) -> bool:
        return all(a.status is RollbackStatus.SUCCESS for a in self.apps)

    @property
    def failed(self) -> bool:
        """Some app is not back where it should be (a partial one included)."""
        return any(a.status in (RollbackStatus.FAILURE, RollbackStatus.PARTIAL) for a in self.apps)

    @property
    def interrupted(self) -> bool:
        return any(a.status is RollbackStatus.INTERRUPTED for a in self.apps)

    @property
    def message(self) -> str:
        return "; ".join(f"{a.app}: {a.status}" + (f" ({a.message})" if a.message else "")
                         for a in self.apps)


def candidates(outcomes: Sequence[AppOutcome], desired: DesiredState) -> list[AppOutcome]:
    """Changed apps with rollback auto, in reverse wave order. Pure."""
    chosen = [
        o for o in outcomes
        if o.changed and o.app in desired.apps
        and desired.apps[o.app].rollback is RollbackPolicy.AUTO
    ]
    return sorted(chosen, key=lambda o: (o.wave, o.app), reverse=True)


def roll_back(
    failed: Rollout,
    outcomes: Sequence[AppOutcome],
    *,
    last_good: Callable[[str], str | None],
    load_revision: LoadRevision,
    read_live: ReadLive,
    make_rollout: MakeRollout,
) -> RollbackResult:
    results: list[RollbackOutcome] = []
    loaded: dict[str, DesiredState] = {}
    for outcome in candidates(outcomes, failed.desired):
        if failed.stop.is_set():
            results.append(RollbackOutcome(app=outcome.app, status=RollbackStatus.INTERRUPTED,
                                           message="not started: stop requested"))
            continue
        common = {"wave": outcome.wave, "app": outcome.app, "target": outcome.target,
                  "hosts": tuple(dict.fromkeys(outcome.hosts + outcome.rechecked))}
        revision = last_good(outcome.app)
        failed.event(EventKind.ROLLBACK_STARTED, status=StepStatus.RUNNING,
                     message=f"to {revision}" if revision else "removing what it created",
                     **common)
        try:
            if revision is None:
                result = _remove_created(outcome, failed, read_live, make_rollout)
            else:
                result = _one(outcome, revision, loaded, load_revision, read_live, make_rollout)
        except Exception as err:  # one app's rollback must not stop the others'
            why = (str(err) if isinstance(err, ReconcilerError)
                   else unexpected(err, f"rollback of {outcome.app}"))
            result = RollbackOutcome(app=outcome.app, status=RollbackStatus.FAILURE,
                                     revision=revision or "", message=why)
        failed.event(EventKind.ROLLBACK_DONE, status=result.status, message=result.message,
                     **common)
        results.append(result)
    return RollbackResult(apps=tuple(results))


def _one(
    outcome: AppOutcome,
    revision: str,
    loaded: dict[str, DesiredState],
    load_revision: LoadRevision,
    read_live: ReadLive,
    make_rollout: MakeRollout,
) -> RollbackOutcome:
    app = outcome.app
    if revision not in loaded:
        loaded[revision] = load_revision(revision)
    old = loaded[revision]
    if app not in old.apps:
        return RollbackOutcome(app=app, status=RollbackStatus.SKIPPED, revision=revision,
                               message=f"not in {revision[:12]}: left as is")
    target = old.apps[app].target
    view, unreachable = _read(read_live, old, target)
    steps = planner.plan(old, {target: view}, apps=[app])
    rollout = make_rollout(old)
    result = rollout.run_waves(steps)
    if result.ok:
        result = rollout.run_prune(steps)
    return _past(_outcome(app, revision, result, f"back at {revision[:12]}"),
                 outcome, unreachable)


def _read(read_live: ReadLive, desired: DesiredState, target: str
          ) -> tuple[LiveView, tuple[str, ...]]:
    """The target's live view, and the hosts it could not reach (left out of it)."""
    try:
        return read_live(desired, [target])[target], ()
    except HostsUnreachable as err:
        return err.view, err.hosts


def _past(done: RollbackOutcome, outcome: AppOutcome, unreachable: Sequence[str]
          ) -> RollbackOutcome:
    """`done`, saying which hosts this rollout changed it could not return."""
    changed = set(outcome.hosts + outcome.rechecked)
    left = [h for h in unreachable if h in changed]
    if not left:
        return done
    named = ", ".join(left)
    if done.status is RollbackStatus.SUCCESS and set(left) == changed:
        return replace(done, status=RollbackStatus.FAILURE,
                       message=f"not rolled back: unreachable: {named}")
    if done.status is RollbackStatus.SUCCESS:
        return replace(done, status=RollbackStatus.PARTIAL, message=(
            f"{done.message} on the reachable hosts; unreachable, left for the next "
            f"sync: {named}"))
    return replace(done, message=f"{done.message}; unreachable: {named}")


def _remove_created(
    outcome: AppOutcome, failed: Rollout, read_live: ReadLive, make_rollout: MakeRollout
) -> RollbackOutcome:
    """Delete what the failed rollout created for a brand-new app, and nothing else."""
    app, target = outcome.app, outcome.target
    view, unreachable = _read(read_live, failed.desired, target)
    doomed = tuple(
        Change(id=rid, app=app, target=target, action=Action.DELETE, host=host,
               live=view.live[(host, rid)].state)
        for host, rid in outcome.created
        if (host, rid) in view.live and view.live[(host, rid)].owner_app == app
    )
    # Creates that never reached the backend left only their inventory intent
    # (on a host not reached now, they may well be there).
    never = [key for key in outcome.created
             if key not in view.live and key[0] not in unreachable]
    failed.recorder.remove_inventory(target, never)
    if not doomed:
        done = RollbackOutcome(app=app, status=RollbackStatus.SUCCESS,
                               message="new app: nothing to remove")
    else:
        removal = Plan(revision=failed.desired.revision, waves=(),
                       prune=(AppPlan(app=app, target=target, wave=outcome.wave,
                                      changes=doomed),))
        result = make_rollout(failed.desired).run_prune(removal)
        done = _outcome(app, "", result, f"new app: removed {len(doomed)} object(s) it created")
    done = _past(done, outcome, unreachable)
    left = outcome.rechecked
    if not left or done.status is not RollbackStatus.SUCCESS:
        return done
    # Not "success": those hosts still hold what failed, and `rolled_back`
    # must not claim otherwise. Kubernetes and YARN name no host: the target.
    named = ", ".join(h or target for h in left[:3]) + (
        f" +{len(left) - 3}" if len(left) > 3 else "")
    return RollbackOutcome(
        app=app, status=RollbackStatus.SKIPPED,
        message=(f"{done.message}; " if doomed else "new app: ")
        + f"left as is on re-checked {named} (what an interrupted deploy created is unknown)")


def _outcome(app: str, revision: str, result: RolloutResult, done: str) -> RollbackOutcome:
    if result.interrupted and not result.halted:
        return RollbackOutcome(app=app, status=RollbackStatus.INTERRUPTED, revision=revision,
                               message=result.stopped or "stop requested")
    if not result.ok:
        return RollbackOutcome(app=app, status=RollbackStatus.FAILURE, revision=revision,
                               message=result.message)
    return RollbackOutcome(app=app, status=RollbackStatus.SUCCESS, revision=revision, message=done)
