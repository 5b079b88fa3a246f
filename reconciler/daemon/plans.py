"""Pull-request plans in the daemon: a second worker thread beside the deploy worker.

Why a thread of its own: a plan reads live state (one SSH session per host,
one list call per Kubernetes kind), which can take seconds; run on the deploy
worker, every plan would hold back the next deploy of the tracked branch, and
a long rollout would hold back every plan. Here the two only meet where they
must: the mirror serialises fetches, and the engine serialises loading a
commit. A plan never takes a target lock and never calls `Backend.apply`
(`reconciler.pulls`), so it cannot change a target, whatever runs beside it.

Requests coalesce like the deploy queue's: any number of "scan" requests
(poll, file watch, start) during a plan fold into one scan after it; refs
named by webhooks are planned before the next scan, each once.

Invariants:
- Nothing raises out of the loop: a failed fetch or a broken backend is
  logged, and the next trigger tries again (`PullRequestPlanner` retries a
  head whose live state could not be read after its `retry_after`).
- Each head commit is planned once (the planner's record in the history),
  across restarts too, and across replicas that share a history.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from reconciler import pulls
from reconciler.daemon.logging import fields
from reconciler.errors import ReconcilerError

log = logging.getLogger("reconciler.daemon")

PLANS = Counter("reconciler_daemon_plans_total", "Pull-request heads the daemon planned",
                ["result"])
RECENT = 20


@dataclass(kw_only=True)
class PlanState:
    """What the status page and tests may read; written by the plan worker only."""

    recent: deque[pulls.PlanResult] = field(default_factory=lambda: deque(maxlen=RECENT))
    """The newest plans, newest last."""
    running: str | None = None
    """The ref being fetched or planned, or "scan"."""
    last_scan: float | None = None
    """time.time() when the last full scan ended (None: none yet)."""
    last_error: str | None = None


class PlanWorker:
    """Runs `PullRequestPlanner` on its own thread; `scan()` and `plan_ref()` only queue."""

    def __init__(self, planner: pulls.PullRequestPlanner) -> None:
        self.planner = planner
        self.state = PlanState()
        self._cond = threading.Condition()
        self._scan: str | None = None
        self._refs: dict[str, str] = {}
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="reconciler-plans", daemon=True)

    # --- requests (any thread, never blocking) --------------------------------

    def scan(self, reason: str) -> None:
        """Fetch every pull-request head and plan the new ones."""
        with self._cond:
            self._scan = reason
            self._cond.notify_all()

    def plan_ref(self, reason: str, ref: str) -> None:
        """Fetch just `ref` and plan its head; a full scan when no pattern covers it
        (a webhook's refs/pull/7/head while the daemon plans branches, say)."""
        if pulls.match_ref(ref, self.planner.patterns) is None:
            log.info("pull request ref not covered by pull_requests.refspecs; scanning",
                     extra=fields(ref=ref, reason=reason))
            self.scan(reason)
            return
        with self._cond:
            self._refs[ref] = reason
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not (self._busy or self._scan is not None or self._refs)

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the running plan; True when the thread ended. A plan only
        reads, so a caller may give up waiting without leaving anything half done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _take(self) -> tuple[dict[str, str], str | None] | None:
        with self._cond:
            while not self._closed and self._scan is None and not self._refs:
                self._cond.wait()
            if self._closed:
                return None
            refs, self._refs = self._refs, {}
            scan, self._scan = self._scan, None
            self._busy = True
            return refs, scan

    def _loop(self) -> None:
        while (work := self._take()) is not None:
            refs, scan = work
            try:
                for ref, reason in refs.items():
                    self._run(ref, reason, functools.partial(self._one, ref))
                if scan is not None:
                    self._run("scan", scan, self.planner.scan)
                    self.state.last_scan = time.time()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _one(self, ref: str) -> list[pulls.PlanResult]:
        result = self.planner.plan_ref(ref)
        return [result] if result is not None else []

    def _run(self, what: str, reason: str, job: Callable[[], list[pulls.PlanResult]]) -> None:
        self.state.running = what
        started = time.monotonic()
        try:
            results = job()
        except ReconcilerError as err:
            self.state.last_error = str(err)
            log.error("cannot plan pull requests", extra=fields(
                what=what, reason=reason, error=str(err)))
            return
        except Exception:
            # The loop must outlive any bug in one plan; the next trigger retries.
            log.exception("pull request plan failed", extra=fields(what=what, reason=reason))
            return
        finally:
            self.state.running = None
        self.state.last_error = None
        for result in results:
            self.state.recent.append(result)
            PLANS.labels(result=result.state.value).inc()
            log.info("pull request planned", extra=fields(
                ref=result.ref, sha=result.sha, state=result.state.value,
                description=result.description, reason=reason,
                seconds=round(time.monotonic() - started, 3)))
