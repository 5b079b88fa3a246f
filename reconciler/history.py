"""The durable record of what the reconciler did: SQLite under data_dir.

Git holds what should be, the backends hold what is; this file holds what the
reconciler did about it: every deploy and its events, the result of every app,
the inventory of what this tool applied (so prune never deletes what it does
not own, and a process killed mid-apply can still find what it touched), and
the last revision each app was deployed at successfully (rollback's target),
and the outcome of every drift check per target (so a restarted daemon still
knows that a target drifted).

Invariants:
- WAL mode, foreign keys on, a busy timeout: the daemon, a CLI sync and the
  status page can share the file.
- The schema is created or migrated at open, tracked by `PRAGMA user_version`.
- A deploy left "running" by a process that no longer exists is marked
  "interrupted" at the next open and whenever a deploy starts; a live
  process's deploy is left alone.
- Inventory rows are written *before* a change is applied (state "intent"),
  then marked "applied", then "healthy" once the health gate passed.
- One connection behind a lock: safe to call from any thread.
- Messages stored here come from the engine, never from secret values.
- A drift check stores resource ids and actions only, never diffs or values,
  and at most DRIFT_KEEP checks per target.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backends.base import Inventory
from reconciler.events import Event, EventKind
from reconciler.model import HostKey, ResourceId

FILENAME = "history.sqlite3"
DRIFT_KEEP = 1000
"""Drift checks kept per target: one every 5 minutes is about three days."""
DRIFT_LISTED = 100
"""Drifted resources listed per check; `drifted` still counts them all."""

_MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE deploys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        revision TEXT NOT NULL, trigger TEXT NOT NULL,
        started REAL NOT NULL, finished REAL,
        result TEXT NOT NULL DEFAULT 'running', message TEXT NOT NULL DEFAULT '',
        rolled_back INTEGER NOT NULL DEFAULT 0, summary TEXT NOT NULL DEFAULT '{}',
        pid INTEGER NOT NULL, host TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deploy_id INTEGER NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
        kind TEXT NOT NULL, revision TEXT NOT NULL, wave INTEGER, app TEXT NOT NULL,
        target TEXT NOT NULL, hosts TEXT NOT NULL, status TEXT NOT NULL,
        message TEXT NOT NULL, timestamp REAL NOT NULL
    );
    CREATE INDEX events_deploy ON events(deploy_id, id);
    CREATE TABLE app_results (
        deploy_id INTEGER NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
        app TEXT NOT NULL, target TEXT NOT NULL, wave INTEGER, hosts TEXT NOT NULL,
        status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
        started REAL, finished REAL, rollback TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (deploy_id, app)
    );
    CREATE TABLE inventory (
        target TEXT NOT NULL, host TEXT NOT NULL, resource TEXT NOT NULL,
        rgroup TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        app TEXT NOT NULL, wave INTEGER NOT NULL, revision TEXT NOT NULL,
        state TEXT NOT NULL, updated REAL NOT NULL,
        PRIMARY KEY (target, host, rgroup, kind, namespace, name)
    );
    CREATE TABLE last_good (
        app TEXT PRIMARY KEY, revision TEXT NOT NULL, deployed REAL NOT NULL,
        deploy_id INTEGER
    );
    """,
    # version 2
    """
    CREATE TABLE drift_checks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL, checked_at REAL NOT NULL, revision TEXT NOT NULL,
        drifted INTEGER NOT NULL, summary TEXT NOT NULL DEFAULT '[]',
        healed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX drift_checks_target ON drift_checks(target, id);
    """,
)


@dataclass(frozen=True, kw_only=True)
class InventoryEntry:
    target: str
    host: str
    id: ResourceId
    app: str
    wave: int = 0
    revision: str = ""
    state: str = "applied"
    """intent (about to be applied), applied, healthy (the gate passed), deleting."""


@dataclass(frozen=True, kw_only=True)
class AppResult:
    app: str
    target: str
    wave: int | None
    hosts: tuple[str, ...]
    status: str
    error: str
    started: float | None
    finished: float | None
    rollback: str


@dataclass(frozen=True, kw_only=True)
class DeployRecord:
    id: int
    revision: str
    trigger: str
    started: float
    finished: float | None
    result: str
    """running, success, failure, error or interrupted."""
    message: str
    rolled_back: bool
    summary: dict[str, int]
    apps: tuple[AppResult, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DriftedResource:
    """One resource a drift check found different: where, which, and what to do."""

    host: str
    resource: str
    """The ResourceId's spelling (`File:/etc/app.conf`, `apps/Deployment/ns/web`)."""
    action: str
    """create, update or delete: what a sync would do to it."""


@dataclass(frozen=True, kw_only=True)
class DriftCheck:
    target: str
    checked_at: float
    revision: str
    drifted: int
    """How many resources differ (all of them, even when `resources` is cut)."""
    resources: tuple[DriftedResource, ...] = ()
    healed: bool = False


class History:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILENAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()
        self._recover_interrupted()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    def _recover_interrupted(self) -> None:
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, pid, host FROM deploys WHERE result='running'"
            ).fetchall()
            for row in rows:
                if row["host"] == socket.gethostname() and not _alive(int(row["pid"])):
                    db.execute(
                        "UPDATE deploys SET result='interrupted', finished=?, "
                        "message='interrupted: the process running it stopped' WHERE id=?",
                        (time.time(), row["id"]),
                    )

    # --- deploys -----------------------------------------------------------

    def start_deploy(self, revision: str, trigger: str, message: str = "") -> int:
        # A long-lived process (the daemon) opens the history once: a CLI sync
        # killed meanwhile would otherwise show as running until the next start.
        self._recover_interrupted()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO deploys (revision, trigger, started, message, pid, host) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (revision, trigger, time.time(), message, os.getpid(), socket.gethostname()),
            )
            return int(cur.lastrowid or 0)

    def finish_deploy(
        self,
        deploy_id: int,
        result: str,
        message: str = "",
        *,
        rolled_back: bool = False,
        summary: dict[str, int] | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deploys SET result=?, message=?, rolled_back=?, finished=?, "
                "summary=? WHERE id=?",
                (result, message, int(rolled_back), time.time(),
                 json.dumps(summary or {}, sort_keys=True), deploy_id),
            )

    def deploys(self, limit: int = 50) -> list[DeployRecord]:
        """The newest deploys first, without their events."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM deploys ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            return [_deploy(row, self._apps(int(row["id"])), ()) for row in rows]

    def deploy(self, deploy_id: int) -> DeployRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM deploys WHERE id=?", (deploy_id,)).fetchone()
            if row is None:
                return None
            events = self._db.execute(
                "SELECT * FROM events WHERE deploy_id=? ORDER BY id", (deploy_id,)
            ).fetchall()
            return _deploy(row, self._apps(deploy_id), tuple(_event(e) for e in events))

    def running(self) -> list[DeployRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM deploys WHERE result='running' ORDER BY id"
            ).fetchall()
            return [_deploy(row, (), ()) for row in rows]

    def last_successful_revision(self) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT revision FROM deploys WHERE result='success' ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return None if row is None else str(row["revision"])

    def _apps(self, deploy_id: int) -> tuple[AppResult, ...]:
        rows = self._db.execute(
            "SELECT * FROM app_results WHERE deploy_id=? ORDER BY wave, app", (deploy_id,)
        ).fetchall()
        return tuple(
            AppResult(
                app=r["app"], target=r["target"], wave=r["wave"],
                hosts=tuple(json.loads(r["hosts"])), status=r["status"], error=r["error"],
                started=r["started"], finished=r["finished"], rollback=r["rollback"],
            )
            for r in rows
        )

    # --- events ------------------------------------------------------------

    def record_event(self, event: Event) -> None:
        """An EventBus listener: store the event, and fold app results from it."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (deploy_id, kind, revision, wave, app, target, hosts, "
                "status, message, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.deploy_id, event.kind.value, event.revision, event.wave, event.app,
                 event.target, json.dumps(list(event.hosts)), event.status, event.message,
                 event.timestamp),
            )
            if event.kind is EventKind.APP_DONE and event.app:
                _upsert_app_result(db, event)
            elif event.kind is EventKind.ROLLBACK_STARTED and event.app:
                # From here on the app's own result is frozen: the rollback's
                # steps report on the old revision, not on this deploy's.
                db.execute("UPDATE app_results SET rollback='running' WHERE deploy_id=? AND app=?",
                           (event.deploy_id, event.app))
            elif event.kind is EventKind.ROLLBACK_DONE and event.app:
                db.execute(
                    "UPDATE app_results SET rollback=? WHERE deploy_id=? AND app=?",
                    (f"{event.status}: {event.message}" if event.message else event.status,
                     event.deploy_id, event.app),
                )

    # --- inventory ---------------------------------------------------------

    def inventory(self, target: str) -> Inventory:
        return {(e.host, e.id): e.app for e in self.inventory_entries(target)}

    def inventory_entries(self, target: str) -> list[InventoryEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM inventory WHERE target=? ORDER BY host, kind, namespace, name",
                (target,),
            ).fetchall()
        return [
            InventoryEntry(
                target=r["target"], host=r["host"],
                id=ResourceId(group=r["rgroup"], kind=r["kind"], namespace=r["namespace"],
                              name=r["name"]),
                app=r["app"], wave=r["wave"], revision=r["revision"], state=r["state"],
            )
            for r in rows
        ]

    def set_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO inventory (target, host, resource, rgroup, kind, "
                "namespace, name, app, wave, revision, state, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (e.target, e.host, str(e.id), e.id.group, e.id.kind, e.id.namespace,
                     e.id.name, e.app, e.wave, e.revision, e.state, now)
                    for e in entries
                ],
            )

    def mark_inventory(self, target: str, keys: Iterable[HostKey], state: str) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE inventory SET state=?, updated=? WHERE target=? AND host=? AND "
                "rgroup=? AND kind=? AND namespace=? AND name=?",
                [(state, time.time(), target, h, i.group, i.kind, i.namespace, i.name)
                 for h, i in keys],
            )

    def remove_inventory(self, target: str, keys: Iterable[HostKey]) -> None:
        with self._tx() as db:
            db.executemany(
                "DELETE FROM inventory WHERE target=? AND host=? AND rgroup=? AND kind=? "
                "AND namespace=? AND name=?",
                [(target, h, i.group, i.kind, i.namespace, i.name) for h, i in keys],
            )

    # --- last good revisions -----------------------------------------------

    def last_good(self, app: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT revision FROM last_good WHERE app=?", (app,)).fetchone()
        return None if row is None else str(row["revision"])

    def mark_good(self, apps: Iterable[str], revision: str, deploy_id: int | None = None) -> None:
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO last_good (app, revision, deployed, deploy_id) "
                "VALUES (?, ?, ?, ?)",
                [(app, revision, now, deploy_id) for app in apps],
            )

    # --- drift checks --------------------------------------------------------

    def record_drift(self, checks: Iterable[DriftCheck]) -> list[int]:
        """Store one drift check per target, and forget a target's oldest ones.
        Returns the new rows' ids (for `mark_drift_healed`)."""
        ids: list[int] = []
        with self._tx() as db:
            for check in checks:
                listed = [{"host": r.host, "resource": r.resource, "action": r.action}
                          for r in check.resources[:DRIFT_LISTED]]
                cur = db.execute(
                    "INSERT INTO drift_checks (target, checked_at, revision, drifted, "
                    "summary, healed) VALUES (?, ?, ?, ?, ?, ?)",
                    (check.target, check.checked_at, check.revision, check.drifted,
                     json.dumps(listed, sort_keys=True), int(check.healed)),
                )
                ids.append(int(cur.lastrowid or 0))
                db.execute(
                    "DELETE FROM drift_checks WHERE target=? AND id <= (SELECT id FROM "
                    "drift_checks WHERE target=? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (check.target, check.target, DRIFT_KEEP),
                )
        return ids

    def mark_drift_healed(self, ids: Iterable[int]) -> None:
        """A self-heal corrected these checks' drift. The check is stored before
        the heal runs, so a process killed mid-heal still leaves the drift known."""
        with self._tx() as db:
            db.executemany("UPDATE drift_checks SET healed=1 WHERE id=?",
                           [(i,) for i in ids])

    def latest_drift(self) -> dict[str, DriftCheck]:
        """The newest drift check of every target ever checked."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM drift_checks WHERE id IN "
                "(SELECT MAX(id) FROM drift_checks GROUP BY target) ORDER BY target"
            ).fetchall()
        return {str(r["target"]): _drift_check(r) for r in rows}

    def drift_checks(self, target: str, limit: int = 50) -> list[DriftCheck]:
        """A target's drift checks, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM drift_checks WHERE target=? ORDER BY id DESC LIMIT ?",
                (target, limit),
            ).fetchall()
        return [_drift_check(r) for r in rows]


def _drift_check(row: sqlite3.Row) -> DriftCheck:
    return DriftCheck(
        target=row["target"], checked_at=row["checked_at"], revision=row["revision"],
        drifted=int(row["drifted"]), healed=bool(row["healed"]),
        resources=tuple(DriftedResource(host=str(r["host"]), resource=str(r["resource"]),
                                        action=str(r["action"]))
                        for r in json.loads(row["summary"])),
    )


def _upsert_app_result(db: sqlite3.Connection, event: Event) -> None:
    first = db.execute(
        "SELECT MIN(timestamp) FROM events WHERE deploy_id=? AND app=?",
        (event.deploy_id, event.app),
    ).fetchone()[0]
    db.execute(
        "INSERT INTO app_results (deploy_id, app, target, wave, hosts, status, "
        "error, started, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (deploy_id, app) DO UPDATE SET target=excluded.target, "
        "wave=excluded.wave, hosts=excluded.hosts, status=excluded.status, "
        "error=excluded.error, started=excluded.started, finished=excluded.finished "
        "WHERE app_results.rollback = ''",
        (event.deploy_id, event.app, event.target, event.wave, json.dumps(list(event.hosts)),
         event.status, "" if event.status == "success" else event.message,
         first, event.timestamp),
    )


def _deploy(
    row: sqlite3.Row, apps: tuple[AppResult, ...], events: tuple[Event, ...]
) -> DeployRecord:
    return DeployRecord(
        id=int(row["id"]), revision=row["revision"], trigger=row["trigger"],
        started=row["started"], finished=row["finished"], result=row["result"],
        message=row["message"], rolled_back=bool(row["rolled_back"]),
        summary=json.loads(row["summary"]), apps=apps, events=events,
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(
        kind=EventKind(row["kind"]), deploy_id=int(row["deploy_id"]), revision=row["revision"],
        wave=row["wave"], app=row["app"], target=row["target"],
        hosts=tuple(json.loads(row["hosts"])), status=row["status"], message=row["message"],
        timestamp=row["timestamp"],
    )


def _alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name; Z is a zombie.
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]
