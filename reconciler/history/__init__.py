"""The durable record of what the reconciler did (see `store`), in SQLite under
data_dir by default or in a PostgreSQL server that replicas share.

    store.History        the queries, one set of SQL for every store
    database.Database    the seam a store implements
    ├── sqlite.SqliteDatabase      one file, WAL mode (the default)
    └── postgres.PostgresDatabase  psycopg 3 with a connection pool
        watchdog.Watchdog          cuts off requests a frozen server never answers
    schema               the numbered migrations both stores run
    settings             which store, and its password's whereabouts
"""

from reconciler.history.records import (
    AppResult,
    DeployRecord,
    DriftCheck,
    DriftedResource,
    InventoryEntry,
)
from reconciler.history.settings import HistorySettings, open_history
from reconciler.history.sqlite import FILENAME
from reconciler.history.store import DRIFT_KEEP, DRIFT_LISTED, History

__all__ = [
    "DRIFT_KEEP",
    "DRIFT_LISTED",
    "FILENAME",
    "AppResult",
    "DeployRecord",
    "DriftCheck",
    "DriftedResource",
    "History",
    "HistorySettings",
    "InventoryEntry",
    "open_history",
]
