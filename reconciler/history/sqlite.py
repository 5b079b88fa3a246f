"""The embedded store: one SQLite file under data_dir, for one daemon.

Invariants:
- WAL mode, foreign keys on, a busy timeout: the daemon, a CLI sync and the
  status page can share the file.
- The schema version is `PRAGMA user_version`.
- One connection behind a lock: safe to call from any thread.
- A write takes the write lock at its start (BEGIN IMMEDIATE), so two
  processes never deadlock upgrading a read to a write.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from reconciler.errors import HistoryError
from reconciler.history import schema
from reconciler.history.database import Cursor, Params, Row
from reconciler.history.text import safe_value

FILENAME = "history.sqlite3"


class _Cursor:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        return list(self._db.execute(sql, safe_value(list(params))).fetchall())

    def executemany(self, sql: str, params: Iterable[Params]) -> None:
        self._db.executemany(sql, (safe_value(list(p)) for p in params))


class SqliteDatabase:
    types = schema.SQLITE_TYPES
    row_lock = ""  # BEGIN IMMEDIATE holds the file's write lock already

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILENAME
        self.name = str(self.path)
        self._lock = threading.RLock()
        # An OSError here is the data directory's, and the caller says so.
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=30000")
        except (OSError, sqlite3.Error) as err:
            raise HistoryError(f"cannot open the history {self.name}: {_reason(err)}") from None

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[_Cursor]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield _Cursor(self._db)
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                what = "write to" if write else "read"
                raise HistoryError(f"cannot {what} the history {self.name}: "
                                   f"{_reason(err)}") from None
            except BaseException:
                self._rollback()
                raise

    @contextmanager
    def migration(self) -> Iterator[tuple[_Cursor, int]]:
        with self.transaction(write=True) as cursor:
            found = int(cursor.execute("PRAGMA user_version")[0]["user_version"])
            yield cursor, found

    def set_version(self, cursor: Cursor, version: int) -> None:
        cursor.execute(f"PRAGMA user_version={int(version)}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk does): then there is
        # nothing to undo, and saying so must not hide the first error.
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)
