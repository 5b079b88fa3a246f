"""DESIGN.md's fault invariants through Engine.sync: a bug in a backend, an interrupt,
a process that died mid-deploy. Real git, the VM backend on its local transport,
a real SQLite history; a wrapper around the real backend injects the fault."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from backends.base import Backend, BackendContext, Inventory, open_backend
from reconciler.engine import Engine, EngineSettings
from reconciler.events import Event, EventKind
from reconciler.history import History
from reconciler.model import LiveView, Resource, Target
from tests.engine.test_invariants_rollback import Repo, engine, repo  # noqa: F401

SECRET = "s3cr3t-value-never-shown"


class ReadLiveRaises:
    """The real backend, except that reading live state hits a bug that quotes a value."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.target = inner.target

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        raise KeyError(SECRET)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _broken(target: Target, context: BackendContext) -> Backend:
    return ReadLiveRaises(open_backend(target, context))  # type: ignore[return-value]


def test_a_bug_in_a_backend_ends_as_a_recorded_failure_without_its_text(
    tmp_path: Path, repo: Repo, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    sha = repo.commit({"web": "v1\n"})
    eng = Engine(EngineSettings(repo=str(repo.path), rev="main", data_dir=tmp_path / "d"),
                 opener=_broken)
    try:
        with caplog.at_level(logging.DEBUG):
            result = eng.sync()  # returns: the caller must be able to remember the failure
        assert (result.result, result.revision) == ("failure", sha)
        assert "KeyError" in result.message and SECRET not in result.message
        record = eng.history.deploy(result.deploy_id)
        assert record is not None and record.result == "failure"
        assert not any(SECRET in e.message for e in record.events)
        assert SECRET not in caplog.text
    finally:
        eng.close()


def test_an_interrupted_sync_is_recorded_as_interrupted(
    engine: Engine, repo: Repo  # noqa: F811
) -> None:
    repo.commit({"web": "v1\n"})

    def ctrl_c(event: Event) -> None:
        if event.kind is EventKind.WAVE_STARTED:
            raise KeyboardInterrupt

    engine.subscribe(ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        engine.sync()
    # Not "failure": a failed commit waits for a new one, an interrupted one is resumed.
    assert engine.history.deploys(1)[0].result == "interrupted"


def test_a_deploy_of_a_dead_process_is_marked_interrupted_by_the_next_deploy(
    tmp_path: Path,
) -> None:
    history = History(tmp_path)  # open for the whole life of a daemon, say
    try:
        dead = history.start_deploy("abc", "cli")
        with history.database.transaction(write=True) as db:
            db.execute("UPDATE deploys SET pid=999999999 WHERE id=?", (dead,))
        mine = history.start_deploy("def", "webhook")
        results = {d.id: d.result for d in history.deploys()}
        assert results == {dead: "interrupted", mine: "running"}
    finally:
        history.close()


def test_an_unchanged_app_left_unverified_gates_the_next_wave(
    engine: Engine, repo: Repo  # noqa: F811
) -> None:
    repo.commit({"web": "v1\n"})
    assert engine.sync().result == "success"
    # What a process killed after applying web, before its gate passed, leaves behind.
    keys = [(e.host, e.id) for e in engine.history.inventory_entries("laptop")]
    engine.history.mark_inventory("laptop", keys, "applied")
    repo.flag.write_text("")  # and web turned out unhealthy
    repo.commit({"web": "v1\n", "api": "a1\n"}, waves={"api": 1})
    result = engine.sync()
    assert result.result == "failure" and result.message.startswith("web: ")
    assert repo.served("api") is None  # wave 1 never started
    assert {e.state for e in engine.history.inventory_entries("laptop")} == {"applied"}
