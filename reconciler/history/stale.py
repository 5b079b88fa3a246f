"""The history as a reader that must answer while the store is away: the status page.

Why: with the history in PostgreSQL, a server that is down for a while must
not take the page down with it. `StaleReads` answers each read from the store
when it can, and otherwise with the last answer it had to the same question,
saying since when it is stale (`unavailable`). After a failure it does not ask
the store again for `retry_after` seconds, so a page of many reads answers at
once instead of waiting out the store's timeout for each.

Invariants:
- Read-only, like the page: nothing here writes.
- A stale answer is only ever one the store gave before; a question never
  answered raises the store's `HistoryError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from reconciler.errors import HistoryError
from reconciler.history.records import DeployRecord
from reconciler.history.store import History

T = TypeVar("T")
KEEP = 512
"""Answers remembered at most (the page asks a few dozen distinct questions)."""


class StaleReads:
    def __init__(self, history: History, *, retry_after: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.history = history
        self.retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[Hashable, Any] = {}
        self._down_since: float | None = None
        self._why = ""
        self._retry_at = 0.0

    @property
    def unavailable(self) -> tuple[str, float] | None:
        """(why, time.time() it went away) while answers are stale; None when fresh."""
        with self._lock:
            return (self._why, self._down_since) if self._down_since is not None else None

    def deploys(self, limit: int = 50) -> list[DeployRecord]:
        return self._read(("deploys", limit), lambda: self.history.deploys(limit=limit))

    def deploy(self, deploy_id: int) -> DeployRecord | None:
        return self._read(("deploy", deploy_id), lambda: self.history.deploy(deploy_id))

    def last_successful_revision(self) -> str | None:
        return self._read(("last_successful",), self.history.last_successful_revision)

    def last_good(self, app: str) -> str | None:
        return self._read(("last_good", app), lambda: self.history.last_good(app))

    def plan(self, sha: str) -> dict[str, Any] | None:
        return self._read(("plan", sha), lambda: self.history.plan(sha))

    def _read(self, key: Hashable, call: Callable[[], T]) -> T:
        with self._lock:
            resting = self._down_since is not None and self._clock() < self._retry_at
        if not resting:
            try:
                answer = call()
            except HistoryError as err:
                with self._lock:
                    if self._down_since is None:
                        self._down_since = time.time()
                    self._why, self._retry_at = str(err), self._clock() + self.retry_after
            else:
                with self._lock:
                    self._down_since = None
                    if len(self._answers) >= KEEP and key not in self._answers:
                        self._answers.pop(next(iter(self._answers)))
                    self._answers[key] = answer
                return answer
        with self._lock:
            if key in self._answers:
                stale: T = self._answers[key]
                return stale
            why = self._why
        raise HistoryError(why)
