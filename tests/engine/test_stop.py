"""`Engine.request_stop()`: a shutdown that ends the running sync early and cleanly;
`Engine.interrupt()`: the same cut, for the sync in flight only.

Real git, a real sshd fleet of five hosts and the real SQLite history. `web`
rolls out in batches of two (hosts 1-2, 3-4, 5); a listener on the engine's
events asks for the stop at a chosen step, as a signal handler would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.engine import Engine
from reconciler.events import Event, EventKind
from reconciler.history import DeployRecord, History
from tests.engine.staterepo import StateRepo

ROOT = Path(__file__).resolve().parents[2]


def stop_on(engine: Engine, wanted: Callable[[Event], bool]) -> None:
    def listener(event: Event) -> None:
        if wanted(event):
            engine.request_stop()

    engine.subscribe(listener)


def untouched(state_repo: StateRepo, hosts: range) -> dict[str, tuple[int, int]]:
    names = [state_repo.hosts[i - 1] for i in hosts]
    return {k: v for k, v in state_repo.snapshot().items() if any(f"/{n}/" in k for n in names)}


def record_of(engine: Engine, deploy_id: int) -> DeployRecord:
    record = engine.history.deploy(deploy_id)
    assert record is not None
    return record


def web_states(engine: Engine, state_repo: StateRepo) -> list[str]:
    """The inventory state of web's page on hosts 1 to 5 ("" where it has none)."""
    states = {e.host: e.state for e in engine.history.inventory_entries("fleet")
              if e.app == "web"}
    return [next((s for h, s in states.items() if h.startswith(f"{address}:")), "")
            for address in state_repo.hosts]


def resumed(engine: Engine) -> Engine:
    """A new engine on the same data directory, as after a restart: a stop is final."""
    engine.close()
    return Engine(engine.settings)


def test_a_stop_between_batches_leaves_later_batches_untouched_and_records_interrupted(
    engine: Engine, state_repo: StateRepo
) -> None:
    v1 = state_repo.release("v1")
    assert engine.sync().result == "success"
    later = untouched(state_repo, range(3, 6))
    v2 = state_repo.release("v2")
    stop_on(engine, lambda e: e.kind is EventKind.HEALTH_CHECKED and e.app == "web")

    result = engine.sync()

    assert (result.result, result.revision) == ("interrupted", v2)
    assert not result.rolled_back and not result.rollback_failed
    assert result.message == "interrupted by a stop request: web: stopped before batch 2 of 3"
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2", "v2", "v1", "v1", "v1"]
    assert untouched(state_repo, range(3, 6)) == later
    record = record_of(engine, result.deploy_id)
    assert record.result == "interrupted"
    assert [(a.app, a.status) for a in record.apps] == [("web", "interrupted")]
    kinds = [e.kind for e in record.events]
    assert kinds.count(EventKind.BATCH_STARTED) == 1
    assert EventKind.ROLLBACK_STARTED not in kinds and EventKind.PRUNE_DONE not in kinds
    # Not a failure, and not good either: the last good revision stays v1.
    assert engine.history.last_good("web") == v1
    assert web_states(engine, state_repo)[:2] == ["healthy", "healthy"]

    again = resumed(engine)
    try:
        done = again.sync()
        assert (done.result, done.revision) == ("success", v2)
        assert [state_repo.served(i) for i in range(1, 6)] == ["v2"] * 5
        assert again.history.last_good("web") == v2
    finally:
        again.close()


def test_a_stop_abandons_a_slow_health_gate_and_the_next_sync_gates_those_hosts(
    engine: Engine, state_repo: StateRepo
) -> None:
    state_repo.release("v1")
    assert engine.sync().result == "success"
    ready = f"test -e {state_repo.roots}/{{host}}/ready"
    # Pending (never Degraded long enough to fail) until `ready` exists: the
    # gate would wait for the whole two minutes.
    v2 = state_repo.release("v2", ready, retries=10_000, timeout="120s")
    stop_on(engine, lambda e: e.kind is EventKind.BATCH_APPLIED and e.app == "web")

    started = time.monotonic()
    result = engine.sync()

    assert time.monotonic() - started < 60
    assert result.result == "interrupted"
    assert result.message == ("interrupted by a stop request: "
                              "web: stopped in the health gate of batch 1 of 3")
    # The batch in flight finished its writes; nothing after it started.
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2", "v2", "v1", "v1", "v1"]
    assert web_states(engine, state_repo)[:2] == ["applied", "applied"]
    record = record_of(engine, result.deploy_id)
    health = [e for e in record.events if e.kind is EventKind.HEALTH_CHECKED]
    assert [e.status for e in health] == ["Unknown"]

    for host in state_repo.hosts:
        (state_repo.roots / host / "ready").write_text("")
    again = resumed(engine)
    try:
        done = again.sync()
        assert (done.result, done.revision) == ("success", v2)
        assert [state_repo.served(i) for i in range(1, 6)] == ["v2"] * 5
        assert web_states(again, state_repo) == ["healthy"] * 5
    finally:
        again.close()


def test_a_stop_during_a_failing_rollout_starts_no_rollback(
    engine: Engine, state_repo: StateRepo
) -> None:
    v1 = state_repo.release("v1")
    assert engine.sync().result == "success"
    (state_repo.root(1) / "broken").write_text("")
    state_repo.release("v2", state_repo.broken_check(), retries=0)
    stop_on(engine, lambda e: e.kind is EventKind.HEALTH_CHECKED and e.status == "Degraded")

    result = engine.sync()

    # The next sync of this commit fails the same way and rolls back then;
    # a rollback now could outlast the shutdown as long as the rollout would.
    assert result.result == "interrupted" and not result.rolled_back
    assert state_repo.hosts[0] in result.message
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2", "v2", "v1", "v1", "v1"]
    record = record_of(engine, result.deploy_id)
    assert record.result == "interrupted"
    assert EventKind.ROLLBACK_STARTED not in [e.kind for e in record.events]
    assert engine.history.last_good("web") == v1


def test_an_interrupt_cuts_one_sync_short_and_the_same_engine_syncs_again_in_full(
    engine: Engine, state_repo: StateRepo
) -> None:
    v1 = state_repo.release("v1")
    assert engine.sync().result == "success"
    assert not engine.interrupt("nothing")  # no sync in flight: nothing to cut, nothing kept
    v2 = state_repo.release("v2")
    cut: list[bool] = []

    def listener(event: Event) -> None:
        if event.kind is EventKind.HEALTH_CHECKED and event.app == "web" and not cut:
            cut.append(engine.interrupt("loss of leadership"))

    engine.subscribe(listener)
    result = engine.sync()

    assert cut == [True]
    assert (result.result, result.revision) == ("interrupted", v2)
    assert not result.rolled_back and not result.rollback_failed
    assert result.message == "interrupted by loss of leadership: web: stopped before batch 2 of 3"
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2", "v2", "v1", "v1", "v1"]
    assert record_of(engine, result.deploy_id).result == "interrupted"
    assert engine.history.last_good("web") == v1
    assert not engine.stop_requested

    # The interrupt ended with that sync: the next one, on the same engine, runs
    # every batch (no restart needed, unlike after request_stop()).
    done = engine.sync()
    assert (done.result, done.revision) == ("success", v2)
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2"] * 5
    assert engine.history.last_good("web") == v2

    # request_stop() stays final: a later sync starts stopped and writes nothing.
    engine.request_stop()
    state_repo.release("v3")
    stopped = engine.sync()
    assert stopped.result == "interrupted"
    assert stopped.message.startswith("interrupted by a stop request")
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2"] * 5


def test_reconciler_sync_on_sigterm_stops_after_the_batch_and_exits_1_with_one_line(
    tmp_path: Path, state_repo: StateRepo
) -> None:
    data = tmp_path / "data"
    ready = f"test -e {state_repo.roots}/{{host}}/ready"
    sha = state_repo.release("v1", ready, retries=10_000, timeout="120s")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sync", "--repo", str(state_repo.path),
         "--rev", "main", "--data-dir", str(data), "--target", "fleet"],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    for line in process.stdout:  # web's first batch is written and waits in its gate
        if "web@fleet" in line and "applied success" in line:
            break
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert time.monotonic() - started < 30  # the gate would wait 120 s
    assert process.returncode == 1
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("reconciler sync: interrupted by a stop request: web: ")
    assert [state_repo.served(i) for i in range(1, 6)] == ["v1", "v1", "", "", ""]
    history = History(data)
    try:
        assert [(d.revision, d.result) for d in history.deploys()] == [(sha, "interrupted")]
    finally:
        history.close()
