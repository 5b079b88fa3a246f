"""End-to-end fixtures: a real git state repo and a real sshd fleet of five hosts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.rollout.runner import RolloutOptions
from tests.engine import staterepo
from tests.support.sshd import SshFleet


@pytest.fixture
def state_repo(
    tmp_path: Path, ssh_fleet_factory: Callable[..., SshFleet]
) -> staterepo.StateRepo:
    return staterepo.create(tmp_path, ssh_fleet_factory(5))


@pytest.fixture
def engine(tmp_path: Path, state_repo: staterepo.StateRepo) -> Iterator[Engine]:
    settings = EngineSettings(repo=str(state_repo.path), rev="main",
                              data_dir=tmp_path / "data", targets=("fleet",))
    eng = Engine(settings, rollout_options=RolloutOptions(max_workers=2))
    yield eng
    eng.close()
