"""Pull-request plans: validate and plan every new pull-request head, post `reconciler/plan`.

The daemon fetches pull-request heads (GitHub and Gitea `refs/pull/*/head`,
GitLab `refs/merge-requests/*/head`, or branches matching a pattern) and calls
`PullRequestPlanner.scan()` on its poll timer and file watch, and
`plan_ref(ref)` for the one head a webhook names. For each head commit not
planned before, the planner posts `pending`, then:
- `success` with the plan summary ("2 to create, 1 to change, 0 to delete"),
  when the commit is valid and live state could be read;
- `error` with the first validation problems as `file:line: message`;
- `failure` when live state could not be read (a backend is down): that head
  is tried again on a later scan, after `retry_after` seconds.

Invariants:
- A plan never changes anything on any target: it opens backends only to read
  live state (`Backend.read_live`), and never calls apply. It takes no target
  lock either, so a pull request is planned even while a long rollout runs.
- The full plan (`plan.to_json`, diffs already redacted) is kept for the status
  page in the history (`History.save_plan`), so every replica sharing it
  serves it; a head whose record exists is not planned again, across restarts
  and replicas too.
- A reporter that fails never stops the scan (`reporters.http.SafeReporter`).
- After each full scan, records are pruned to the newest `keep` plus those of
  heads that still exist (`prune_records`): a closed pull request's record goes
  once `keep` newer ones exist, an open one's never does (or it would be
  planned again at the next scan).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler import plan as planner
from reconciler.engine import Engine
from reconciler.errors import ReconcilerError, ValidationError
from reconciler.history import History
from reconciler.model import Plan
from reconciler.reporters import CommitStatus, Context, Reporter, State, shorten
from reconciler.reporters.http import SafeReporter

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = ("refs/pull/*/head",)
MAX_PROBLEMS = 3
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    sha: str
    ref: str
    state: State
    description: str
    plan: Plan | None = None
    problems: tuple[str, ...] = ()
    """`file:line: message` for every validation problem (error), else empty."""

    def record(self) -> dict[str, Any]:
        """What the status page and `/api/v1/plans/<sha>` show."""
        return {
            "sha": self.sha, "ref": self.ref, "state": self.state.value,
            "description": self.description, "problems": list(self.problems),
            "plan": planner.to_json(self.plan) if self.plan is not None else None,
        }


# --- pure helpers --------------------------------------------------------------


def fetch_refspecs(patterns: Sequence[str]) -> tuple[str, ...]:
    """"refs/pull/*/head" -> "+refs/pull/*/head:refs/pull/*/head"; full refspecs pass."""
    return tuple(p if ":" in p else f"+{p}:{p}" for p in patterns)


def ref_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """The local ref globs the refspecs (or plain patterns) fetch into."""
    return tuple(p.split(":", 1)[1] if ":" in p else p for p in patterns)


def remote_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """The remote ref globs the refspecs (or plain patterns) fetch from."""
    return tuple(spec.lstrip("+").partition(":")[0] for spec in fetch_refspecs(patterns))


def match_ref(ref: str, patterns: Sequence[str]) -> tuple[str, str] | None:
    """`(refspec, local ref)` that fetch just the remote `ref`; None when no pattern covers it.

    A webhook names one pull-request head; fetching only that ref keeps the
    plan of a busy repository (thousands of pull requests) as fast as one fetch.
    """
    for spec in fetch_refspecs(patterns):
        src, _, dst = spec.lstrip("+").partition(":")
        if not fnmatch.fnmatchcase(ref, src):
            continue
        if "*" not in src and "*" not in dst:
            return f"+{ref}:{dst}", dst
        if src.count("*") == 1 and dst.count("*") == 1:
            head, tail = src.split("*")
            local = dst.replace("*", ref[len(head):len(ref) - len(tail)])
            return f"+{ref}:{local}", local
    return None


def problem_lines(error: ValidationError, prefix: str = "") -> tuple[str, ...]:
    """Each problem as `file:line: message`, file relative to the repository root."""
    return tuple(f"{prefix}{p}" for p in error.problems)


def error_description(problems: Sequence[str]) -> str:
    shown = list(problems[:MAX_PROBLEMS])
    more = len(problems) - len(shown)
    return shorten("invalid: " + "; ".join(shown) + (f" (+{more} more)" if more > 0 else ""))


def path_prefix(path: str) -> str:
    clean = path.strip("/")
    return "" if clean in ("", ".") else clean + "/"


def plan_commit(engine: Engine, sha: str) -> Plan:
    """Validate commit `sha` and plan it against live state, reading only: the
    engine's pipeline (`Engine.plan`) without a fetch, since the caller fetched
    already. It takes no target lock, so it never waits for a rollout."""
    return engine.plan(sha, fetch=False)


def evaluate(engine: Engine, sha: str, ref: str, prefix: str = "") -> PlanResult:
    """Plan one commit and turn the outcome into a result; raises nothing ours."""
    try:
        result = plan_commit(engine, sha)
    except ValidationError as error:
        problems = problem_lines(error, prefix)
        return PlanResult(sha=sha, ref=ref, state=State.ERROR,
                          description=error_description(problems), problems=problems)
    except ReconcilerError as error:
        return PlanResult(sha=sha, ref=ref, state=State.FAILURE,
                          description=shorten(f"cannot plan: {error}"))
    unplannable = result.errors()
    if unplannable:
        app, why = unplannable[0]
        more = f" (and {len(unplannable) - 1} more apps)" if len(unplannable) > 1 else ""
        return PlanResult(sha=sha, ref=ref, state=State.FAILURE, plan=result,
                          description=shorten(f"cannot plan app {app}: {why}{more}"))
    return PlanResult(sha=sha, ref=ref, state=State.SUCCESS,
                      description=planner.summary_line(result), plan=result)


# --- the plan store ------------------------------------------------------------


def save_record(history: History, result: PlanResult) -> None:
    """Keep the plan record in the history (one transaction: a reader sees all or none)."""
    history.save_plan(result.sha, result.ref, result.state.value, result.record())


class PlanReader(Protocol):
    def plan(self, sha: str) -> dict[str, Any] | None: ...


def load_record(history: PlanReader, sha: str) -> dict[str, Any] | None:
    """The stored plan of `sha` for the status page; None when unknown or not a commit id.
    `history` is a History, or the page's reader of it (`history.stale.StaleReads`)."""
    if not _SHA.match(sha):
        return None
    return history.plan(sha)


def prune_records(history: History, keep: int, current: Collection[str]) -> list[str]:
    """Forget plan records but the `keep` newest and those whose sha is in `current`;
    returns the forgotten shas. Newest by planning time: a record is written once,
    when its head is planned."""
    return history.prune_plans(keep, current)


# --- the planner ---------------------------------------------------------------


@dataclass(kw_only=True)
class PullRequestPlanner:
    """Plans pull-request heads once each. Call `scan()` from one thread at a time."""

    engine: Engine
    reporters: Sequence[Reporter] = ()
    patterns: Sequence[str] = DEFAULT_PATTERNS
    exclude: Sequence[str] = ()
    """Refs never planned here (the tracked branch, when patterns cover branches)."""
    public_url: str | None = None
    retry_after: float = 300.0
    keep: int | None = None
    """Plan records kept after each scan besides the current heads'; None keeps all."""
    clock: Callable[[], float] = time.monotonic
    _failed: dict[str, float] = field(default_factory=dict)
    _safe: list[SafeReporter] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._safe = [SafeReporter(r, getattr(r, "name", type(r).__name__))
                      for r in self.reporters]

    def scan(self, *, fetch: bool = True) -> list[PlanResult]:
        """Fetch the heads, then plan and report every head not planned yet."""
        mirror = self.engine.mirror
        if fetch:
            mirror.fetch(fetch_refspecs(self.patterns))
        refs: dict[str, str] = {}
        for pattern in ref_patterns(self.patterns):
            refs.update(mirror.refs(pattern))
        results = []
        for ref, sha in sorted(self.heads(refs).items()):
            if self._due(sha):
                results.append(self.plan_head(ref, sha))
        if self.keep is not None:
            # Only after a full scan: it alone knows every head that is still open.
            deleted = prune_records(self.engine.history, self.keep, set(refs.values()))
            if deleted:
                log.info("pruned %d plan records", len(deleted))
        return results

    def plan_ref(self, ref: str, *, fetch: bool = True) -> PlanResult | None:
        """Fetch one remote head (a webhook named it) and plan it when due.

        None when no pattern covers `ref`, the remote has no such ref, the ref
        is excluded, or its head was planned already.
        """
        matched = match_ref(ref, self.patterns)
        if matched is None:
            return None
        spec, local = matched
        mirror = self.engine.mirror
        if fetch:
            mirror.fetch((spec,))
        sha = self.heads(mirror.refs(local)).get(local)
        if sha is None or not self._due(sha):
            return None
        return self.plan_head(local, sha)

    def heads(self, refs: Mapping[str, str]) -> dict[str, str]:
        """The heads to plan: neither an excluded ref nor the commit one points at.

        A branch just created off the tracked branch points at the tracked
        branch's commit, which has a deploy status; a plan there says nothing.
        """
        mirror = self.engine.mirror
        tracked = {sha for ref in self.exclude for sha in mirror.refs(ref).values()}
        return {ref: sha for ref, sha in refs.items()
                if ref not in self.exclude and sha not in tracked}

    def plan_head(self, ref: str, sha: str) -> PlanResult:
        self._post(sha, State.PENDING, "planning against live state")
        prefix = path_prefix(self.engine.settings.path)
        result = evaluate(self.engine, sha, ref, prefix)
        if result.state is State.FAILURE:
            self._failed[sha] = self.clock()
        else:
            self._failed.pop(sha, None)
            save_record(self.engine.history, result)
        self._post(sha, result.state, result.description)
        log.info("planned %s at %s: %s", ref, sha[:12], result.description)
        return result

    def _due(self, sha: str) -> bool:
        if sha in self._failed:
            return self.clock() - self._failed[sha] >= self.retry_after
        return self.engine.history.plan(sha) is None

    def _post(self, sha: str, state: State, description: str) -> None:
        target = f"{self.public_url.rstrip('/')}/plans/{sha}" if self.public_url else None
        status = CommitStatus.make(sha=sha, context=Context.PLAN, state=state,
                                   description=description, target_url=target)
        for reporter in self._safe:
            reporter.report(status)
