"""The history: what the reconciler did, in the store every replica shares.

Git holds what should be, the backends hold what is; the history holds what
the reconciler did about it: every deploy and its events, the result of every
app, the inventory of what this tool applied (so prune never deletes what it
does not own, and a process killed mid-apply can still find what it touched),
the last revision each app was deployed at successfully on its target
(rollback's target), the outcome of every drift check per target (so a
restarted daemon still knows that a target drifted), the plan of every
pull-request head (so no replica plans a head twice, and each serves every
plan), and through its deploys the failed-commit memory
(`reconciler.daemon.scheduler.seed`).

One class over one `Database`: SQLite under data_dir (the default) or a
PostgreSQL server (`postgres.PostgresDatabase`); the SQL is the same.

Invariants:
- The schema is created or migrated at open (`schema.MIGRATIONS`); a schema
  newer than this code is refused with a `HistoryError`, and nothing is written.
- A deploy left "running" by a process that no longer exists on this host is
  marked "interrupted" at the next open and whenever a deploy starts; a live
  process's deploy, or another host's, is left alone.
- Inventory rows are written *before* a change is applied (state "intent"),
  then marked "applied", then "healthy" once the health gate passed.
- Every call is one transaction: it happens whole or raises `HistoryError`
  and happens not at all. Safe to call from any thread.
- Messages stored here come from the engine, never from secret values; names
  are stored escaped when they are not text (`text.safe_text`).
- A drift check stores resource ids and actions only, never diffs or values,
  and at most DRIFT_KEEP checks per target.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.base import Inventory
from reconciler.events import Event, EventKind
from reconciler.history import fence, rows, schema
from reconciler.history.database import Cursor, Database
from reconciler.history.fence import FencedError
from reconciler.history.records import (
    AppResult,
    DeployRecord,
    DriftCheck,
    InventoryEntry,
    RelayedRequest,
    Replica,
)
from reconciler.history.sqlite import SqliteDatabase
from reconciler.history.text import safe_json
from reconciler.model import HostKey

DRIFT_KEEP = 1000
"""Drift checks kept per target: one every 5 minutes is about three days."""
DRIFT_LISTED = 100
"""Drifted resources listed per check; `drifted` still counts them all."""
INTERRUPTED = "interrupted: the process running it stopped before it ended"
REQUESTS_KEEP = 1000
"""Relayed webhook requests kept: replicas read them within a second or two."""
TAKEN_OVER = "interrupted: another replica took its targets (their fence) before it ended"

Guard = Callable[[Cursor], None]
"""Runs first in every write transaction of a deploy (`History.fenced`); raises to
refuse the write, which then happens not at all."""


class History:
    def __init__(self, data_dir: Path | None = None, *, database: Database | None = None
                 ) -> None:
        """The SQLite history under `data_dir`, or the history in `database`."""
        if database is None:
            if data_dir is None:
                raise ValueError("History needs a data_dir or a database")
            database = SqliteDatabase(data_dir)
        self.database: Database = database
        self._guard: Guard | None = None
        try:
            self._migrate()
            self._recover_interrupted()
        except BaseException:
            database.close()
            raise

    @property
    def name(self) -> str:
        """Where this history lives, for messages: a file or a URL without password."""
        return self.database.name

    def close(self) -> None:
        self.database.close()

    def fenced(self, guard: Guard) -> History:
        """This history, over the same store, with `guard` run first in each
        write of a deploy (its start and end, events, inventory, last good
        revisions), in the same transaction: a guard that raises refuses the
        write whole. Closing the view closes the store, so only the owner does."""
        view = copy.copy(self)
        view._guard = guard
        return view

    @contextmanager
    def _deploy_write(self) -> Iterator[Cursor]:
        with self.database.transaction(write=True) as db:
            if self._guard is not None:
                self._guard(db)
            yield db

    def _migrate(self) -> None:
        with self.database.migration() as (cursor, found):
            schema.check_version(found, self.database.name)
            for number in range(found + 1, schema.VERSION + 1):
                for statement in schema.statements(number, self.database.types):
                    cursor.execute(statement)
                self.database.set_version(cursor, number)

    def _recover_interrupted(self) -> None:
        here = socket.gethostname()
        with self.database.transaction(write=True) as db:
            found = db.execute("SELECT id, pid, host FROM deploys WHERE result='running'")
            for row in found:
                if row["host"] == here and not _alive(int(row["pid"])):
                    db.execute("UPDATE deploys SET result='interrupted', finished=?, "
                               "message=? WHERE id=?", (time.time(), INTERRUPTED, row["id"]))

    # --- deploys -----------------------------------------------------------

    def start_deploy(self, revision: str, trigger: str, message: str = "",
                     targets: Sequence[str] = ()) -> int:
        # A long-lived process (the daemon) opens the history once: a CLI sync
        # killed meanwhile would otherwise show as running until the next start.
        self._recover_interrupted()
        with self._deploy_write() as db:
            found = db.execute(
                "INSERT INTO deploys (revision, trigger, started, message, pid, host, targets) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (revision, trigger, time.time(), message, os.getpid(), socket.gethostname(),
                 safe_json(sorted(targets))),
            )
            return int(found[0]["id"])

    def finish_deploy(
        self,
        deploy_id: int,
        result: str,
        message: str = "",
        *,
        rolled_back: bool = False,
        summary: dict[str, int] | None = None,
    ) -> None:
        with self._deploy_write() as db:
            db.execute(
                "UPDATE deploys SET result=?, message=?, rolled_back=?, finished=?, "
                "summary=? WHERE id=?",
                (result, message, int(rolled_back), time.time(), safe_json(summary or {}),
                 deploy_id),
            )

    def deploys(self, limit: int = 50) -> list[DeployRecord]:
        """The newest deploys first, without their events."""
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT * FROM deploys ORDER BY id DESC LIMIT ?", (limit,))
            return [rows.deploy(row, _apps(db, int(row["id"])), ()) for row in found]

    def deploy(self, deploy_id: int) -> DeployRecord | None:
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT * FROM deploys WHERE id=?", (deploy_id,))
            if not found:
                return None
            events = db.execute("SELECT * FROM events WHERE deploy_id=? ORDER BY id",
                                (deploy_id,))
            return rows.deploy(found[0], _apps(db, deploy_id),
                               tuple(rows.event(e) for e in events))

    def running(self) -> list[DeployRecord]:
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT * FROM deploys WHERE result='running' ORDER BY id")
            return [rows.deploy(row, (), ()) for row in found]

    def last_successful_revision(self, targets: Collection[str] | None = None
                                 ) -> str | None:
        """The newest successful deploy's revision; with `targets`, of the newest
        that covered one of them (deploys before schema 5 name none, and count)."""
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT revision, targets FROM deploys WHERE result='success' "
                               "ORDER BY id DESC LIMIT 200")
        for row in found:
            covered = json.loads(row["targets"])
            if targets is None or not covered or set(covered) & set(targets):
                return str(row["revision"])
        return None

    # --- events ------------------------------------------------------------

    def record_event(self, event: Event) -> None:
        """An EventBus listener: store the event, and fold app results from it."""
        with self._deploy_write() as db:
            db.execute(
                "INSERT INTO events (deploy_id, kind, revision, wave, app, target, hosts, "
                "status, message, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.deploy_id, event.kind.value, event.revision, event.wave, event.app,
                 event.target, safe_json(list(event.hosts)), event.status, event.message,
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
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT * FROM inventory WHERE target=?", (target,))
        # Sorted here, not by ORDER BY: a server's collation may not be code point order.
        entries = [rows.inventory_entry(r) for r in found]
        return sorted(entries, key=lambda e: (e.host, e.id.kind, e.id.namespace, e.id.name))

    def set_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        now = time.time()
        with self._deploy_write() as db:
            db.executemany(
                "INSERT INTO inventory (target, host, resource, rgroup, kind, namespace, "
                "name, app, wave, revision, state, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (target, host, rgroup, kind, namespace, name) DO UPDATE SET "
                "resource=excluded.resource, app=excluded.app, wave=excluded.wave, "
                "revision=excluded.revision, state=excluded.state, updated=excluded.updated",
                [(e.target, e.host, str(e.id), e.id.group, e.id.kind, e.id.namespace,
                  e.id.name, e.app, e.wave, e.revision, e.state, now) for e in entries],
            )

    def mark_inventory(self, target: str, keys: Iterable[HostKey], state: str) -> None:
        with self._deploy_write() as db:
            db.executemany(
                "UPDATE inventory SET state=?, updated=? WHERE target=? AND host=? AND "
                "rgroup=? AND kind=? AND namespace=? AND name=?",
                [(state, time.time(), target, h, i.group, i.kind, i.namespace, i.name)
                 for h, i in keys],
            )

    def remove_inventory(self, target: str, keys: Iterable[HostKey]) -> None:
        with self._deploy_write() as db:
            db.executemany(
                "DELETE FROM inventory WHERE target=? AND host=? AND rgroup=? AND kind=? "
                "AND namespace=? AND name=?",
                [(target, h, i.group, i.kind, i.namespace, i.name) for h, i in keys],
            )

    # --- last good revisions -----------------------------------------------

    def last_good(self, app: str, target: str | None = None) -> str | None:
        """The revision `app` last deployed at successfully on `target`; None:
        the newest on any target. Rows migrated without a known target ('')
        count for every target."""
        with self.database.transaction(write=False) as db:
            if target is None:
                found = db.execute("SELECT revision FROM last_good WHERE app=? "
                                   "ORDER BY deployed DESC LIMIT 1", (app,))
            else:
                found = db.execute(
                    "SELECT revision FROM last_good WHERE app=? AND (target=? OR target='') "
                    "ORDER BY target DESC LIMIT 1", (app, target))
        return str(found[0]["revision"]) if found else None

    def mark_good(self, apps: Iterable[str | tuple[str, str]], revision: str,
                  deploy_id: int | None = None) -> None:
        """Record `revision` as the last good one of each (app, target); an app
        named alone counts for every target."""
        now = time.time()
        pairs = [(a, "") if isinstance(a, str) else a for a in apps]
        with self._deploy_write() as db:
            db.executemany(
                "INSERT INTO last_good (app, target, revision, deployed, deploy_id) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (app, target) DO UPDATE SET "
                "revision=excluded.revision, deployed=excluded.deployed, "
                "deploy_id=excluded.deploy_id",
                [(app, target, revision, now, deploy_id) for app, target in pairs],
            )
            # A migrated row of unknown target is superseded by a known one.
            db.executemany("DELETE FROM last_good WHERE app=? AND target=''",
                           [(app,) for app, target in pairs if target])

    # --- fences and replicas (several replicas over shards) -----------------

    def take_fences(self, targets: Iterable[str], holder: str,
                    still_holds: Callable[[], bool]) -> dict[str, int]:
        """Make `holder` the holder of each target, with a new token each, in one
        transaction; `still_holds` is asked under the rows' lock (the shard's
        Lease), and when False nothing is taken: FencedError."""
        with self.database.transaction(write=True) as db:
            fence.read(db, targets, lock=self.database.row_lock)  # locked until the end
            if not still_holds():
                raise FencedError(f"{holder} does not hold the shard any more")
            tokens = {t: fence.take(db, t, holder, lock=self.database.row_lock)
                      for t in sorted(set(targets))}
            # A deploy of these targets another process left running can never
            # end now (its fence is void): it ended when its holder lost them.
            here = (os.getpid(), socket.gethostname())
            for row in db.execute("SELECT id, pid, host, targets FROM deploys "
                                  "WHERE result='running'"):
                if (int(row["pid"]), row["host"]) != here and \
                        set(json.loads(row["targets"])) & set(tokens):
                    db.execute("UPDATE deploys SET result='interrupted', finished=?, "
                               "message=? WHERE id=?", (time.time(), TAKEN_OVER, row["id"]))
            return tokens

    def check_fences(self, db: Cursor, tokens: Mapping[str, int]) -> fence.FenceRow | None:
        """Inside a write transaction: lock the fences of `tokens`' targets and
        return the first one taken by someone since, None when all are current."""
        rows = fence.read(db, tokens, lock=self.database.row_lock)
        return fence.stale(rows, tokens)

    def fences(self) -> dict[str, fence.FenceRow]:
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT target FROM fences")
            return fence.read(db, [str(r["target"]) for r in found])

    def heartbeat(self, identity: str, address: str = "",
                  shards: Sequence[int] = ()) -> None:
        """`identity` is alive now, answers HTTP at `address`, holds `shards`."""
        with self.database.transaction(write=True) as db:
            db.execute(
                "INSERT INTO replicas (identity, seen, address, shards) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (identity) DO UPDATE SET seen=excluded.seen, "
                "address=excluded.address, shards=excluded.shards",
                (identity, time.time(), address, safe_json(sorted(shards))))

    def replicas(self, seen_within: float) -> list[Replica]:
        """Replicas that said they are alive within `seen_within` seconds; older
        rows (replicas gone for ten times that) are forgotten."""
        now = time.time()
        with self.database.transaction(write=True) as db:
            db.execute("DELETE FROM replicas WHERE seen < ?", (now - 10 * seen_within,))
            found = db.execute("SELECT * FROM replicas WHERE seen >= ? ORDER BY identity",
                               (now - seen_within,))
        return [Replica(identity=str(r["identity"]), seen=float(r["seen"]),
                        address=str(r["address"]),
                        shards=tuple(int(i) for i in json.loads(r["shards"])))
                for r in found]

    def relay(self, kind: str, ref: str, reason: str, sender: str) -> int:
        """Store a request for the other replicas (`requests_after`); the oldest
        beyond REQUESTS_KEEP are forgotten."""
        with self.database.transaction(write=True) as db:
            found = db.execute("INSERT INTO requests (kind, ref, reason, sender, made) "
                               "VALUES (?, ?, ?, ?, ?) RETURNING id",
                               (kind, ref, reason, sender, time.time()))
            new = int(found[0]["id"])
            db.execute("DELETE FROM requests WHERE id <= ?", (new - REQUESTS_KEEP,))
        return new

    def requests_after(self, last: int | None) -> tuple[int, list[RelayedRequest]]:
        """The requests stored after id `last`, oldest first, and the newest id;
        `last` None: none, only the newest id (where a replica starts reading)."""
        with self.database.transaction(write=False) as db:
            newest = db.execute("SELECT MAX(id) AS id FROM requests")[0]["id"]
            if last is None:
                return int(newest or 0), []
            found = db.execute("SELECT * FROM requests WHERE id > ? ORDER BY id", (last,))
        listed = [RelayedRequest(id=int(r["id"]), kind=str(r["kind"]), ref=str(r["ref"]),
                                 reason=str(r["reason"]), sender=str(r["sender"]))
                  for r in found]
        return (listed[-1].id if listed else last), listed

    def forget_replica(self, identity: str) -> None:
        with self.database.transaction(write=True) as db:
            db.execute("DELETE FROM replicas WHERE identity=?", (identity,))

    # --- drift checks --------------------------------------------------------

    def record_drift(self, checks: Iterable[DriftCheck]) -> list[int]:
        """Store one drift check per target, and forget a target's oldest ones.
        Returns the new rows' ids (for `mark_drift_healed`)."""
        ids: list[int] = []
        with self.database.transaction(write=True) as db:
            for check in checks:
                listed = [{"host": r.host, "resource": r.resource, "action": r.action}
                          for r in check.resources[:DRIFT_LISTED]]
                found = db.execute(
                    "INSERT INTO drift_checks (target, checked_at, revision, drifted, "
                    "summary, healed) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (check.target, check.checked_at, check.revision, check.drifted,
                     safe_json(listed), int(check.healed)),
                )
                ids.append(int(found[0]["id"]))
                db.execute(
                    "DELETE FROM drift_checks WHERE target=? AND id <= (SELECT id FROM "
                    "drift_checks WHERE target=? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (check.target, check.target, DRIFT_KEEP),
                )
        return ids

    def mark_drift_healed(self, ids: Iterable[int]) -> None:
        """A self-heal corrected these checks' drift. The check is stored before
        the heal runs, so a process killed mid-heal still leaves the drift known."""
        with self.database.transaction(write=True) as db:
            db.executemany("UPDATE drift_checks SET healed=1 WHERE id=?", [(i,) for i in ids])

    def latest_drift(self) -> dict[str, DriftCheck]:
        """The newest drift check of every target ever checked."""
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT * FROM drift_checks WHERE id IN "
                               "(SELECT MAX(id) FROM drift_checks GROUP BY target)")
        checks = sorted((rows.drift_check(r) for r in found), key=lambda c: c.target)
        return {c.target: c for c in checks}

    def drift_checks(self, target: str, limit: int = 50) -> list[DriftCheck]:
        """A target's drift checks, newest first."""
        with self.database.transaction(write=False) as db:
            found = db.execute(
                "SELECT * FROM drift_checks WHERE target=? ORDER BY id DESC LIMIT ?",
                (target, limit))
        return [rows.drift_check(r) for r in found]

    # --- pull-request plan records ------------------------------------------

    def save_plan(self, sha: str, ref: str, state: str, record: Mapping[str, Any],
                  planned_at: float | None = None) -> None:
        """Keep the plan of pull-request head `sha` (a JSON-able record, diffs
        already redacted); a head planned again replaces its record."""
        with self.database.transaction(write=True) as db:
            db.execute(
                "INSERT INTO plans (sha, ref, state, planned_at, record) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (sha) DO UPDATE SET ref=excluded.ref, state=excluded.state, "
                "planned_at=excluded.planned_at, record=excluded.record",
                (sha, ref, state, time.time() if planned_at is None else planned_at,
                 safe_json(dict(record))),
            )

    def plan(self, sha: str) -> dict[str, Any] | None:
        """The stored plan record of `sha`; None when it was never planned (or pruned)."""
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT record FROM plans WHERE sha=?", (sha,))
        if not found:
            return None
        record = json.loads(found[0]["record"])
        return record if isinstance(record, dict) else None

    def plans(self) -> list[str]:
        """The shas of every stored plan, newest first."""
        with self.database.transaction(write=False) as db:
            found = db.execute("SELECT sha FROM plans ORDER BY planned_at DESC, sha")
        return [str(r["sha"]) for r in found]

    def prune_plans(self, keep: int, current: Collection[str]) -> list[str]:
        """Forget plans but the `keep` newest and those of a sha in `current` (heads
        still open: forgetting theirs would plan them again). Returns the forgotten."""
        with self.database.transaction(write=True) as db:
            found = db.execute("SELECT sha FROM plans ORDER BY planned_at DESC, sha")
            gone = [str(r["sha"]) for r in found[keep:] if r["sha"] not in current]
            db.executemany("DELETE FROM plans WHERE sha=?", [(sha,) for sha in gone])
        return gone


def _apps(db: Cursor, deploy_id: int) -> tuple[AppResult, ...]:
    found = db.execute("SELECT * FROM app_results WHERE deploy_id=?", (deploy_id,))
    # NULL waves first, as SQLite orders them (PostgreSQL puts them last).
    return tuple(sorted((rows.app_result(r) for r in found),
                        key=lambda a: (a.wave is not None, a.wave or 0, a.app)))


def _upsert_app_result(db: Cursor, event: Event) -> None:
    first = db.execute("SELECT MIN(timestamp) AS first FROM events WHERE deploy_id=? AND app=?",
                       (event.deploy_id, event.app))[0]["first"]
    db.execute(
        "INSERT INTO app_results (deploy_id, app, target, wave, hosts, status, "
        "error, started, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (deploy_id, app) DO UPDATE SET target=excluded.target, "
        "wave=excluded.wave, hosts=excluded.hosts, status=excluded.status, "
        "error=excluded.error, started=excluded.started, finished=excluded.finished "
        "WHERE app_results.rollback = ''",
        (event.deploy_id, event.app, event.target, event.wave, safe_json(list(event.hosts)),
         event.status, "" if event.status == "success" else event.message,
         first, event.timestamp),
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

