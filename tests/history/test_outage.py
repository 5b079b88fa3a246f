"""PostgreSQL down or frozen for a while: every history call raises one clear
HistoryError within about its timeout (what the daemon handles), and the same
History works again, with everything it had recorded, once the server is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from reconciler.errors import HistoryError
from reconciler.history import History, HistorySettings, open_history
from tests.support.postgres import PASSWORD, PostgresServer, start_postgres


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the session's would fail other tests."""
    server = start_postgres()
    yield server
    server.remove()


def test_a_server_that_goes_away_and_comes_back(own_server: PostgresServer,
                                                tmp_path: object) -> None:
    url = own_server.url()
    settings = HistorySettings(url=url, password_env="PGPW", timeout=2.0)
    history: History = open_history(settings, tmp_path, environ={"PGPW": PASSWORD})  # type: ignore[arg-type]
    try:
        before = history.start_deploy("abc", "poll")
        history.finish_deploy(before, "success", "deployed")

        own_server.stop()
        for call, verb in ((history.deploys, "read"),
                           (lambda: history.start_deploy("def", "poll"), "write to")):
            started = time.monotonic()
            with pytest.raises(HistoryError) as raised:
                call()
            assert time.monotonic() - started < 10  # bounded by the timeout, not hung
            text = str(raised.value)
            assert text.startswith(f"cannot {verb} the history {url}: "), text
            assert "refused" in text or "failed" in text, text
            assert "\n" not in text and PASSWORD not in text

        own_server.start()
        assert [(d.id, d.result) for d in history.deploys()] == [(before, "success")]
        after = history.start_deploy("def", "poll")
        assert after > before
        assert [d.revision for d in history.running()] == ["def"]
    finally:
        history.close()


def test_calls_after_a_long_outage_do_not_wait_out_the_pools_backoff(
        own_server: PostgresServer, tmp_path: object) -> None:
    # Down for 30 s, asked every 3 s as the daemon does: the pool's reconnects
    # back off meanwhile. Once the server is back, each call must be answered
    # at once, not after the 5 s the pool waits before the direct connection
    # (a deploy makes dozens of calls: minutes of waiting before the fix).
    settings = HistorySettings(url=own_server.url(), password_env="PGPW", timeout=5.0)
    history: History = open_history(settings, tmp_path, environ={"PGPW": PASSWORD})  # type: ignore[arg-type]
    try:
        history.finish_deploy(history.start_deploy("abc", "poll"), "success", "deployed")
        own_server.stop()
        outage_ends = time.monotonic() + 30
        while time.monotonic() < outage_ends:
            with pytest.raises(HistoryError):
                history.deploys()
            time.sleep(3)
        own_server.start()
        # The first call may wait out the pool once (then it connects directly
        # and replaces the pool); the next ones must not (5 s each before the fix).
        assert [d.revision for d in history.deploys()] == ["abc"]
        started = time.monotonic()
        for _ in range(5):
            assert [d.revision for d in history.deploys()] == ["abc"]
        assert time.monotonic() - started < 5
    finally:
        history.close()


def ended_within(limit: float, call: Callable[[], object]) -> BaseException | None:
    """What `call` raised (None: it returned), failing the test, instead of
    hanging it, when the call has not ended within `limit` seconds."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            raised.append(None)
        except BaseException as err:
            raised.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert raised, f"the call still waits after {limit} s"
    return raised[0]


def test_a_server_that_stalls_is_cut_off_and_answers_again_once_it_resumes(
        own_server: PostgresServer, tmp_path: object) -> None:
    # SIGSTOP on every server process: the kernel still takes connections and
    # ACKs every byte, so neither keepalives nor tcp_user_timeout end a call.
    url, timeout = own_server.url(), 2.0
    settings = HistorySettings(url=url, password_env="PGPW", timeout=timeout)
    history: History = open_history(settings, tmp_path, environ={"PGPW": PASSWORD})  # type: ignore[arg-type]
    bound = timeout + 2.5  # the watchdog's margin for a cancel, and slack
    unanswered = f"the server did not answer within {timeout:g} s"
    try:
        before = history.start_deploy("abc", "poll")
        history.finish_deploy(before, "success", "deployed")

        own_server.freeze()
        try:
            for call, verb in ((history.deploys, "read"),
                               (lambda: history.start_deploy("def", "poll"), "write to")):
                started = time.monotonic()
                raised = ended_within(30, call)
                waited = time.monotonic() - started
                assert isinstance(raised, HistoryError), raised
                assert waited < bound, waited
                assert str(raised) == f"cannot {verb} the history {url}: {unanswered}"
        finally:
            own_server.thaw()

        # Frozen in the middle of a write: the statement is cut, and nothing
        # of the transaction lands when the server resumes.
        def stalled_write() -> None:
            with history.database.transaction(write=True) as db:
                db.execute("UPDATE deploys SET message='half' WHERE id=?", (before,))
                own_server.freeze()
                db.execute("SELECT 1")

        started = time.monotonic()
        try:
            raised = ended_within(30, stalled_write)
        finally:
            own_server.thaw()
        assert isinstance(raised, HistoryError), raised
        assert time.monotonic() - started < bound
        assert str(raised) == f"cannot write to the history {url}: {unanswered}"

        # Resumed: the same History answers, with all it had, and records anew.
        [record] = history.deploys()
        assert (record.id, record.result, record.message) == (before, "success", "deployed")
        after = history.start_deploy("def", "poll")
        assert after > before
        assert [d.revision for d in history.running()] == ["def"]
    finally:
        history.close()
