"""Which store holds the history, and how to open it.

Pure data plus one opener: the daemon's config names a PostgreSQL URL and
where its password lives (a file or an environment variable, never the URL),
and `open_history` turns that into a `History`. No setting: SQLite under
data_dir.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import HistoryError
from reconciler.history.store import History

SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, kw_only=True)
class HistorySettings:
    url: str | None = None
    """postgresql://user@host:port/db; None: SQLite under data_dir."""
    password_file: Path | None = None
    password_env: str | None = None
    pool_size: int = 4
    """Connections kept to the server at most (the worker, plans, the page)."""
    timeout: float = 10.0
    """Seconds a call waits for a connection before it raises HistoryError."""


def password(settings: HistorySettings, environ: Mapping[str, str]) -> str | None:
    """The password the settings point at; a file's trailing newline is not part of it."""
    if settings.password_file is not None:
        try:
            return settings.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise HistoryError(f"cannot read the history password file "
                               f"{settings.password_file}: {err.strerror or err}") from None
    if settings.password_env is not None:
        value = environ.get(settings.password_env)
        if not value:
            raise HistoryError(f"the history password variable {settings.password_env} "
                               "is not set")
        return value
    return None


def open_history(settings: HistorySettings, data_dir: Path,
                 environ: Mapping[str, str] | None = None) -> History:
    if settings.url is None:
        return History(data_dir)
    from reconciler.history.postgres import PostgresDatabase  # psycopg only when used

    secret = password(settings, os.environ if environ is None else environ)
    database = PostgresDatabase(settings.url, password=secret, pool_size=settings.pool_size,
                                timeout=settings.timeout)
    return History(database=database)
