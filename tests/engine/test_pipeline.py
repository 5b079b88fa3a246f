"""The engine's pipeline, stage by stage: load -> select -> open -> read live -> plan,
on a real git state repo and the vm target over a real sshd fleet."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from backends.base import (
    ApplyResult,
    Backend,
    BackendContext,
    HealthReport,
    Inventory,
    open_backend,
)
from reconciler import plan as planner
from reconciler import pulls
from reconciler.engine import Engine, EngineSettings
from reconciler.errors import ConfigError, ValidationError
from reconciler.model import App, Change, LiveView, Resource, Target
from reconciler.outcomes import DeployResult
from reconciler.rollout.runner import RolloutOptions
from tests.engine.staterepo import StateRepo


class Watched:
    """The real backend of a target, counting what the pipeline calls on it."""

    def __init__(self, inner: Backend, log: list[str]) -> None:
        self.inner, self.log, self.target = inner, log, inner.target

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        self.log.append(f"read {self.target.name}")
        return self.inner.read_live(resources, inventory)

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        self.log.append(f"apply {app.name}")
        return self.inner.apply(app, changes)

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        return self.inner.health(app, hosts)

    def close(self) -> None:
        self.log.append(f"close {self.target.name}")
        self.inner.close()


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def watched(tmp_path: Path, state_repo: StateRepo, calls: list[str]) -> Iterator[Engine]:
    def opener(target: Target, context: BackendContext) -> Backend:
        calls.append(f"open {target.name}")
        return Watched(open_backend(target, context), calls)

    settings = EngineSettings(repo=str(state_repo.path), rev="main",
                              data_dir=tmp_path / "data", targets=("fleet",))
    engine = Engine(settings, opener=opener, rollout_options=RolloutOptions(max_workers=2))
    yield engine
    engine.close()


def _lock_is_free(engine: Engine, target: str) -> bool:
    folder = engine.settings.data_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{target}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_select_loads_the_commit_and_names_the_selected_targets(
    watched: Engine, state_repo: StateRepo, calls: list[str]
) -> None:
    sha = state_repo.release("v1")
    watched.resolve()
    selection = watched.select(sha)
    assert selection.desired.revision == sha
    assert selection.targets == ("fleet",)  # the repo also defines prod: not selected
    assert set(selection.desired.targets) == {"fleet", "prod"}
    assert calls == []  # load and select open no backend


def test_select_refuses_an_invalid_commit_and_an_unknown_target(
    tmp_path: Path, watched: Engine, state_repo: StateRepo
) -> None:
    state_repo.write("apps/web/app.yaml", "target: nowhere\n")
    bad = state_repo.commit("an app on an unknown target")
    watched.resolve()
    with pytest.raises(ValidationError, match="nowhere"):
        watched.select(bad)

    good = state_repo.release("v1")
    other = Engine(EngineSettings(repo=str(state_repo.path), rev="main",
                                  data_dir=tmp_path / "other", targets=("staging",)))
    try:
        other.resolve()
        with pytest.raises(ConfigError, match="unknown target staging"):
            other.select(good)
    finally:
        other.close()


def test_planned_opens_reads_and_plans_then_closes_and_applies_nothing(
    watched: Engine, state_repo: StateRepo, calls: list[str]
) -> None:
    sha = state_repo.release("v1")
    watched.resolve()
    before = state_repo.snapshot()
    with watched.planned(sha) as found:
        assert calls == ["open fleet", "read fleet"]
        assert found.desired.revision == sha and found.selection.targets == ("fleet",)
        assert set(found.backends) == set(found.views) == {"fleet"}
        assert len(found.views["fleet"].hosts) == len(state_repo.hosts) == 5
        assert found.plan.revision == sha
        # Five hosts get web's page, and config's file: a plan of creates only.
        assert planner.summary_line(found.plan).startswith("10 to create")
        assert _lock_is_free(watched, "fleet")  # a plan never waits for a rollout
    assert calls == ["open fleet", "read fleet", "close fleet"]
    assert state_repo.snapshot() == before


def test_plan_sync_and_pull_request_plans_share_the_stages(
    watched: Engine, state_repo: StateRepo, calls: list[str]
) -> None:
    sha = state_repo.release("v1")
    planned = watched.plan()
    assert calls == ["open fleet", "read fleet", "close fleet"]
    assert pulls.plan_commit(watched, sha) == planned

    calls.clear()
    result = watched.sync()
    assert result.result is DeployResult.SUCCESS and result.plan == planned
    assert calls[:2] == ["open fleet", "read fleet"] and calls[-1] == "close fleet"
    assert "apply web" in calls and "apply config" in calls

    calls.clear()
    assert watched.plan(sha, fetch=False).empty
    assert calls == ["open fleet", "read fleet", "close fleet"]


def test_a_locked_pipeline_holds_the_target_lock_for_its_block(
    watched: Engine, state_repo: StateRepo
) -> None:
    sha = state_repo.release("v1")
    watched.resolve()
    with watched.planned(sha, locked=True) as found:
        assert not found.plan.empty
        assert not _lock_is_free(watched, "fleet")
    assert _lock_is_free(watched, "fleet")
