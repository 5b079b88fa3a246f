"""`python -m reconciler run` as a real process: a second signal mid-rollout, then a
restart; start failures. The clean stop on SIGTERM is in test_stop.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.daemon.conftest import StateRepo, app_yaml, history_rows, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


class Run:
    """One daemon process whose JSON log lines are collected from stderr."""

    def __init__(self, repo: StateRepo, data_dir: Path, log: Path) -> None:
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with log.open("w") as stderr:
            self.proc = self._start(repo, data_dir, stderr, env)

    @staticmethod
    def _start(repo: StateRepo, data_dir: Path, stderr: IO[str],
               env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.path),
             "--data-dir", str(data_dir), "--listen", "off", "--poll-interval", "1h",
             "--drift-interval", "0", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=REPO_ROOT)

    def messages(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line)["message"] for line in lines if line.startswith("{")]

    def stop(self, signals: int = 1) -> int:
        for _ in range(signals):
            self.proc.send_signal(signal.SIGTERM)
            # Pending signals of one kind merge: let the handler see each one.
            wait_for(lambda: "signal received" in self.messages(), timeout=5)
        return self.proc.wait(timeout=30)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


@pytest.mark.slow
def test_a_second_signal_exits_at_once_and_the_restart_re_plans_from_live_state(
    state_repo: StateRepo, tmp_path: Path, runs: list[Run]
) -> None:
    sha = state_repo.commit("slow", content="version 2\n", app=app_yaml("sleep 3"))
    data = tmp_path / "data"
    first = Run(state_repo, data, tmp_path / "first.log")
    runs.append(first)
    wait_for(lambda: history_rows(data) == [(sha, "running")], timeout=20)
    assert first.stop(signals=2) == 1

    again = Run(state_repo, data, tmp_path / "again.log")
    runs.append(again)
    wait_for(lambda: history_rows(data)[-1:] == [(sha, "success")], timeout=30)
    assert history_rows(data) == [(sha, "interrupted"), (sha, "success")]
    assert state_repo.web_conf() == "version 2\n"
    assert again.stop() == 0


def _run_once(repo: StateRepo, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.path),
         "--poll-interval", "1h", "--drift-interval", "0", "--log-format", "json", *args],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)


def test_a_listen_address_in_use_ends_the_start_with_one_line_before_any_deploy(
    state_repo: StateRepo, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_once(state_repo, "--data-dir", str(tmp_path / "data"),
                         "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"reconciler run: cannot listen on 127.0.0.1:{port}: " in done.stderr
    assert history_rows(tmp_path / "data") == []
    assert state_repo.web_conf() is None


def test_an_unusable_data_directory_is_one_line_and_status_1(
    state_repo: StateRepo, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    done = _run_once(state_repo, "--data-dir", str(blocker / "data"), "--listen", "off")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"reconciler run: cannot use data directory {blocker / 'data'}: ")
