"""`reconciler run` logs: text lines on a terminal, JSON lines otherwise, or as forced.

The terminal is a real pseudo-terminal (`os.openpty`): the daemon process gets
it as stdin, stdout and stderr, exactly as in an interactive shell.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.daemon.logging import JsonFormatter, TextFormatter, fields
from tests.daemon.conftest import StateRepo

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT_LINE = re.compile(r"\d\d:\d\d:\d\d (info|warning|error|debug) +\S")


def _command(repo: StateRepo, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.path),
            "--data-dir", str(data), "--listen", "off", "--poll-interval", "1h",
            "--drift-interval", "0", *extra]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("NO_COLOR", None)
    return env


def _read_until(fd: int, done: bytes, timeout: float = 30.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while done not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: every holder of the terminal's other end is gone
                break
            if not chunk:
                break
            out += chunk
    return out


def _on_terminal(repo: StateRepo, data: Path, *extra: str) -> list[str]:
    """The lines a daemon writes to a terminal until its first deploy ends and it stops."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(_command(repo, data, *extra), stdin=slave, stdout=slave,
                                stderr=slave, env=_env(), cwd=REPO_ROOT, start_new_session=True)
    finally:
        os.close(slave)
    try:
        out = _read_until(master, b"rollout finished")
        proc.send_signal(signal.SIGTERM)
        out += _read_until(master, b"daemon stopped")
        assert proc.wait(timeout=30) == 0, out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return out.decode().replace("\r\n", "\n").splitlines()


def _piped(repo: StateRepo, data: Path, *extra: str) -> list[str]:
    proc = subprocess.Popen(_command(repo, data, *extra), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                            cwd=REPO_ROOT)
    try:
        assert proc.stderr is not None
        out = _read_until(proc.stderr.fileno(), b"rollout finished")
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return (out.decode() + rest.decode()).splitlines()


def test_on_a_terminal_run_prints_readable_lines(state_repo: StateRepo, tmp_path: Path) -> None:
    sha = subprocess.run(["git", "-C", str(state_repo.path), "rev-parse", "HEAD"],
                         capture_output=True, text=True, check=True).stdout.strip()
    lines = _on_terminal(state_repo, tmp_path / "data")
    assert lines and not any(line.lstrip().startswith("{") for line in lines), lines
    assert all(TEXT_LINE.match(line) for line in lines), lines
    started = next(line for line in lines if "rollout started" in line)
    assert started.endswith(f"rollout started  sha={sha[:12]} trigger=start targets=laptop")
    finished = next(line for line in lines if "rollout finished" in line)
    assert "result=success" in finished
    assert 'message="1 to create, 0 to change, 0 to delete"' in finished
    assert any(line.endswith("daemon stopped") for line in lines)


def test_without_a_terminal_run_prints_json_lines(state_repo: StateRepo, tmp_path: Path) -> None:
    lines = _piped(state_repo, tmp_path / "data")
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [r["message"] for r in records if r["message"].startswith("rollout")] == [
        "rollout started", "rollout finished"]
    assert len(next(r for r in records if r["message"] == "rollout started")["sha"]) == 40


def test_log_format_forces_json_on_a_terminal_and_text_without_one(
    state_repo: StateRepo, tmp_path: Path
) -> None:
    on_terminal = _on_terminal(state_repo, tmp_path / "a", "--log-format", "json")
    assert on_terminal and all(json.loads(line)["message"] for line in on_terminal)
    piped = _piped(state_repo, tmp_path / "b", "--log-format", "text")
    assert piped and all(TEXT_LINE.match(line) for line in piped), piped


@pytest.mark.parametrize("colour", [True, False])
def test_text_lines_colour_warnings_only_on_a_terminal(colour: bool) -> None:
    record = logging.LogRecord("reconciler.daemon", logging.WARNING, __file__, 1,
                               "drift detected", None, None)
    record.fields = fields(resources=["a", "b c"], sha="f" * 40, healed=False)["fields"]
    line = TextFormatter(colour=colour).format(record)
    assert line.endswith('drift detected  resources=a,"b c" sha=ffffffffffff healed=false')
    assert ("\033[33mwarning" in line) is colour
    assert json.loads(JsonFormatter().format(record))["sha"] == "f" * 40
