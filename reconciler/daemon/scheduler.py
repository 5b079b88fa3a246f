"""What the daemon does next: coalescing triggers and remembering failed commits.

The daemon runs one job at a time on one worker thread, so one rollout per
target at a time holds by construction (a rollout spans all of the daemon's
targets in wave order; running two at once would break that order). Triggers
never run work themselves: they `put` a request into the `WorkQueue` and
return at once, which makes them safe from any thread (the file watch, the
poll timer, signal handlers, the webhook receiver).

Coalescing: a request does not carry "deploy this commit" but "the branch may
have moved". While a rollout runs, any number of requests fold into one
pending request; when the rollout ends, the worker fetches once and deploys
the newest commit. Three commits during one rollout give exactly one more
rollout, of the newest.

Failed-commit memory (`Memory`, pure): a commit whose deploy failed is not
retried while it is still the newest commit; a new commit, or an explicit
sync (`explicit=True`), deploys again. The decision itself (`decide`) is a
pure function of the memory, the head commit and whether a sync window blocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

from reconciler.outcomes import DeployResult

_REFUSED = frozenset({DeployResult.FAILURE, DeployResult.ERROR})
"""A commit whose newest deploy ended so waits for a new commit."""


@dataclass(frozen=True, kw_only=True)
class Request:
    reason: str
    """What asked: start, poll, file-watch, webhook, sync, window, drift."""
    ref: str | None = None
    """A revision the trigger named (an explicit sync of a sha); None: the branch head."""
    explicit: bool = False
    """An explicit sync: deploys even a failed or already deployed commit."""


def coalesce(pending: Request | None, new: Request) -> Request:
    """Fold a new request into the pending one: newest wins, explicit is sticky."""
    if pending is None:
        return new
    explicit = pending.explicit or new.explicit
    ref = new.ref if new.ref is not None or new.explicit else pending.ref
    return replace(new, explicit=explicit, ref=ref)


class Verdict(str, Enum):
    DEPLOY = "deploy"
    UP_TO_DATE = "up-to-date"
    KNOWN_FAILED = "known-failed"
    WAIT_WINDOW = "wait-window"


@dataclass(frozen=True, kw_only=True)
class Memory:
    deployed: str | None = None
    """The commit the daemon last deployed successfully (or found deployed at start)."""
    failed: frozenset[str] = frozenset()
    """Commits whose deploy failed or that failed validation, not to be retried."""


def decide(memory: Memory, head: str, *, explicit: bool, blocked: bool) -> Verdict:
    if not explicit and head == memory.deployed:
        return Verdict.UP_TO_DATE
    if not explicit and head in memory.failed:
        return Verdict.KNOWN_FAILED
    if blocked:
        return Verdict.WAIT_WINDOW
    return Verdict.DEPLOY


def remember(memory: Memory, sha: str, *, ok: bool) -> Memory:
    """The memory after a deploy of `sha` ended: a success forgets only the failure
    of `sha` itself, a failure is added to the set.

    A success is not always of a newer commit: self-heal re-deploys the last
    good revision while the failed head is still the branch head, and
    forgetting that head's failure would deploy it again at the next poll,
    fail, drift, heal, and so on in a loop.
    """
    if ok:
        return Memory(deployed=sha, failed=memory.failed - {sha})
    return Memory(deployed=memory.deployed, failed=memory.failed | {sha})


class DeployLike(Protocol):
    @property
    def revision(self) -> str: ...

    @property
    def result(self) -> str: ...


def seed(deploys: Iterable[DeployLike]) -> Memory:
    """Memory from the history at start, newest deploy first.

    Each commit counts by its newest deploy: a failure or an error means it
    waits for a new commit (or an explicit sync), across restarts too, even
    when a later self-heal of an older revision succeeded. Only the newest
    deploy of all says what is deployed: a success means that commit is (the
    first drift check re-plans it against live state); an interrupted or
    running one means nothing is, so the head is deployed again, re-planned
    from live state.
    """
    newest: dict[str, str] = {}
    deployed: str | None = None
    for index, record in enumerate(deploys):
        if index == 0 and record.result == DeployResult.SUCCESS:
            deployed = record.revision
        newest.setdefault(record.revision, record.result)
    failed = frozenset(sha for sha, result in newest.items() if result in _REFUSED)
    return Memory(deployed=deployed, failed=failed)


@dataclass(frozen=True, kw_only=True)
class Job:
    request: Request | None = None
    """A sync request, or None for a drift check."""
    drift: bool = False


class WorkQueue:
    """A one-slot, coalescing queue between triggers and the worker. No I/O."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: Request | None = None
        self._drift = False
        self._wake_at: float | None = None
        self._wake_request: Request | None = None
        self._closed = False
        self._busy = False

    def put(self, request: Request) -> None:
        with self._cond:
            self._pending = coalesce(self._pending, request)
            self._cond.notify_all()

    def put_drift(self) -> None:
        with self._cond:
            self._drift = True
            self._cond.notify_all()

    def put_at(self, when: float, request: Request) -> None:
        """Queue `request` at monotonic time `when` (a sync window closing)."""
        with self._cond:
            if self._wake_at is None or when < self._wake_at:
                self._wake_at = when
            self._wake_request = request
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def done(self) -> None:
        """The job the worker took last has finished."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued and nothing running (a timed wake-up may still be due)."""
        with self._cond:
            return not (self._busy or self._pending is not None or self._drift)

    def get(self, timeout: float | None = None) -> Job | None:
        """The next job; None when closed or on timeout. Syncs go before drift checks."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                self._release_due()
                if self._pending is not None:
                    request, self._pending = self._pending, None
                    self._busy = True
                    return Job(request=request)
                if self._drift:
                    self._drift, self._busy = False, True
                    return Job(drift=True)
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                limits = [t - now for t in (deadline, self._wake_at) if t is not None]
                self._cond.wait(max(0.001, min(limits)) if limits else None)
            return None

    def _release_due(self) -> None:
        if self._wake_at is not None and time.monotonic() >= self._wake_at:
            assert self._wake_request is not None
            self._pending = coalesce(self._pending, self._wake_request)
            self._wake_at, self._wake_request = None, None
