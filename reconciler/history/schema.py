"""The history schema, one list of versions for every store.

Why one list: a deploy recorded by one replica on PostgreSQL and by a single
daemon on SQLite must mean the same, and a database moves forward one
numbered step at a time whichever engine holds it. Each version is a few
statements in the SQL both engines speak; `$serial`, `$real` and `$int` stand
for the column types that differ (an identity key, a double, a 64-bit integer).

Invariants:
- Versions only ever get appended; a released version is never edited.
- A database whose version is newer than `VERSION` is refused, never written:
  an older reconciler would misread what a newer one recorded.
"""

from __future__ import annotations

from string import Template

from reconciler.errors import HistoryError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # version 1: deploys, their events and app results, the inventory, last good revisions
    (
        """CREATE TABLE deploys (
            id $serial,
            revision TEXT NOT NULL, trigger TEXT NOT NULL,
            started $real NOT NULL, finished $real,
            result TEXT NOT NULL DEFAULT 'running', message TEXT NOT NULL DEFAULT '',
            rolled_back INTEGER NOT NULL DEFAULT 0, summary TEXT NOT NULL DEFAULT '{}',
            pid $int NOT NULL, host TEXT NOT NULL
        )""",
        """CREATE TABLE events (
            id $serial,
            deploy_id $int NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
            kind TEXT NOT NULL, revision TEXT NOT NULL, wave $int, app TEXT NOT NULL,
            target TEXT NOT NULL, hosts TEXT NOT NULL, status TEXT NOT NULL,
            message TEXT NOT NULL, timestamp $real NOT NULL
        )""",
        "CREATE INDEX events_deploy ON events(deploy_id, id)",
        """CREATE TABLE app_results (
            deploy_id $int NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
            app TEXT NOT NULL, target TEXT NOT NULL, wave $int, hosts TEXT NOT NULL,
            status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
            started $real, finished $real, rollback TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (deploy_id, app)
        )""",
        """CREATE TABLE inventory (
            target TEXT NOT NULL, host TEXT NOT NULL, resource TEXT NOT NULL,
            rgroup TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL,
            name TEXT NOT NULL, app TEXT NOT NULL, wave $int NOT NULL,
            revision TEXT NOT NULL, state TEXT NOT NULL, updated $real NOT NULL,
            PRIMARY KEY (target, host, rgroup, kind, namespace, name)
        )""",
        """CREATE TABLE last_good (
            app TEXT PRIMARY KEY, revision TEXT NOT NULL, deployed $real NOT NULL,
            deploy_id $int
        )""",
    ),
    # version 2: drift checks per target
    (
        """CREATE TABLE drift_checks (
            id $serial,
            target TEXT NOT NULL, checked_at $real NOT NULL, revision TEXT NOT NULL,
            drifted $int NOT NULL, summary TEXT NOT NULL DEFAULT '[]',
            healed INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX drift_checks_target ON drift_checks(target, id)",
    ),
    # version 3: the last good revision per app *and target*: an app moved to
    # another target must not roll back there to a revision it never ran at.
    # Rows of before keep their app's newest known target ('' when none).
    (
        """CREATE TABLE last_good_v3 (
            app TEXT NOT NULL, target TEXT NOT NULL, revision TEXT NOT NULL,
            deployed $real NOT NULL, deploy_id $int,
            PRIMARY KEY (app, target)
        )""",
        """INSERT INTO last_good_v3 (app, target, revision, deployed, deploy_id)
            SELECT g.app, COALESCE(
                (SELECT MIN(i.target) FROM inventory i WHERE i.app = g.app),
                (SELECT r.target FROM app_results r WHERE r.app = g.app
                 ORDER BY r.deploy_id DESC LIMIT 1),
                ''), g.revision, g.deployed, g.deploy_id
            FROM last_good g""",
        "DROP TABLE last_good",
        "ALTER TABLE last_good_v3 RENAME TO last_good",
    ),
    # version 4: pull-request plan records (they were files under data_dir/plans/),
    # so every replica serves every plan and none plans a head twice.
    (
        """CREATE TABLE plans (
            sha TEXT PRIMARY KEY, ref TEXT NOT NULL, state TEXT NOT NULL,
            planned_at $real NOT NULL, record TEXT NOT NULL
        )""",
        "CREATE INDEX plans_planned ON plans(planned_at)",
    ),
    # version 5: replicas sharing one history over shards. Each deploy names the
    # targets it covered (a new holder of a shard seeds its failed-commit memory
    # from that shard's deploys only); a fence per target names its holder and a
    # token that grows whenever a replica takes the target, so a replica that
    # lost it cannot record or apply any more; replicas say they are alive (the
    # fair share of shards) and where they answer HTTP; a webhook that reached
    # a replica is relayed to the others as a request they poll.
    (
        "ALTER TABLE deploys ADD COLUMN targets TEXT NOT NULL DEFAULT '[]'",
        """CREATE TABLE fences (
            target TEXT PRIMARY KEY, holder TEXT NOT NULL, token $int NOT NULL,
            since $real NOT NULL
        )""",
        """CREATE TABLE replicas (
            identity TEXT PRIMARY KEY, seen $real NOT NULL,
            address TEXT NOT NULL DEFAULT '', shards TEXT NOT NULL DEFAULT '[]'
        )""",
        """CREATE TABLE requests (
            id $serial,
            kind TEXT NOT NULL, ref TEXT NOT NULL, reason TEXT NOT NULL,
            sender TEXT NOT NULL, made $real NOT NULL
        )""",
    ),
)

VERSION = len(MIGRATIONS)

SQLITE_TYPES = {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL",
                "int": "INTEGER"}
"""SQLite's INTEGER is already 64 bits, its REAL a double."""
POSTGRES_TYPES = {"serial": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                  "real": "DOUBLE PRECISION", "int": "BIGINT"}
"""PostgreSQL's REAL is 4 bytes (a timestamp would lose its seconds), INTEGER 32 bits."""


def statements(version: int, types: dict[str, str]) -> list[str]:
    """The statements that bring a database from `version - 1` to `version`."""
    return [Template(s).substitute(types) for s in MIGRATIONS[version - 1]]


def check_version(found: int, where: str) -> None:
    """Refuse a schema this code cannot read (newer) or that is not one (negative)."""
    if found > VERSION:
        raise HistoryError(
            f"{where}: history schema version {found} is newer than this reconciler "
            f"knows ({VERSION}): run a reconciler at least as new as the one that "
            "wrote it, or point this one at another history")
    if found < 0:
        raise HistoryError(f"{where}: history schema version {found} is not valid")
