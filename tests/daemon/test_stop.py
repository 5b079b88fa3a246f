"""A clean stop of `python -m reconciler run` on SIGTERM, as a real process.

The daemon deploys to a VM target on the local transport. The release under
test has two waves: `web` (ten large files, then a health gate that waits for
a marker file for up to two minutes) and `api` (one file). SIGTERM lands while
`web`'s batch is applied or gated: the daemon must exit 0 within seconds,
record the deploy `interrupted` (status `pending`), leave every managed file
with either its old or its new content, start no later wave, and finish the
deploy when it starts again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import GIT_ENV, StateRepo, git, wait_for
from tests.daemon.conftest import history_rows as rows
from tests.daemon.test_process import REPO_ROOT

PAGES = 10
PAGE_SIZE = 256 * 1024  # big enough that writing them takes a while


def page(version: str, index: int) -> str:
    line = f"{version} page {index}\n"
    return line * (PAGE_SIZE // len(line))


def release(repo: StateRepo, version: str, health: str, timeout: str = "120s") -> str:
    """Commit `web` (wave 0, ten pages) and `api` (wave 1) at `version`."""
    files = {
        "reconciler.yaml": repo.reconciler_yaml(),
        # retries: a failing probe keeps the gate waiting (up to `timeout`), as a
        # service that takes long to start would.
        "apps/web/app.yaml": (f"target: laptop\nwave: 0\ntimeout: {timeout}\nhealth:\n"
                              f"  - command: {json.dumps(health)}\n"
                              "    retries: 100000\n    interval: 0.1s\n"),
        **{f"apps/web/page-{i}.yaml": (f"kind: File\npath: /srv/web/page-{i}.txt\n"
                                        f"content: {json.dumps(page(version, i))}\n")
           for i in range(PAGES)},
        "apps/api/app.yaml": "target: laptop\nwave: 1\n",
        "apps/api/files.yaml": ("kind: File\npath: /srv/api/api.conf\n"
                                f"content: {json.dumps(f'api {version}')}\n"),
    }
    for name, text in files.items():
        path = repo.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo.path, "rm", "-q", "--ignore-unmatch", "apps/web/files.yaml")
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-q", "-m", f"release {version}")
    return git(repo.path, "rev-parse", "HEAD")


def managed(repo: StateRepo) -> dict[str, str]:
    """Relative path -> content of every managed file under the VM root."""
    found = {f"srv/web/page-{i}.txt": repo.root / f"srv/web/page-{i}.txt" for i in range(PAGES)}
    found["srv/api/api.conf"] = repo.root / "srv/api/api.conf"
    return {name: path.read_text() if path.exists() else "" for name, path in found.items()}


def expected(version: str) -> dict[str, str]:
    out = {f"srv/web/page-{i}.txt": page(version, i) for i in range(PAGES)}
    out["srv/api/api.conf"] = f"api {version}"
    return out


class Daemon:
    """One `python -m reconciler run` process, its JSON log in a file."""

    def __init__(self, repo: StateRepo, data_dir: Path, log: Path, *extra: str) -> None:
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.path),
                 "--data-dir", str(data_dir), "--listen", "off", "--poll-interval", "1h",
                 "--drift-interval", "0", "--log-format", "json", *extra],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=REPO_ROOT)

    def messages(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line)["message"] for line in lines if line.startswith("{")]

    def terminate(self, within: float) -> tuple[int, float]:
        """SIGTERM; the exit status and how long the process took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=within)
        return status, time.monotonic() - started


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


def events(data_dir: Path, revision: str) -> list[str]:
    if not (data_dir / "history.sqlite3").exists():
        return []
    with closing(sqlite3.connect(data_dir / "history.sqlite3")) as db:
        try:
            found = db.execute("SELECT kind FROM events WHERE revision=? ORDER BY id",
                               (revision,)).fetchall()
        except sqlite3.OperationalError:
            return []
    return [r[0] for r in found]


def statuses(data_dir: Path, sha: str) -> list[dict[str, Any]]:
    """The commit's statuses from the gitnotes reporter's note in the daemon's mirror."""
    (mirror,) = (p for p in (data_dir / "mirrors").iterdir() if p.is_dir())
    out = subprocess.run(["git", "--git-dir", str(mirror), "notes", "--ref=reconciler",
                          "show", sha], capture_output=True, text=True, env=GIT_ENV)
    if out.returncode != 0:
        return []
    found: list[dict[str, Any]] = json.loads(out.stdout)["statuses"]
    return found


@pytest.mark.slow
def test_sigterm_mid_rollout_stops_after_the_batch_and_a_restart_finishes_the_deploy(
    state_repo: StateRepo, tmp_path: Path, daemons: list[Daemon]
) -> None:
    data = tmp_path / "data"
    v1 = release(state_repo, "v1", "true")
    first = Daemon(state_repo, data, tmp_path / "first.log")
    daemons.append(first)
    wait_for(lambda: rows(data) == [(v1, "success")], timeout=30)
    assert first.terminate(within=30)[0] == 0
    assert managed(state_repo) == expected("v1")

    ready = tmp_path / "ready"
    v2 = release(state_repo, "v2", f"test -e {ready}")
    second = Daemon(state_repo, data, tmp_path / "second.log")
    daemons.append(second)
    # As early as the batch starts: SIGTERM may land during its writes or its gate.
    wait_for(lambda: "batch_started" in events(data, v2), timeout=30, step=0.005)
    status, took = second.terminate(within=60)

    # The gate alone would wait 120 s for the marker.
    assert (status, took < 20) == (0, True), (status, took)
    assert rows(data) == [(v1, "success"), (v2, "interrupted")]
    files = managed(state_repo)
    old, new = expected("v1"), expected("v2")
    half = [name for name, text in files.items() if text not in (old[name], new[name])]
    assert half == [], f"half-written or missing: {half}"
    assert files["srv/api/api.conf"] == old["srv/api/api.conf"]  # wave 1 never started
    assert "wave_started" in events(data, v2) and events(data, v2).count("wave_started") == 1
    last = statuses(data, v2)[-1]
    assert (last["state"], last["description"]) == (
        "pending", "interrupted by shutdown; resumes on restart")

    ready.write_text("")
    third = Daemon(state_repo, data, tmp_path / "third.log")
    daemons.append(third)
    wait_for(lambda: rows(data)[-1:] == [(v2, "success")], timeout=60)
    assert rows(data) == [(v1, "success"), (v2, "interrupted"), (v2, "success")]
    assert managed(state_repo) == expected("v2")
    assert statuses(data, v2)[-1]["state"] == "success"
    assert third.terminate(within=30)[0] == 0


@pytest.mark.slow
def test_a_probe_that_outlasts_stop_timeout_ends_the_process_with_status_1(
    state_repo: StateRepo, tmp_path: Path, daemons: list[Daemon]
) -> None:
    data = tmp_path / "data"
    config = tmp_path / "daemon.yaml"
    config.write_text(f"repo: {state_repo.path}\nstop_timeout: 1s\n")
    # One probe that takes 40 s: a stop cannot cut a probe (or an apply) short.
    sha = release(state_repo, "v1", "sleep 40")
    daemon = Daemon(state_repo, data, tmp_path / "daemon.log", "--config", str(config))
    daemons.append(daemon)
    wait_for(lambda: "batch_applied" in events(data, sha), timeout=30)
    status, took = daemon.terminate(within=30)

    assert (status, took < 20) == (1, True), (status, took)
    assert ("the running job did not stop in time: exiting; "
            "the next start re-plans from live state") in daemon.messages()
    assert managed(state_repo)["srv/web/page-0.txt"] == page("v1", 0)
    # The deploy still says running; the next start marks it interrupted.
    assert rows(data) == [(sha, "running")]
