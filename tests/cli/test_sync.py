"""`reconciler sync` as a user runs it: a real process, a real repo, a real fleet."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.history import History
from tests.engine import staterepo
from tests.engine.staterepo import StateRepo
from tests.support.sshd import SshFleet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_repo(tmp_path: Path, ssh_fleet_factory: Callable[..., SshFleet]) -> StateRepo:
    return staterepo.create(tmp_path, ssh_fleet_factory(5))


def _command(repo: StateRepo, data: Path) -> list[str]:
    return [sys.executable, "-m", "reconciler", "sync", "--repo", str(repo.path),
            "--rev", "main", "--data-dir", str(data), "--target", "fleet"]


def _sync(repo: StateRepo, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(repo, data), cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_sync_exits_0_then_1_with_a_rollback_on_a_failed_host(
    tmp_path: Path, state_repo: StateRepo
) -> None:
    data = tmp_path / "data"
    state_repo.release("v1")
    done = _sync(state_repo, data)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^synced [0-9a-f]{12}: 10 to create", done.stdout, re.M)
    assert "wave 1 success" in done.stdout  # not a TTY: plain progress lines
    untouched = {k: v for k, v in state_repo.snapshot().items() if state_repo.hosts[4] in k}

    (state_repo.root(3) / "broken").write_text("")
    bad = state_repo.release("v2", state_repo.broken_check())
    failed = _sync(state_repo, data)

    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith("reconciler sync: failed (rolled back): web: 1 host(s) failed")
    assert [state_repo.served(i) for i in range(1, 6)] == ["v1"] * 5
    assert {k: v for k, v in state_repo.snapshot().items()
            if state_repo.hosts[4] in k} == untouched
    history = History(data)
    try:
        last = history.deploys(1)[0]
        assert (last.revision, last.result, last.rolled_back) == (bad, "failure", True)
        assert state_repo.hosts[2] in last.message
    finally:
        history.close()


def test_an_invalid_repo_exits_2_with_file_and_line_and_applies_nothing(
    tmp_path: Path, state_repo: StateRepo
) -> None:
    state_repo.write("apps/web/app.yaml", "target: fleet\nwave: soon\ncolour: blue\n")
    state_repo.write("apps/web/site.yaml", "kind: File\npath: /x\ncontent: x\n")
    state_repo.commit("broken")
    result = _sync(state_repo, tmp_path / "data")
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("apps/")]
    assert problems and all(re.match(r"apps/web/app\.yaml:\d+: ", p) for p in problems)
    assert any(p.startswith("apps/web/app.yaml:2:") for p in problems)
    assert state_repo.snapshot() == {}


def test_a_sync_killed_mid_wave_converges_on_the_next_run(
    tmp_path: Path, state_repo: StateRepo
) -> None:
    data = tmp_path / "data"
    state_repo.release("v1", "sleep 0.3")
    process = subprocess.Popen(_command(state_repo, data), cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:  # kill once the first web batch is applied, mid-gate
        if "web@fleet" in line and "applied success" in line:
            break
        assert time.monotonic() < deadline
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()
    assert [state_repo.served(i) for i in range(1, 6)].count("v1") == 2

    again = _sync(state_repo, data)
    assert again.returncode == 0, again.stderr
    assert [state_repo.served(i) for i in range(1, 6)] == ["v1"] * 5
    # The two hosts applied before the kill had no changes left, but were
    # health-checked before wave 1 could finish.
    assert "applying (batch 1)" in again.stdout
    history = History(data)
    try:
        assert [d.result for d in history.deploys()] == ["success", "interrupted"]
        assert {e.state for e in history.inventory_entries("fleet")} == {"healthy"}
    finally:
        history.close()
