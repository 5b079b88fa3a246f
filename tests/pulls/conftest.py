"""Fixtures for pull-request plans: a local-transport state repo, an engine, a forge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.reporters import github, http
from tests.pulls import staterepo
from tests.support.httpservers import Forge, forge

__all__ = ["forge"]

TOKEN = "ghp_pull-request-token"


@pytest.fixture
def state_repo(tmp_path: Path) -> staterepo.LocalStateRepo:
    return staterepo.create(tmp_path)


@pytest.fixture
def engine(tmp_path: Path, state_repo: staterepo.LocalStateRepo) -> Iterator[Engine]:
    settings = EngineSettings(repo=str(state_repo.path), rev="main", data_dir=tmp_path / "data")
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture
def github_reporter(forge: Forge) -> github.GitHubReporter:
    client = http.Client(policy=http.RetryPolicy(attempts=2, base_delay=0.01, timeout=5))
    return github.GitHubReporter(api_url=forge.url, repo="org/state", token=TOKEN, client=client)
