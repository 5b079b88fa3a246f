"""Coalescing and the failed-commit memory: pure decisions and the work queue."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from reconciler.daemon.scheduler import (
    Memory,
    Request,
    Verdict,
    WorkQueue,
    coalesce,
    decide,
    remember,
    seed,
)


def test_newest_request_wins_and_an_explicit_sync_stays_explicit() -> None:
    merged = coalesce(Request(reason="sync", explicit=True), Request(reason="poll"))
    assert merged == Request(reason="poll", explicit=True)
    assert coalesce(None, Request(reason="webhook", ref="abc")).ref == "abc"


def test_a_failed_commit_waits_for_a_new_commit_or_an_explicit_sync() -> None:
    memory = remember(Memory(deployed="a"), "b", ok=False)
    assert decide(memory, "b", explicit=False, blocked=False) is Verdict.KNOWN_FAILED
    assert decide(memory, "b", explicit=True, blocked=False) is Verdict.DEPLOY
    assert decide(memory, "c", explicit=False, blocked=False) is Verdict.DEPLOY
    assert decide(memory, "a", explicit=False, blocked=False) is Verdict.UP_TO_DATE
    assert decide(memory, "c", explicit=False, blocked=True) is Verdict.WAIT_WINDOW
    # A success of another commit (self-heal of the last good one) keeps b's failure.
    assert remember(memory, "a", ok=True) == Memory(deployed="a", failed=frozenset({"b"}))
    assert remember(memory, "b", ok=True) == Memory(deployed="b")


@dataclass(frozen=True)
class Record:
    revision: str
    result: str


def test_memory_is_seeded_from_the_newest_deploy_of_each_commit() -> None:
    assert seed([Record("b", "failure"), Record("a", "success")]) == Memory(
        failed=frozenset({"b"}))
    assert seed([Record("a", "success")]) == Memory(deployed="a")
    assert seed([Record("b", "interrupted"), Record("a", "success")]) == Memory()
    assert seed([]) == Memory()
    # A self-heal of a after b failed: b still waits for a new commit after a restart.
    assert seed([Record("a", "success"), Record("b", "failure"), Record("a", "success")]) == \
        Memory(deployed="a", failed=frozenset({"b"}))
    # An explicit sync fixed b later: only its newest deploy counts.
    assert seed([Record("b", "success"), Record("b", "error")]) == Memory(deployed="b")


def test_requests_during_a_job_fold_into_one() -> None:
    queue = WorkQueue()
    queue.put(Request(reason="start"))
    job = queue.get(timeout=1)
    assert job is not None and job.request == Request(reason="start")
    for reason in ("file-watch", "poll", "webhook"):
        queue.put(Request(reason=reason))
    queue.put_drift()
    assert not queue.idle()
    queue.done()
    first, second = queue.get(timeout=1), queue.get(timeout=1)
    assert first is not None and first.request == Request(reason="webhook")
    assert second is not None and second.drift
    assert queue.get(timeout=0.05) is None


def test_a_timed_request_is_released_at_its_time_and_close_wakes_the_worker() -> None:
    queue = WorkQueue()
    queue.put_at(time.monotonic() + 0.2, Request(reason="window"))
    began = time.monotonic()
    job = queue.get(timeout=2)
    assert job is not None and job.request == Request(reason="window")
    assert 0.15 <= time.monotonic() - began < 1.0
    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(queue.get()))
    waiter.start()
    queue.close()
    waiter.join(timeout=2)
    assert results == [None] and queue.closed
