"""The watchdog of history requests: on real sockets whose peer takes every byte
and never answers (what a frozen server looks like from the client), and on
the real PostgreSQL server with a statement that is slow but alive."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import HistoryError
from reconciler.history import HistorySettings, open_history
from reconciler.history.watchdog import Watchdog
from tests.support.postgres import PASSWORD as PG_PASSWORD


@pytest.fixture
def silent_peer() -> Iterator[socket.socket]:
    """A connected TCP socket whose peer's kernel accepts it and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
        try:
            yield client
        finally:
            client.close()
            peer.close()


def test_a_request_that_gets_no_answer_is_cancelled_then_its_socket_shut(
        silent_peer: socket.socket) -> None:
    dog = Watchdog(limit=0.5, margin=0.3, name="test-watchdog")
    cancels: list[float] = []
    watch = dog.watch()
    try:
        watch.attach(silent_peer.fileno(), cancels.append)  # a cancel nobody answers
        started = time.monotonic()
        with watch.request():
            assert silent_peer.recv(1) == b""  # EOF: the shut socket
        waited = time.monotonic() - started
        assert 0.5 + 0.3 <= waited < 0.5 + 0.3 + 1.0, waited
        assert cancels == [0.3]
        assert watch.detach() is True and watch.fired
    finally:
        dog.close()


def test_a_request_that_ends_in_time_and_a_detached_connection_are_left_alone(
        silent_peer: socket.socket) -> None:
    dog = Watchdog(limit=0.3, margin=0.2, name="test-watchdog")
    cancels: list[float] = []
    watch = dog.watch()
    try:
        watch.attach(silent_peer.fileno(), cancels.append)
        for _ in range(3):
            with watch.request():
                time.sleep(0.05)  # answered well within the limit
        with watch.request():
            pass
        # Handed back (say, to a pool) right after a request: no late cut.
        assert watch.detach() is False
        time.sleep(0.8)
        assert cancels == [] and not watch.fired
        silent_peer.setblocking(False)
        with pytest.raises(BlockingIOError):  # still open: nothing shut it
            silent_peer.recv(1)
    finally:
        dog.close()


def test_a_cancel_that_works_ends_the_request_without_shutting_the_socket(
        silent_peer: socket.socket) -> None:
    # As a slow server does: it takes the cancel and answers the request.
    dog = Watchdog(limit=0.3, margin=5.0, name="test-watchdog")
    answered = threading.Event()
    watch = dog.watch()
    try:
        watch.attach(silent_peer.fileno(), lambda _timeout: answered.set())
        started = time.monotonic()
        with watch.request():
            assert answered.wait(5)
        assert time.monotonic() - started < 2.0
        assert watch.detach() is True
        silent_peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            silent_peer.recv(1)
    finally:
        dog.close()


def test_a_slow_statement_is_cancelled_and_its_connection_replaced(
        postgres_url: str, tmp_path: Path) -> None:
    """A server that is alive but slow gets the cancel: the statement ends on the
    server too, and the next call gets a working connection."""
    timeout = 1.0
    settings = HistorySettings(url=postgres_url, password_env="PGPW", timeout=timeout)
    history = open_history(settings, tmp_path, environ={"PGPW": PG_PASSWORD})
    try:
        deploy = history.start_deploy("abc", "poll")
        started = time.monotonic()
        with (pytest.raises(HistoryError) as raised,
              history.database.transaction(write=True) as db):
            db.execute("UPDATE deploys SET message='half' WHERE id=?", (deploy,))
            db.execute("SELECT pg_sleep(30)")
        waited = time.monotonic() - started
        assert timeout <= waited < timeout + 1.0, waited  # the cancel, not the socket
        assert str(raised.value) == (f"cannot write to the history {postgres_url}: "
                                     f"the server did not answer within {timeout:g} s")
        with history.database.transaction(write=False) as db:
            sleeping = db.execute("SELECT count(*) AS n FROM pg_stat_activity "
                                  "WHERE state = 'active' AND query LIKE ?", ("SELECT pg_sleep%",))
        assert sleeping[0]["n"] == 0
        [record] = history.deploys()
        assert record.id == deploy and record.message != "half"
    finally:
        history.close()
