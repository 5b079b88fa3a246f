"""SIGTERM in the first second of `python -m reconciler run`, while the process is
still importing its modules and opening its history: a clean stop, status 0.

The timings count from the moment the process has a SIGTERM handler (read from
/proc), which the first test shows is before the daemon's modules (pygit2
among them) are loaded: a fixed delay after the exec would, on a loaded
machine, land while the interpreter itself starts, before any line of the
project can run."""

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


def _start(repo: StateRepo, data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.path),
         "--data-dir", str(data), "--listen", "off", "--poll-interval", "1h",
         "--drift-interval", "0", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (the SigCgt mask of /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


def _handler_installed(proc: subprocess.Popen[str]) -> bool:
    """Wait for the SIGTERM handler; whether pygit2 (imported with the daemon's
    modules) was already loaded at that moment."""
    deadline = time.monotonic() + 30
    while not _catches_sigterm(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    return "_pygit2" in Path(f"/proc/{proc.pid}/maps").read_text()


def _stopped_cleanly(proc: subprocess.Popen[str]) -> None:
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    messages = _messages(stderr)
    assert "signal received" in messages
    assert messages[-1] == "daemon stopped"


def test_the_handlers_are_installed_before_the_heavy_imports(
    state_repo: StateRepo, tmp_path: Path
) -> None:
    proc = _start(state_repo, tmp_path / "data")
    loaded = _handler_installed(proc)
    proc.send_signal(signal.SIGTERM)
    _stopped_cleanly(proc)
    assert not loaded, "SIGTERM was left to its default action while the daemon imported"


@pytest.mark.parametrize("after", [0.0, 0.05, 0.1, 0.2, 0.3])
def test_sigterm_soon_after_the_start_stops_cleanly(
    state_repo: StateRepo, tmp_path: Path, after: float
) -> None:
    """SIGTERM `after` seconds past the moment the handler exists: during the
    imports, the history's opening or the first fetch, depending on the timing."""
    proc = _start(state_repo, tmp_path / "data")
    _handler_installed(proc)
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    _stopped_cleanly(proc)


@pytest.mark.parametrize("delay", [0.3, 0.5])
def test_sigterm_at_a_fixed_time_after_the_exec_stops_cleanly(
    state_repo: StateRepo, tmp_path: Path, delay: float
) -> None:
    proc = _start(state_repo, tmp_path / "data")
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _stopped_cleanly(proc)


def test_a_second_sigterm_during_start_exits_at_once_with_status_1(
    state_repo: StateRepo, tmp_path: Path
) -> None:
    proc = _start(state_repo, tmp_path / "data")
    _handler_installed(proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)  # signals of one kind that are pending at once merge into one
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr
