"""SIGTERM in the first second of `python -m reconciler run`, while the process is
still importing its modules and opening its history: a clean stop, status 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon.conftest import StateRepo
from tests.daemon.test_process import REPO_ROOT


def _messages(stderr: str) -> list[str]:
    return [json.loads(line)["message"] for line in stderr.splitlines()
            if line.startswith("{")]


@pytest.mark.parametrize("delay", [0.1, 0.15, 0.2, 0.3, 0.5])
def test_sigterm_during_start_stops_cleanly(
    state_repo: StateRepo, tmp_path: Path, delay: float
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(state_repo.path),
         "--data-dir", str(tmp_path / "data"), "--listen", "off", "--poll-interval", "1h",
         "--drift-interval", "0", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    messages = _messages(stderr)
    assert "signal received" in messages
    assert messages[-1] == "daemon stopped"


def test_a_second_sigterm_during_start_exits_at_once_with_status_1(
    state_repo: StateRepo, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(state_repo.path),
         "--data-dir", str(tmp_path / "data"), "--listen", "off", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    time.sleep(0.15)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr
