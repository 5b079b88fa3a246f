"""Fixtures of the history tests: the stores themselves come from tests/conftest.py
(`history_settings`, `open_store`); here, the bare database under a store, for
tests that must write what no History would (an old schema, a newer one)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from reconciler.history import HistorySettings
from reconciler.history.database import Database
from reconciler.history.postgres import PostgresDatabase
from reconciler.history.settings import password
from reconciler.history.sqlite import SqliteDatabase

RawDatabase = Callable[[], AbstractContextManager[Database]]


@pytest.fixture
def raw_database(history_settings: HistorySettings, tmp_path: Path) -> RawDatabase:
    """The database `open_store` uses, opened without migrating or recovering."""

    @contextmanager
    def opened() -> Iterator[Database]:
        database: Database
        if history_settings.url is None:
            database = SqliteDatabase(tmp_path / "data")
        else:
            database = PostgresDatabase(history_settings.url,
                                        password=password(history_settings, os.environ))
        try:
            yield database
        finally:
            database.close()

    return opened
