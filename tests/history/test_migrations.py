"""A history written by the previous release (schema version 2) opens in this
one: its rows are kept, and its last good revisions gain their app's target."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.history import History, schema
from tests.history.conftest import RawDatabase

Open = Callable[[], History]


def test_a_version_2_history_migrates_and_keeps_what_it_knew(
    raw_database: RawDatabase, open_store: Open,
) -> None:
    with raw_database() as db:
        with db.migration() as (cursor, found):
            assert found == 0
            for version in (1, 2):
                for statement in schema.statements(version, db.types):
                    cursor.execute(statement)
            db.set_version(cursor, 2)
        with db.transaction(write=True) as cursor:
            # As the version 2 code wrote them: last_good keyed by app alone.
            [row] = cursor.execute(
                "INSERT INTO deploys (revision, trigger, started, finished, result, pid, host) "
                "VALUES ('good', 'poll', 1.5, 2.5, 'success', 1, 'elsewhere') RETURNING id")
            old = int(row["id"])
            cursor.execute("INSERT INTO inventory (target, host, resource, rgroup, kind, "
                           "namespace, name, app, wave, revision, state, updated) VALUES "
                           "('fleet', 'h1', 'File:/etc/web.conf', '', 'File', '', "
                           "'/etc/web.conf', 'web', 0, 'good', 'healthy', 2.0)")
            cursor.execute("INSERT INTO app_results (deploy_id, app, target, wave, hosts, "
                           "status) VALUES (?, 'api', 'prod', 1, '[]', 'success')", (old,))
            cursor.execute("INSERT INTO last_good (app, revision, deployed, deploy_id) VALUES "
                           "('web', 'good', 2.5, ?), ('api', 'good', 2.5, ?), "
                           "('gone', 'old', 1.0, NULL)", (old, old))
            cursor.execute("INSERT INTO drift_checks (target, checked_at, revision, drifted) "
                           "VALUES ('fleet', 3.0, 'good', 0)")

    history = open_store()
    assert [(d.id, d.revision, d.result) for d in history.deploys()] == [(old, "good", "success")]
    assert history.last_good("web", "fleet") == "good"  # its target from the inventory
    assert history.last_good("web", "prod") is None
    assert history.last_good("api", "prod") == "good"  # from its app results
    assert history.last_good("gone", "anywhere") == "old"  # no target known: any
    assert history.latest_drift()["fleet"].revision == "good"
    # New rows keep counting on after the migrated ones.
    assert history.start_deploy("next", "poll") > old
    with history.database.migration() as (_, found):
        assert found == schema.VERSION
