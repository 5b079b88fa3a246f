"""A command that prints a secret value: `reconciler run` as a real process, over
a real git state repo, a VM target on the local transport, its own HTTP server.

The app holds a File marked `secret: true` and a Command that prints that file
among other output, then fails. Wherever that output leaves the process (the
commit statuses in the git note, the history's deploy row and events, the page,
the API, the log) the value must be masked (`***`), and a status keeps only
the last lines of the output.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.daemon.conftest import GIT_ENV, StateRepo, app_yaml, history_rows, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "Zq9-s3cret-value-e1c7"
COMMAND = ("echo 'starting migration' >&2; echo 'giving up' >&2; "
           "printf 'password=%s rejected\\n' \"$(cat $RECONCILER_ROOT/etc/web.secret)\" >&2; "
           "exit 3")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def everything_in(database: Path) -> str:
    """Every row of every table of the history, as text."""
    with closing(sqlite3.connect(database)) as db:
        return "\n".join(db.iterdump())


@pytest.fixture
def leaky(state_repo: StateRepo) -> str:
    state_repo.commit(
        "a migration that prints the password", content="version 2\n", app=app_yaml(),
        raw=("kind: File\npath: /etc/web.secret\nsecret: true\n"
             f"content: {json.dumps(SECRET + chr(10))}\n---\n"
             f"kind: Command\nname: migrate\nrun: {json.dumps(COMMAND)}\n"))
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=state_repo.path, env=GIT_ENV,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_command_output_with_a_secret_is_masked_wherever_it_leaves_the_process(
    state_repo: StateRepo, leaky: str, tmp_path: Path,
) -> None:
    data, log, port = tmp_path / "data", tmp_path / "daemon.log", free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(state_repo.path),
             "--data-dir", str(data), "--listen", f"127.0.0.1:{port}",
             "--poll-interval", "1h", "--drift-interval", "0", "--log-format", "plain"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=REPO_ROOT)
    try:
        wait_for(lambda: history_rows(data)[-1:] == [(leaky, "failure")], timeout=60)
        base = f"http://127.0.0.1:{port}"
        deploy = json.loads(read(f"{base}/api/v1/deploys"))["deploys"][0]["id"]
        page = read(f"{base}/deploys/{deploy}")
        api = read(f"{base}/api/v1/deploys/{deploy}")
        listing = read(f"{base}/api/v1/deploys") + read(f"{base}/") + read(f"{base}/api/v1/status")
        wait_for(lambda: "rollout finished" in log.read_text(), timeout=10)
        statuses = wait_for(lambda: _statuses(data, leaky), timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    history = everything_in(data / "history.sqlite3")
    logged = log.read_text()

    for where, text in {"history": history, "page": page, "api": api, "listing": listing,
                        "log": logged, "statuses": json.dumps(statuses)}.items():
        assert SECRET not in text, where
    # The output itself is there, masked: all of it in the history and on the page...
    assert "starting migration | giving up | password=*** rejected" in history
    assert "password=*** rejected" in page
    assert "password=*** rejected" in api
    assert "password=*** rejected" in logged
    # ...and only its last line in the failure status (git note).
    failure = [s["description"] for s in statuses if s["state"] == "failure"]
    assert len(failure) == 1, statuses
    assert "(exit 3): password=*** rejected)" in failure[0]
    assert "giving up" not in failure[0]


def _statuses(data: Path, sha: str) -> list[dict[str, str]]:
    mirrors = [p for p in (data / "mirrors").glob("*") if p.is_dir()]
    if len(mirrors) != 1:
        return []
    out = subprocess.run(["git", "--git-dir", str(mirrors[0]), "notes",
                          "--ref=reconciler", "show", sha], capture_output=True, text=True,
                         env=GIT_ENV)
    if out.returncode != 0:
        return []
    found: list[dict[str, str]] = json.loads(out.stdout)["statuses"]
    return found if any(s["state"] == "failure" for s in found) else []
