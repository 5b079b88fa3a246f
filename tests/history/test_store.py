"""The history's behaviour, the same on both stores: each test runs on SQLite
under data_dir and on a database of its own on the real PostgreSQL server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import HistoryError
from reconciler.events import Event, EventKind
from reconciler.history import (
    DriftCheck,
    DriftedResource,
    History,
    HistorySettings,
    InventoryEntry,
    open_history,
    store,
)
from reconciler.model import ResourceId
from tests.history.conftest import RawDatabase
from tests.support.postgres import PASSWORD

Open = Callable[[], History]
WEB = ResourceId(group="", kind="File", namespace="", name="/etc/web.conf")
APP = ResourceId(group="apps", kind="Deployment", namespace="ns", name="web")


def event(kind: EventKind, deploy_id: int, **fields: object) -> Event:
    return Event(kind=kind, deploy_id=deploy_id, revision="abc", **fields)  # type: ignore[arg-type]


def test_a_deploy_is_recorded_from_start_to_end_with_its_events(open_store: Open) -> None:
    history = open_store()
    first = history.start_deploy("abc", "poll")
    history.record_event(event(EventKind.DEPLOY_STARTED, first, status="running"))
    assert [d.result for d in history.running()] == ["running"]
    history.finish_deploy(first, "success", "1 to change", summary={"update": 1})
    second = history.start_deploy("def", "webhook")
    history.finish_deploy(second, "failure", "health check failed", rolled_back=True)

    newest = history.deploys()
    assert [(d.id, d.revision, d.result) for d in newest] == \
        [(second, "def", "failure"), (first, "abc", "success")]
    assert newest[0].rolled_back and not newest[1].rolled_back
    assert newest[1].summary == {"update": 1} and newest[1].message == "1 to change"
    assert newest[1].finished is not None and newest[1].finished >= newest[1].started
    assert history.running() == []
    assert history.last_successful_revision() == "abc"
    record = history.deploy(first)
    assert record is not None
    assert [(e.kind, e.status) for e in record.events] == [(EventKind.DEPLOY_STARTED, "running")]
    assert history.deploy(second + 100) is None
    assert [d.id for d in history.deploys(limit=1)] == [second]


def test_app_results_fold_from_events_and_freeze_at_a_rollback(open_store: Open) -> None:
    history = open_store()
    deploy = history.start_deploy("abc", "cli")
    history.record_event(event(EventKind.BATCH_STARTED, deploy, app="web", target="fleet",
                               wave=1, hosts=("h1",), timestamp=10.25))
    history.record_event(event(EventKind.APP_DONE, deploy, app="web", target="fleet", wave=1,
                               hosts=("h1", "h2"), status="failure", message="h2 unhealthy",
                               timestamp=12.5))
    history.record_event(event(EventKind.APP_DONE, deploy, app="db", target="fleet", wave=None,
                               status="success", message="ignored", timestamp=11.0))
    history.record_event(event(EventKind.ROLLBACK_STARTED, deploy, app="web"))
    # The rollback's own steps report on the old revision: web's result stays.
    history.record_event(event(EventKind.APP_DONE, deploy, app="web", target="fleet", wave=1,
                               status="success"))
    history.record_event(event(EventKind.ROLLBACK_DONE, deploy, app="web", status="success",
                               message="back at v1"))
    record = history.deploy(deploy)
    assert record is not None
    apps = {a.app: a for a in record.apps}
    assert [a.app for a in record.apps] == ["db", "web"]  # a wave of None first
    web = apps["web"]
    assert (web.status, web.error, web.hosts, web.rollback) == \
        ("failure", "h2 unhealthy", ("h1", "h2"), "success: back at v1")
    assert (web.started, web.finished) == (10.25, 12.5)  # sub-second times survive
    assert (apps["db"].status, apps["db"].error) == ("success", "")


def test_the_inventory_is_written_marked_and_removed_per_target(open_store: Open) -> None:
    history = open_store()
    history.set_inventory([
        InventoryEntry(target="fleet", host="web-2", id=WEB, app="web", state="intent"),
        InventoryEntry(target="fleet", host="web-1", id=WEB, app="web", wave=2**40),
        InventoryEntry(target="prod", host="", id=APP, app="api", revision="abc"),
    ])
    history.set_inventory([InventoryEntry(target="fleet", host="web-2", id=WEB, app="web2",
                                          state="applied")])  # the same key: replaced
    history.mark_inventory("fleet", [("web-1", WEB)], "healthy")
    entries = history.inventory_entries("fleet")
    assert [(e.host, e.app, e.state, e.wave) for e in entries] == \
        [("web-1", "web", "healthy", 2**40), ("web-2", "web2", "applied", 0)]
    assert history.inventory("prod") == {("", APP): "api"}
    history.remove_inventory("fleet", [("web-2", WEB)])
    assert list(history.inventory("fleet")) == [("web-1", WEB)]
    assert history.inventory("nowhere") == {}


def test_the_last_good_revision_is_kept_per_app_and_target(open_store: Open) -> None:
    history = open_store()
    assert history.last_good("web") is None
    history.mark_good([("web", "blue"), ("api", "blue")], "r1", 1)
    history.mark_good([("web", "green")], "r2", 2)
    assert history.last_good("web", "blue") == "r1"
    assert history.last_good("web", "green") == "r2"
    assert history.last_good("web", "red") is None
    assert history.last_good("web") == "r2"  # any target: the newest
    # An app named alone (no target known) counts for every target until one is.
    history.mark_good(["db"], "r3")
    assert history.last_good("db", "blue") == "r3"
    history.mark_good([("db", "blue")], "r4")
    assert history.last_good("db", "green") is None and history.last_good("db") == "r4"


def test_drift_checks_are_kept_per_target_newest_first_and_cut(
    open_store: Open, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "DRIFT_KEEP", 3)
    monkeypatch.setattr(store, "DRIFT_LISTED", 2)
    history = open_store()
    drifted = tuple(DriftedResource(host="h", resource=f"File:/f{i}", action="update")
                    for i in range(5))
    ids = history.record_drift([
        DriftCheck(target="fleet", checked_at=100.5, revision="abc", drifted=5,
                   resources=drifted),
        DriftCheck(target="prod", checked_at=100.5, revision="abc", drifted=0),
    ])
    assert len(ids) == 2 and ids[0] != ids[1]
    history.mark_drift_healed(ids[:1])
    for second in range(4):
        history.record_drift([DriftCheck(target="fleet", checked_at=200.0 + second,
                                         revision="def", drifted=0)])
    checks = history.drift_checks("fleet")
    assert [c.checked_at for c in checks] == [203.0, 202.0, 201.0]  # only DRIFT_KEEP kept
    latest = history.latest_drift()
    assert list(latest) == ["fleet", "prod"]
    assert latest["fleet"].checked_at == 203.0 and latest["prod"].drifted == 0
    first = history.drift_checks("prod")[0]
    assert first.checked_at == 100.5 and first.resources == ()


def test_a_healed_check_lists_only_the_first_resources(open_store: Open,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "DRIFT_LISTED", 2)
    history = open_store()
    drifted = tuple(DriftedResource(host="h", resource=f"File:/f{i}", action="update")
                    for i in range(5))
    [check_id] = history.record_drift([DriftCheck(target="fleet", checked_at=1.0,
                                                  revision="abc", drifted=5,
                                                  resources=drifted)])
    history.mark_drift_healed([check_id])
    [check] = history.drift_checks("fleet")
    assert check.healed and check.drifted == 5
    assert [r.resource for r in check.resources] == ["File:/f0", "File:/f1"]


def test_a_restart_marks_a_dead_process_deploy_interrupted_and_keeps_the_rest(
    open_store: Open,
) -> None:
    history = open_store()
    dead = history.start_deploy("abc", "cli")
    elsewhere = history.start_deploy("def", "cli")
    mine = history.start_deploy("ghi", "cli")
    with history.database.transaction(write=True) as db:
        db.execute("UPDATE deploys SET pid=999999999 WHERE id=?", (dead,))
        # Another replica's host: its processes are not ours to judge.
        db.execute("UPDATE deploys SET pid=999999999, host=? WHERE id=?",
                   (socket.gethostname() + "-other", elsewhere))
    history.close()
    reopened = open_store()
    results = {d.id: (d.result, d.message) for d in reopened.deploys()}
    assert results == {dead: ("interrupted", store.INTERRUPTED), elsewhere: ("running", ""),
                       mine: ("running", "")}


def test_names_that_are_not_text_are_stored_escaped(open_store: Open) -> None:
    """A tree entry name with the byte 0xff reaches us as a lone surrogate; neither
    store can encode it, and PostgreSQL refuses NUL: both are stored as escapes."""
    history = open_store()
    bad = "apps/w\udcffeb/app.yaml:1: app name 'w\udcffeb' is invalid\x00"
    deploy = history.start_deploy("abc", "cli", message=bad)
    history.record_event(event(EventKind.APP_DONE, deploy, app="w\udcffeb", target="t",
                               hosts=("h\udcfe",), status="failure", message=bad))
    history.finish_deploy(deploy, "error", bad)
    history.set_inventory([InventoryEntry(target="t", host="h", app="w\udcffeb",
                                          id=ResourceId(group="", kind="File", namespace="",
                                                        name="/etc/\udcff"))])
    escaped = "apps/w\\xffeb/app.yaml:1: app name 'w\\xffeb' is invalid\\x00"
    record = history.deploy(deploy)
    assert record is not None and record.message == escaped
    assert [(a.app, a.hosts, a.error) for a in record.apps] == [("w\\xffeb", ("h\\xfe",), escaped)]
    assert [e.id.name for e in history.inventory_entries("t")] == ["/etc/\\xff"]
    (record.message + repr(record.apps)).encode("utf-8")  # printable anywhere


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(
    open_store: Open, raw_database: RawDatabase,
) -> None:
    history = open_store()
    deploy = history.start_deploy("abc", "cli")
    newer = store.schema.VERSION + 1
    with history.database.migration() as (cursor, _):
        history.database.set_version(cursor, newer)
    with history.database.transaction(write=True) as cursor:
        cursor.execute("UPDATE deploys SET pid=999999999 WHERE id=?", (deploy,))
    history.close()
    with pytest.raises(HistoryError) as raised:
        open_store()
    message = str(raised.value)
    assert f"history schema version {newer} is newer than this reconciler knows " \
           f"({store.schema.VERSION})" in message
    assert history.name in message
    # Nothing was written: the deploy left running was not even looked at.
    with raw_database() as db, db.transaction(write=False) as cursor:
        assert [dict(r) for r in cursor.execute("SELECT result FROM deploys WHERE id=?",
                                                (deploy,))] == [{"result": "running"}]


def test_replicas_that_start_together_on_postgresql_migrate_once(
    postgres_url: str, tmp_path: Path,
) -> None:
    settings = HistorySettings(url=postgres_url, password_file=tmp_path / "password")
    settings.password_file.write_text(PASSWORD + "\n")  # type: ignore[union-attr]
    opened: list[History] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(open_history(settings, tmp_path))
        except BaseException as err:  # reported below, on the test thread
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == [] and len(opened) == 4
        ids = {h.start_deploy("abc", "cli") for h in opened}
        assert len(ids) == 4
        assert len(opened[0].deploys()) == 4  # one shared history
    finally:
        for history in opened:
            history.close()
