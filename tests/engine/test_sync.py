"""Engine end to end: real git repo, real sshd fleet, real SQLite history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.errors import ConfigError
from reconciler.events import Event, EventKind
from reconciler.history import FILENAME, History, schema
from tests.engine.staterepo import StateRepo


def test_a_failed_health_check_on_host_3_rolls_back_hosts_1_to_4(
    engine: Engine, state_repo: StateRepo
) -> None:
    good = state_repo.release("v1")
    first = engine.sync()
    assert (first.result, first.revision) == ("success", good)
    assert [state_repo.served(i) for i in range(1, 6)] == ["v1"] * 5
    host5 = {k: v for k, v in state_repo.snapshot().items() if state_repo.hosts[4] in k}

    (state_repo.root(3) / "broken").write_text("")
    state_repo.release("v2", state_repo.broken_check())
    result = engine.sync()

    assert result.result == "failure" and result.rolled_back
    assert state_repo.hosts[2] in result.message
    assert [state_repo.served(i) for i in range(1, 6)] == ["v1"] * 5
    assert {k: v for k, v in state_repo.snapshot().items() if state_repo.hosts[4] in k} == host5
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.result == "failure" and record.rolled_back
    web = next(a for a in record.apps if a.app == "web")
    assert web.status == "failure" and state_repo.hosts[2] in web.error
    assert web.rollback.startswith("success")
    batches = [e.hosts for e in record.events
               if e.kind is EventKind.BATCH_STARTED and e.revision == result.revision]
    assert len(batches) == 2 and all(len(b) == 2 for b in batches)
    assert engine.history.last_good("web") == good


def test_a_converged_repo_syncs_without_writing_anything(
    engine: Engine, state_repo: StateRepo
) -> None:
    state_repo.release("v1")
    assert engine.sync().result == "success"
    before = state_repo.snapshot()
    events: list[Event] = []
    engine.subscribe(events.append)
    again = engine.sync()
    assert (again.result, again.message) == ("success", "in sync: nothing to do")
    assert state_repo.snapshot() == before
    assert [e.kind for e in events] == [EventKind.DEPLOY_STARTED, EventKind.DEPLOY_FINISHED]


def test_drift_shows_what_changed_by_hand(engine: Engine, state_repo: StateRepo) -> None:
    state_repo.release("v1")
    assert engine.drift().empty
    assert engine.sync().result == "success"
    assert engine.drift().empty
    (state_repo.root(2) / "srv/web/index.html").write_text("edited by hand\n")
    drift = engine.drift()
    assert [(c.app, c.host, c.action.value) for c in drift.changes()] == [
        ("web", state_repo.fleet.hosts[1].spec, "update")]


def test_an_invalid_commit_is_recorded_and_never_applied(
    engine: Engine, state_repo: StateRepo
) -> None:
    state_repo.write("apps/web/app.yaml", "target: fleet\nwave: soon\n")
    state_repo.write("apps/web/site.yaml", "kind: File\npath: /x\ncontent: x\n")
    state_repo.commit("broken")
    result = engine.sync()
    assert result.result == "error"
    assert any(str(p.location).startswith("apps/web/app.yaml:2") for p in result.problems)
    assert state_repo.snapshot() == {}
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.result == "error" and "app.yaml:2" in record.message


def test_an_unknown_target_is_refused(tmp_path: Path, state_repo: StateRepo) -> None:
    state_repo.release("v1")
    engine = Engine(EngineSettings(repo=str(state_repo.path), data_dir=tmp_path / "d",
                                   targets=("nope",)))
    try:
        with pytest.raises(ConfigError, match="unknown target nope"):
            engine.sync()
    finally:
        engine.close()


def test_a_deploy_left_running_by_a_dead_process_is_marked_interrupted(tmp_path: Path) -> None:
    history = History(tmp_path)
    deploy = history.start_deploy("abc", "cli")
    mine = history.start_deploy("def", "cli")
    with history.database.transaction(write=True) as db:
        db.execute("UPDATE deploys SET pid=999999999 WHERE id=?", (deploy,))
    history.close()
    reopened = History(tmp_path)
    try:
        results = {d.id: d.result for d in reopened.deploys()}
        assert results == {deploy: "interrupted", mine: "running"}
        with reopened.database.transaction(write=False) as db:
            version = db.execute("PRAGMA user_version")[0]["user_version"]
        with sqlite3.connect(tmp_path / FILENAME) as check:
            mode = check.execute("PRAGMA journal_mode").fetchone()[0]
        check.close()
        assert (version, mode) == (schema.VERSION, "wal")
    finally:
        reopened.close()


def test_one_sync_per_target_at_a_time(tmp_path: Path) -> None:
    import threading

    settings = EngineSettings(repo=str(tmp_path / "repo"), data_dir=tmp_path / "d")
    first, second = Engine(settings), Engine(settings)
    order: list[str] = []
    holding = threading.Event()

    def hold() -> None:
        with first._locked(["fleet", "prod"]):
            order.append("first in")
            holding.set()
            threading.Event().wait(0.3)
            order.append("first out")

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    try:
        with second._locked(["fleet"]):
            order.append("second in")
        with second._locked(["other"]):  # another target is never blocked
            order.append("other in")
    finally:
        thread.join()
        first.close()
        second.close()
    assert order == ["first in", "first out", "second in", "other in"]
