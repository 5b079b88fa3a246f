"""Fencing tokens per target, on SQLite and on the real PostgreSQL server: a
history view fenced on a token writes while the token is current, and refuses
every deploy write, whole, once another holder took the target."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import HistoryError
from reconciler.history import History, HistorySettings, open_history
from reconciler.history.database import Cursor
from reconciler.history.fence import FencedError
from tests.support.postgres import PASSWORD as PG_PASSWORD


def guard_for(history: History, tokens: dict[str, int]) -> Callable[[Cursor], None]:
    def guard(db: Cursor) -> None:
        row = history.check_fences(db, tokens)
        if row is not None:
            raise FencedError(f"held by {row.holder} since token {row.token}")
    return guard


def test_tokens_grow_with_each_take_and_a_refused_holder_takes_nothing(
        open_store: Callable[[], History]) -> None:
    history = open_store()
    assert history.take_fences(["web", "db"], "a", lambda: True) == {"db": 1, "web": 1}
    assert history.take_fences(["web"], "b", lambda: True) == {"web": 2}
    with pytest.raises(FencedError, match="does not hold"):
        history.take_fences(["web", "db"], "c", lambda: False)
    fences = history.fences()
    assert {t: (f.holder, f.token) for t, f in fences.items()} == {
        "web": ("b", 2), "db": ("a", 1)}
    # A restart (the other store connection) reads the same fences.
    assert open_store().fences() == fences


def test_a_fenced_view_writes_while_current_and_nothing_once_taken(
        open_store: Callable[[], History]) -> None:
    history = open_store()
    tokens = history.take_fences(["web"], "a", lambda: True)
    view = history.fenced(guard_for(history, tokens))
    deploy = view.start_deploy("abc", "poll", targets=["web"])
    view.finish_deploy(deploy, "success")
    view.mark_good([("app", "web")], "abc", deploy)
    assert history.last_good("app", "web") == "abc"
    assert history.deploys()[0].targets == ("web",)

    history.take_fences(["web"], "b", lambda: True)  # another replica took it
    with pytest.raises(FencedError, match="held by b since token 2"):
        view.start_deploy("def", "poll", targets=["web"])
    with pytest.raises(FencedError):
        view.mark_good([("app", "web")], "def", deploy)
    with pytest.raises(FencedError):
        view.finish_deploy(deploy, "failure", "stale")
    assert [d.revision for d in history.deploys()] == ["abc"]
    assert history.deploys()[0].result == "success"
    assert history.last_good("app", "web") == "abc"
    # The unfenced history (a single daemon) writes as before.
    history.start_deploy("ghi", "cli")
    assert [d.revision for d in history.deploys()] == ["ghi", "abc"]


def test_taking_a_target_ends_another_process_running_deploy_of_it(
        open_store: Callable[[], History]) -> None:
    history = open_store()
    mine = history.start_deploy("abc", "poll", targets=["web"])
    with history.database.transaction(write=True) as db:  # as another host's replica
        db.execute("UPDATE deploys SET host='elsewhere' WHERE id=?", (mine,))
    other = history.start_deploy("abc", "poll", targets=["db"])
    history.take_fences(["web"], "b", lambda: True)
    results = {d.id: d.result for d in history.deploys()}
    assert results == {mine: "interrupted", other: "running"}


def test_a_holder_paused_inside_a_fenced_write_keeps_no_lock_from_the_next_holder(
        postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a replica stopped in the middle of a deploy write (inside the
    transaction, its fence row locked) must not stall the replica that takes its
    targets. The server ends the paused session after the history timeout; the
    taker gets the fence, and the paused one's write is lost whole when it wakes."""
    settings = HistorySettings(url=postgres_url, password_env="PGPW", timeout=2.0)
    environ = {"PGPW": PG_PASSWORD}
    stale = open_history(settings, tmp_path / "a", environ=environ)
    taker = open_history(settings, tmp_path / "b", environ=environ)
    try:
        tokens = stale.take_fences(["web"], "a", lambda: True)
        deploy = stale.fenced(guard_for(stale, tokens)).start_deploy(
            "abc", "poll", targets=["web"])
        with stale.database.transaction(write=True) as db:  # as another host's replica
            db.execute("UPDATE deploys SET host='elsewhere' WHERE id=?", (deploy,))
        locked, wake = threading.Event(), threading.Event()
        woke: list[BaseException] = []

        def paused_write() -> None:
            try:
                with stale.database.transaction(write=True) as db:
                    assert stale.check_fences(db, tokens) is None  # row locked now
                    locked.set()
                    wake.wait(30)  # the pause: idle inside the transaction
                    db.execute("UPDATE deploys SET message='stale' WHERE id=?", (deploy,))
            except BaseException as err:
                woke.append(err)

        thread = threading.Thread(target=paused_write)
        thread.start()
        assert locked.wait(10)
        started = time.monotonic()
        assert taker.take_fences(["web"], "b", lambda: True) == {"web": 2}
        waited = time.monotonic() - started
        assert waited < 2.0 + 4.0, waited  # the timeout, and some slack; not for good
        wake.set()
        thread.join(10)
        assert len(woke) == 1 and isinstance(woke[0], HistoryError), woke
        assert "idle-in-transaction" in str(woke[0]) or "terminat" in str(woke[0]), woke
        # Nothing of the paused write landed; the taker ended the stale deploy.
        record = taker.deploy(deploy)
        assert record is not None and record.result == "interrupted"
        assert record.message != "stale"
        # And the paused replica, awake, is refused by the fence from now on.
        with pytest.raises(FencedError, match="held by b since token 2"):
            stale.fenced(guard_for(stale, tokens)).finish_deploy(deploy, "success")
    finally:
        stale.close()
        taker.close()
