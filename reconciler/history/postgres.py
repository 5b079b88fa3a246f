"""The shared store: PostgreSQL through psycopg 3 and its connection pool.

Why: replicas of one daemon must share one truth (the last good revision per
app and target, the failed commits, every deploy), and PostgreSQL is what the
users who run several replicas already run.

Invariants:
- The password never comes from the URL (the config refuses one there); it is
  handed to the driver apart, from a file or an environment variable.
- Connections are checked when taken from the pool, so after a server restart
  the first call gets a fresh connection instead of a dead one's error; a pool
  an outage emptied is replaced as soon as the server answers again, so calls
  after the outage do not wait out the pool's reconnect backoff.
- Every driver or pool error, a server that is down included, becomes a
  `HistoryError` naming the URL, in bounded time. Getting a connection takes
  about `timeout` at most: half of it waiting on the pool, the rest for a
  direct connection when the pool has none to give. A request (the check of a
  pooled connection, BEGIN, a statement, COMMIT) that the server took and
  does not answer within `timeout` is cut by the watchdog (`watchdog.py`):
  cancelled, and its socket shut `_MARGIN` later if the server cannot even
  take the cancel ("the server did not answer within 10 s"). A frozen server
  (SIGSTOP, a hung disk) still ACKs every byte, so neither keepalives nor
  `tcp_user_timeout` would end that wait, and it enforces no
  `statement_timeout`. A replica's own pause between requests is not the
  server's silence and is not cut (the server's idle timeout ends it).
- A connection that was cut, or that ends a call outside a clean idle state,
  is closed rather than given back, so the pool never talks to a server on a
  caller's behalf (its rollback of a returned connection would wait unwatched)
  and replaces it with a fresh one: once the server answers again, so does
  the history, with everything committed before.
- The statements of a migration are not watched: a replica waits for another
  one's migration (its advisory lock) however long, and a long DDL is
  legitimate. Its connection, check, BEGIN and COMMIT are, so a server that is
  frozen when the daemon starts still fails the start; one that freezes during
  a migration is waited for, like one migrating slowly.
- No session holds its locks for longer than half of `timeout` without
  working: the server ends a session idle inside a transaction for that long
  (a replica paused mid-write), well before a call waiting for its locks
  gives up (`lock_timeout` and the watchdog, at `timeout`), so a paused
  replica cannot keep the next holder of its shard from its fences.
- Migrations run under a transaction-scoped advisory lock, so replicas that
  start together migrate once; PostgreSQL's DDL is transactional, so a
  migration that fails leaves the previous version whole.
- The schema version lives in the one-row table `reconciler_schema`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from reconciler.errors import HistoryError
from reconciler.history import schema
from reconciler.history.database import Cursor, Params, Row
from reconciler.history.text import safe_value
from reconciler.history.watchdog import Watch, Watchdog

_LOCK_KEY = 0x7265636F6E63  # "reconc": the advisory lock of history migrations
_MARGIN = 1.0
"""Seconds a cut request's cancel may take (one round trip on a new connection)
before its socket is shut."""


class _Cursor:
    def __init__(self, cursor: psycopg.Cursor[dict[str, Any]], watch: Watch | None) -> None:
        self._cursor, self._watch = cursor, watch

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        with self._watched():
            self._cursor.execute(_native(sql), safe_value(list(params)))
        # execute has read the whole answer: fetching does no I/O.
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def executemany(self, sql: str, params: Iterable[Params]) -> None:
        rows = [safe_value(list(p)) for p in params]
        with self._watched():
            self._cursor.executemany(_native(sql), rows)

    def unwatched(self) -> _Cursor:
        return _Cursor(self._cursor, None)

    @contextmanager
    def _watched(self) -> Iterator[None]:
        if self._watch is None:
            yield
        else:
            with self._watch.request():
                yield


class PostgresDatabase:
    types = schema.POSTGRES_TYPES
    row_lock = " FOR UPDATE"

    def __init__(self, url: str, *, password: str | None, pool_size: int = 4,
                 timeout: float = 10.0) -> None:
        self.name = url
        self._timeout = timeout
        millis = max(1000, round(timeout * 1000))
        idle_millis = max(500, millis // 2)
        # A server that vanished from the network (no RST) must not hold a call
        # for the kernel's default of minutes: unacknowledged data and a silent
        # idle connection both end the connection after about `timeout`.
        kwargs: dict[str, Any] = {
            "autocommit": True, "application_name": "reconciler",
            "connect_timeout": max(1, round(timeout)),
            "tcp_user_timeout": millis,
            "keepalives": 1, "keepalives_idle": max(1, round(timeout)),
            "keepalives_interval": max(1, round(timeout / 3)), "keepalives_count": 3,
            # A replica paused inside a transaction (a stop-the-world pause, SIGSTOP,
            # a frozen VM) would hold its row locks, the fence rows' among them,
            # until it wakes: the replica taking its shard would wait on them for
            # good. The server ends such a session after half of `timeout`, so
            # that a lock waited for (up to `timeout`, then HistoryError, not a
            # hang) is freed before the waiter gives up, even on a loaded server.
            "options": f"-c idle_in_transaction_session_timeout={idle_millis} "
                       f"-c lock_timeout={millis}",
        }
        if password is not None:
            kwargs["password"] = password
        self._url, self._kwargs = url, kwargs
        self._pool_size = max(1, pool_size)
        self._renewing = threading.Lock()
        self._watchdog = Watchdog(limit=timeout, margin=_MARGIN,
                                  name="reconciler-history-watchdog")
        try:
            # One direct connection first: the pool would retry a refused
            # password in the background and only say that it timed out.
            psycopg.connect(url, **kwargs).close()
            self._pool = self._new_pool()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as err:
            self._close_quietly()
            raise HistoryError(f"cannot connect to the history {url}: {_reason(err)}") from None

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[_Cursor]:
        # BEGIN and COMMIT are sent as statements, not by psycopg's transaction
        # block, so that the watchdog covers them like any other request.
        watch = self._watchdog.watch()
        try:
            with self._connection(watch) as conn:
                cursor = _Cursor(conn.cursor(row_factory=dict_row), watch)
                cursor.execute("BEGIN")
                try:
                    yield cursor
                except BaseException:
                    _roll_back(conn, cursor)
                    raise
                cursor.execute("COMMIT")
        except (psycopg.Error, psycopg_pool.PoolClosed) as err:
            what = "write to" if write else "read"
            # A connection that timed out and a request cut off are one fault.
            silent = watch.fired or isinstance(err, psycopg.errors.ConnectionTimeout)
            reason = (f"the server did not answer within {self._timeout:g} s" if silent
                      else _reason(err))
            raise HistoryError(f"cannot {what} the history {self.name}: {reason}") from None

    def _new_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        # No `check` here: the pool would run it unwatched; `_checked` does it.
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self._url, kwargs=self._kwargs, min_size=1, max_size=self._pool_size, open=False,
            timeout=self._timeout, name="reconciler-history",
        )
        pool.open(wait=True, timeout=self._timeout)
        return pool

    @contextmanager
    def _connection(self, watch: Watch) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection, attached to `watch` until the block ends."""
        pool, started = self._pool, time.monotonic()
        # Half the budget for the pool, half for a direct connection when it
        # has none to give: the whole wait stays within about `timeout`.
        conn = self._checked(pool, watch, started + self._timeout / 2)
        pooled = conn is not None
        if conn is None:
            # After an outage the pool waits longer and longer between its
            # reconnects; a server that is back answers a direct connection
            # now, and one that is not says why (the pool only timed out).
            left = started + self._timeout - time.monotonic()
            conn = psycopg.connect(
                self._url, **{**self._kwargs, "connect_timeout": max(2, math.ceil(left))})
            try:
                self._renew(pool)
                watch.attach(conn.fileno(), _canceller(conn))
            except BaseException:
                conn.close()
                raise
        try:
            yield conn
        finally:
            cut = watch.detach()
            if not pooled:
                conn.close()
            else:
                if cut or conn.pgconn.transaction_status != TransactionStatus.IDLE:
                    conn.close()  # the pool replaces a closed connection
                pool.putconn(conn)

    def _checked(self, pool: psycopg_pool.ConnectionPool[Any], watch: Watch,
                 deadline: float) -> psycopg.Connection[Any] | None:
        """A connection of the pool that answered a check under `watch` (left
        attached to it), or None when the pool had none to give in time."""
        while True:
            try:
                conn: psycopg.Connection[Any] = pool.getconn(
                    timeout=max(0.01, deadline - time.monotonic()))
            except psycopg_pool.PoolTimeout:
                return None
            try:
                watch.attach(conn.fileno(), _canceller(conn))
                with watch.request():
                    conn.execute("")
                return conn
            except BaseException as err:
                # A connection the server dropped (a restart) is replaced; one
                # that was cut means the server does not answer: no more tries.
                cut = watch.detach()
                conn.close()
                pool.putconn(conn)
                if (cut or not isinstance(err, psycopg.Error)
                        or time.monotonic() >= deadline):
                    raise

    def _renew(self, stale: psycopg_pool.ConnectionPool[Any]) -> None:
        """Replace a pool that an outage left without connections, once the server
        answers again: otherwise every call would first wait out `timeout` in the
        old pool's reconnect backoff (minutes), and a deploy makes dozens of calls.
        A pool that timed out because all its connections are busy is kept."""
        stats = stale.get_stats()
        if stats.get("pool_size", 0) >= self._pool_size and not stats.get("pool_available"):
            return
        with self._renewing:
            if self._pool is not stale:
                return  # another call renewed it
            try:
                self._pool = self._new_pool()
            except (psycopg.Error, psycopg_pool.PoolTimeout):
                return  # the server went again: the next call tries once more
        with suppress(Exception):
            stale.close(timeout=0)

    @contextmanager
    def migration(self) -> Iterator[tuple[_Cursor, int]]:
        with self.transaction(write=True) as watched:
            # Replicas that start together wait for the one migrating, however long
            # its migration takes (a paused one is ended by the idle timeout), and
            # its DDL may take long: the watchdog does not cut these statements.
            cursor = watched.unwatched()
            cursor.execute("SET LOCAL lock_timeout = 0")
            cursor.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            cursor.execute("CREATE TABLE IF NOT EXISTS reconciler_schema "
                           "(version INTEGER NOT NULL)")
            rows = cursor.execute("SELECT version FROM reconciler_schema")
            if not rows:
                cursor.execute("INSERT INTO reconciler_schema (version) VALUES (0)")
            yield cursor, int(rows[0]["version"]) if rows else 0

    def set_version(self, cursor: Cursor, version: int) -> None:
        cursor.execute("UPDATE reconciler_schema SET version=?", (version,))

    def close(self) -> None:
        self._watchdog.close()
        self._pool.close()

    def _close_quietly(self) -> None:
        # Already failing: the first error is the one to tell.
        self._watchdog.close()
        with suppress(Exception):
            self._pool.close()


def _canceller(conn: psycopg.Connection[Any]) -> Callable[[float], None]:
    if not psycopg.capabilities.has_cancel_safe():
        # Before libpq 17, cancel_safe falls back to a cancel that waits for the
        # server without limit: a frozen one would hold the cut for good. The
        # socket is shut all the same.
        return lambda timeout: None
    return lambda timeout: conn.cancel_safe(timeout=timeout)


def _roll_back(conn: psycopg.Connection[Any], cursor: _Cursor) -> None:
    """End a failed transaction on a connection that still works; the failure
    that got here is the one to tell, not this one's."""
    if conn.pgconn.transaction_status in (TransactionStatus.INTRANS,
                                          TransactionStatus.INERROR):
        with suppress(psycopg.Error):
            cursor.execute("ROLLBACK")


def _native(sql: str) -> str:
    """psycopg's placeholder spelling; the history's SQL holds no literal ? or %."""
    return sql.replace("?", "%s")


def _reason(err: BaseException) -> str:
    # libpq's messages span lines ("connection failed: ...\n\tIs the server
    # running...?"); a history error is one line.
    text = " ".join(str(err).split()) or type(err).__name__
    return text
