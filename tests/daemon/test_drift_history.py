"""Drift checks are kept in the history (SQLite and PostgreSQL alike), so a
restarted daemon still knows which target drifted, and the table never holds a
diff or a value."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.daemon.service import Daemon, wait_idle
from reconciler.history import FILENAME, History, HistorySettings, schema
from tests.daemon.conftest import StateRepo, config_for, deploys, wait_for

Factory = Callable[..., Daemon]

DESIRED_SECRET = "desired-s3cret-value"
LIVE_SECRET = "live-s3cret-value"


@pytest.fixture
def start(daemon_factory: Factory, history_settings: HistorySettings) -> Factory:
    """A started daemon whose history is each store in turn (SQLite, PostgreSQL)."""
    return functools.partial(daemon_factory, history=history_settings)


@pytest.fixture
def fresh(tmp_path: Path, history_settings: HistorySettings
          ) -> Iterator[Callable[[StateRepo], Daemon]]:
    """A daemon on the same data_dir and history, built but not started: what a
    restart sees before its first job runs."""
    opened: list[Daemon] = []

    def make(repo: StateRepo) -> Daemon:
        config = config_for(repo, tmp_path / "data", history=history_settings)
        daemon = Daemon(config, tmp_path / "data")
        opened.append(daemon)
        return daemon

    yield make
    for daemon in opened:
        daemon.engine.close()


def drift_rows(history: History) -> list[tuple[object, ...]]:
    with history.database.transaction(write=False) as db:
        return [tuple(dict(r).values())
                for r in db.execute("SELECT * FROM drift_checks ORDER BY id")]


def test_a_drift_survives_a_restart_and_the_table_holds_no_value(
    state_repo: StateRepo, start: Factory, fresh: Callable[[StateRepo], Daemon],
    tmp_path: Path,
) -> None:
    state_repo.commit("secret", content=f"token={DESIRED_SECRET}\n")
    daemon = start(state_repo, self_heal=False)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    (state_repo.root / "etc/web.conf").write_text(f"token={LIVE_SECRET}\n")
    daemon.check_drift()
    live = wait_for(lambda: daemon.worker.state.last_drift)
    deployed = deploys(daemon)[0][0]
    assert daemon.stop(timeout=30)

    again = fresh(state_repo)
    restarted = again.snapshot().worker
    check = restarted.drift["laptop"]
    assert check.drifted == 1 and not check.healed
    assert check.revision == deployed
    assert [(r.resource, r.action) for r in check.resources] == [("File:/etc/web.conf", "update")]
    # The page reads last_drift: after the restart it says what the running daemon said.
    report = restarted.last_drift
    assert report is not None
    assert (report.resources, report.summary, report.checked) == \
        (live.resources, live.summary, live.checked)
    assert report.resources == ("laptop:localhost/File:/etc/web.conf (update)",)

    rows = drift_rows(again.history)
    assert len(rows) == 1
    stored = repr(rows)
    assert DESIRED_SECRET not in stored and LIVE_SECRET not in stored and "token" not in stored


def test_a_clean_check_replaces_the_drift_a_restart_shows(
    state_repo: StateRepo, start: Factory, fresh: Callable[[StateRepo], Daemon],
) -> None:
    daemon = start(state_repo, self_heal=False)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    conf = state_repo.root / "etc/web.conf"
    conf.write_text("edited by hand\n")
    daemon.check_drift()
    wait_for(lambda: (d := daemon.worker.state.drift.get("laptop")) is not None and d.drifted)
    conf.write_text("version 1\n")  # put back by hand: the next check is clean
    daemon.check_drift()
    wait_for(lambda: daemon.worker.state.drift["laptop"].drifted == 0)
    assert daemon.stop(timeout=30)

    again = fresh(state_repo)
    restarted = again.snapshot().worker
    assert restarted.drift["laptop"].drifted == 0
    assert restarted.last_drift is not None and restarted.last_drift.resources == ()
    assert [c.drifted for c in again.history.drift_checks("laptop")] == [0, 1]


def test_a_self_healed_drift_is_recorded_healed(
    state_repo: StateRepo, start: Factory, fresh: Callable[[StateRepo], Daemon],
) -> None:
    daemon = start(state_repo, self_heal=True)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    (state_repo.root / "etc/web.conf").write_text("edited by hand\n")
    daemon.check_drift()
    wait_for(lambda: (d := daemon.worker.state.last_drift) is not None and d.healed)
    assert wait_idle(daemon, 5) and daemon.stop(timeout=30)

    restarted = fresh(state_repo).snapshot().worker
    assert restarted.drift["laptop"].drifted == 1 and restarted.drift["laptop"].healed
    assert restarted.last_drift is not None and restarted.last_drift.healed


def test_a_version_1_history_gains_the_drift_table_and_keeps_its_deploys(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / FILENAME) as db:
        for statement in schema.statements(1, schema.SQLITE_TYPES):
            db.execute(statement)
        db.execute("INSERT INTO deploys (revision, trigger, started, result, pid, host) "
                   "VALUES ('abc', 'cli', 1.0, 'success', 1, 'elsewhere')")
        db.execute("PRAGMA user_version=1")
    db.close()

    history = History(tmp_path)
    try:
        assert [d.revision for d in history.deploys()] == ["abc"]
        assert history.latest_drift() == {}
        with sqlite3.connect(tmp_path / FILENAME) as check:
            assert check.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
        check.close()
    finally:
        history.close()
