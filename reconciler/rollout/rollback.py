"""Rollback: return the apps a failed rollout changed to their last good revision.

Only apps that this rollout actually sent changes for, and whose policy is
`rollback: auto`, are rolled back; they go in reverse wave order (then reverse
name order), one at a time. For each, the revision it last deployed
successfully at is loaded, planned for that app alone against *fresh* live
state (what the failed rollout left behind), and applied through the same
batches and the same health gate, so a rollback never waits longer than a
rollout would. An app with no last good revision, or that its last good
revision does not name, is left as it is, and the events say so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler import plan as planner
from reconciler.errors import ReconcilerError
from reconciler.events import EventKind
from reconciler.model import DesiredState, LiveView, RollbackPolicy
from reconciler.rollout.runner import AppOutcome, Rollout

LoadRevision = Callable[[str], DesiredState]
ReadLive = Callable[[DesiredState, Sequence[str]], Mapping[str, LiveView]]
"""(desired, target names) -> live views of those targets."""
MakeRollout = Callable[[DesiredState], Rollout]


@dataclass(frozen=True, kw_only=True)
class RollbackOutcome:
    app: str
    status: str
    """success, failure or skipped (left as is)."""
    revision: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class RollbackResult:
    apps: tuple[RollbackOutcome, ...] = ()

    @property
    def rolled_back(self) -> bool:
        return any(a.status == "success" for a in self.apps)

    @property
    def ok(self) -> bool:
        return all(a.status == "success" for a in self.apps)

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
        common = {"wave": outcome.wave, "app": outcome.app, "target": outcome.target,
                  "hosts": outcome.hosts}
        revision = last_good(outcome.app)
        failed.event(EventKind.ROLLBACK_STARTED, status="running",
                     message=f"to {revision}" if revision else "", **common)
        result = _one(outcome.app, revision, loaded, load_revision, read_live, make_rollout)
        failed.event(EventKind.ROLLBACK_DONE, status=result.status, message=result.message,
                     **common)
        results.append(result)
    return RollbackResult(apps=tuple(results))


def _one(
    app: str,
    revision: str | None,
    loaded: dict[str, DesiredState],
    load_revision: LoadRevision,
    read_live: ReadLive,
    make_rollout: MakeRollout,
) -> RollbackOutcome:
    if revision is None:
        return RollbackOutcome(app=app, status="skipped",
                               message="no last good revision: left as is")
    try:
        if revision not in loaded:
            loaded[revision] = load_revision(revision)
        old = loaded[revision]
        if app not in old.apps:
            return RollbackOutcome(app=app, status="skipped", revision=revision,
                                   message=f"not in {revision[:12]}: left as is")
        views = read_live(old, [old.apps[app].target])
        steps = planner.plan(old, views, apps=[app])
        rollout = make_rollout(old)
        result = rollout.run_waves(steps)
        if result.ok:
            result = rollout.run_prune(steps)
    except ReconcilerError as err:
        return RollbackOutcome(app=app, status="failure", revision=revision, message=str(err))
    if not result.ok:
        return RollbackOutcome(app=app, status="failure", revision=revision,
                               message=result.message)
    return RollbackOutcome(app=app, status="success", revision=revision,
                           message=f"back at {revision[:12]}")
