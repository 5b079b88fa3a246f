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
  `HistoryError` naming the URL: after about `timeout` seconds when the server
  refuses, is gone or cannot be reached (a server that accepts a query and
  then stalls is waited for).
- No session holds its locks for longer than `timeout` without working: the
  server ends a session idle inside a transaction for that long (a replica
  paused mid-write), and a call waits for a lock no longer than that, so a
  paused replica cannot keep the next holder of its shard from its fences.
- Migrations run under a transaction-scoped advisory lock, so replicas that
  start together migrate once; PostgreSQL's DDL is transactional, so a
  migration that fails leaves the previous version whole.
- The schema version lives in the one-row table `reconciler_schema`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from reconciler.errors import HistoryError
from reconciler.history import schema
from reconciler.history.database import Cursor, Params, Row
from reconciler.history.text import safe_value

_LOCK_KEY = 0x7265636F6E63  # "reconc": the advisory lock of history migrations


class _Cursor:
    def __init__(self, cursor: psycopg.Cursor[dict[str, Any]]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        self._cursor.execute(_native(sql), safe_value(list(params)))
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def executemany(self, sql: str, params: Iterable[Params]) -> None:
        self._cursor.executemany(_native(sql), [safe_value(list(p)) for p in params])


class PostgresDatabase:
    types = schema.POSTGRES_TYPES
    row_lock = " FOR UPDATE"

    def __init__(self, url: str, *, password: str | None, pool_size: int = 4,
                 timeout: float = 10.0) -> None:
        self.name = url
        self._timeout = timeout
        millis = max(1000, round(timeout * 1000))
        # A server that vanished from the network (no RST) must not hold a call
        # for the kernel's default of minutes: unacknowledged data and a silent
        # idle connection both end the connection after about `timeout`.
        kwargs: dict[str, Any] = {
            "autocommit": True, "application_name": "reconciler",
            "connect_timeout": max(1, round(timeout)),
            "tcp_user_timeout": max(1000, round(timeout * 1000)),
            "keepalives": 1, "keepalives_idle": max(1, round(timeout)),
            "keepalives_interval": max(1, round(timeout / 3)), "keepalives_count": 3,
            # A replica paused inside a transaction (a stop-the-world pause, SIGSTOP,
            # a frozen VM) would hold its row locks, the fence rows' among them,
            # until it wakes: the replica taking its shard would wait on them for
            # good. The server ends such a session after `timeout`, and a lock
            # is waited for no longer than that either (HistoryError, not a hang).
            "options": f"-c idle_in_transaction_session_timeout={millis} "
                       f"-c lock_timeout={millis}",
        }
        if password is not None:
            kwargs["password"] = password
        self._url, self._kwargs = url, kwargs
        self._pool_size = max(1, pool_size)
        self._renewing = threading.Lock()
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
        try:
            with (self._connection() as conn, conn.transaction(),
                  conn.cursor(row_factory=dict_row) as cursor):
                yield _Cursor(cursor)
        except (psycopg.Error, psycopg_pool.PoolClosed) as err:
            what = "write to" if write else "read"
            raise HistoryError(f"cannot {what} the history {self.name}: {_reason(err)}"
                               ) from None

    def _new_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self._url, kwargs=self._kwargs, min_size=1, max_size=self._pool_size, open=False,
            timeout=self._timeout, check=psycopg_pool.ConnectionPool.check_connection,
            name="reconciler-history",
        )
        pool.open(wait=True, timeout=self._timeout)
        return pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with ExitStack() as stack:
            pool = self._pool
            try:
                conn = stack.enter_context(pool.connection(timeout=self._timeout))
            except psycopg_pool.PoolTimeout:
                # After an outage the pool waits longer and longer between its
                # reconnects; a server that is back answers a direct connection
                # now, and one that is not says why (the pool only timed out).
                conn = stack.enter_context(psycopg.connect(self._url, **self._kwargs))
                self._renew(pool)
            yield conn

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
        with self.transaction(write=True) as cursor:
            # Replicas that start together wait for the one migrating, however long
            # its migration takes (a paused one is ended by the idle timeout).
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
        self._pool.close()

    def _close_quietly(self) -> None:
        # Already failing: the first error is the one to tell.
        with suppress(Exception):
            self._pool.close()


def _native(sql: str) -> str:
    """psycopg's placeholder spelling; the history's SQL holds no literal ? or %."""
    return sql.replace("?", "%s")


def _reason(err: BaseException) -> str:
    # libpq's messages span lines ("connection failed: ...\n\tIs the server
    # running...?"); a history error is one line.
    text = " ".join(str(err).split()) or type(err).__name__
    return text
