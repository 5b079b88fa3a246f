"""The seam between the history and the database engine that holds it.

Why a seam: the history's queries are one set of SQL that SQLite and
PostgreSQL both run; what differs is how a connection is had, how a
transaction begins, where the schema version lives and which driver errors
mean "unavailable". Each store implements `Database` (`sqlite.SqliteDatabase`,
`postgres.PostgresDatabase`) and nothing else.

Invariants:
- Every read and write of the history runs inside `transaction()`: one place
  where a store can take a lock, and where driver errors become one
  `HistoryError` naming the store (never a driver exception, never a half
  written change: the transaction is rolled back).
- Parameters are written `?`; a store translates to its driver's spelling.
- Every string parameter is made storable (`text.safe_text`) on the way in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = Mapping[str, Any]
Params = Sequence[Any]


class Cursor(Protocol):
    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one statement; its rows (empty for statements that return none)."""

    def executemany(self, sql: str, params: Iterable[Params]) -> None: ...


class Database(Protocol):
    name: str
    """How messages name this store: a path, or a URL without its password."""
    types: dict[str, str]
    """The column types `schema.statements` substitutes."""
    row_lock: str
    """What ends a SELECT that locks the rows it reads until the transaction ends
    (" FOR UPDATE"); "" where a write transaction locks the whole store already."""

    def transaction(self, *, write: bool) -> AbstractContextManager[Cursor]:
        """A transaction, committed when the block ends, rolled back when it raises."""

    def migration(self) -> AbstractContextManager[tuple[Cursor, int]]:
        """A write transaction that holds the store's migration lock, and the
        schema version found under it; `set_version` records the new one."""

    def set_version(self, cursor: Cursor, version: int) -> None: ...

    def close(self) -> None: ...
