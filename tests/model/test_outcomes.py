"""The outcome vocabularies: their values are the history's, the API's and the events',
and a misspelt state is a type error."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from reconciler.history import HistorySettings, open_history
from reconciler.outcomes import (
    AppStatus,
    DeployResult,
    InventoryState,
    RollbackStatus,
    StepStatus,
)

ROOT = Path(__file__).resolve().parents[2]


def test_values_are_the_stored_strings() -> None:
    # The history schema, the JSON API and the status page read these strings.
    assert [m.value for m in DeployResult] == [
        "running", "success", "failure", "error", "interrupted"]
    assert [m.value for m in AppStatus] == [
        "success", "failure", "halted", "skipped", "interrupted"]
    assert [m.value for m in RollbackStatus] == [
        "success", "failure", "partial", "skipped", "interrupted"]
    assert [m.value for m in StepStatus] == ["running", "success", "failure"]
    assert [m.value for m in InventoryState] == ["intent", "deleting", "applied", "healthy"]


def test_members_serialise_as_their_values() -> None:
    assert json.dumps({"result": DeployResult.SUCCESS}) == '{"result": "success"}'
    assert f"{AppStatus.HALTED}" == "halted" and str(RollbackStatus.PARTIAL) == "partial"
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (DeployResult.INTERRUPTED,))
    assert db.execute("SELECT v, typeof(v) FROM t").fetchone() == ("interrupted", "text")


def test_a_deploy_ends_in_the_history_as_the_plain_string(tmp_path: Path) -> None:
    history = open_history(HistorySettings(), tmp_path)
    try:
        deploy = history.start_deploy("a" * 40, "cli")
        history.finish_deploy(deploy, DeployResult.FAILURE, "x", rolled_back=False, summary={})
        record = history.deploy(deploy)
        assert record is not None
        assert type(record.result) is str and record.result == "failure"
        assert record.result == DeployResult.FAILURE
    finally:
        history.close()


@pytest.mark.parametrize("snippet, complaint", [
    ('SyncResult(result="sucess", deploy_id=1, revision="a")', "SyncResult"),
    ("DeployResult.SUCESS", "SUCESS"),
    ('AppOutcome(app="a", target="t", wave=0, status="failed")', "AppOutcome"),
    ('RollbackOutcome(app="a", status="partal")', "RollbackOutcome"),
    ('Event(kind=EventKind.APP_DONE, deploy_id=1, revision="a", status="sucess")', "Event"),
])
def test_mypy_refuses_a_misspelt_state(tmp_path: Path, snippet: str, complaint: str) -> None:
    source = tmp_path / "misspelt.py"
    source.write_text(textwrap.dedent(f"""\
        from reconciler.engine import SyncResult
        from reconciler.events import Event, EventKind
        from reconciler.outcomes import DeployResult
        from reconciler.rollout.rollback import RollbackOutcome
        from reconciler.rollout.runner import AppOutcome

        _ = (SyncResult, Event, EventKind, DeployResult, RollbackOutcome, AppOutcome)
        {snippet}
        """))
    out, _, status = mypy_api.run([
        "--strict", "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(ROOT / ".mypy_cache"), str(source)])
    errors = [line for line in out.splitlines() if "misspelt.py" in line and "error" in line]
    assert status == 1 and len(errors) == 1, out
    assert complaint in errors[0] or "incompatible type" in errors[0], out
    assert ":8:" in errors[0], out  # the snippet's own line, nothing else
