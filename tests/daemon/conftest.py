"""Real parts for daemon tests: a state repository made with the git CLI, a VM
target on the local transport rooted in tmp, and daemons that are always stopped."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.service import Daemon

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "HOME": "/nonexistent", "PATH": "/usr/bin:/bin:/usr/local/bin"}


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def app_yaml(health: str = "test -f $RECONCILER_ROOT/etc/web.conf", timeout: str = "10s") -> str:
    return (f"target: laptop\nhealth:\n  - command: {json.dumps(health)}\n"
            f"    timeout: {timeout}\n    retries: 0\n    interval: 0.1s\n")


@dataclass(kw_only=True)
class StateRepo:
    path: Path
    root: Path
    windows: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def reconciler_yaml(self) -> str:
        return ("apiVersion: reconciler/v1\ntargets:\n"
                f"  laptop: {{backend: vm, transport: local, root: {self.root}}}\n"
                + self.windows)

    def commit(self, message: str, **changes: str) -> str:
        """Rewrite the state files and commit; returns the sha. `content` is the
        managed file's content, `app` the app.yaml, `windows` a sync_windows
        block for reconciler.yaml, `raw` an extra resource file."""
        if "windows" in changes:
            self.windows = changes["windows"]
        files = {"reconciler.yaml": self.reconciler_yaml()}
        if "content" in changes:
            files["apps/web/files.yaml"] = ("kind: File\npath: /etc/web.conf\n"
                                            f"content: {json.dumps(changes['content'])}\n")
        if "app" in changes:
            files["apps/web/app.yaml"] = changes["app"]
        if "raw" in changes:
            files["apps/web/extra.yaml"] = changes["raw"]
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def web_conf(self) -> str | None:
        conf = self.root / "etc/web.conf"
        return conf.read_text() if conf.exists() else None


@pytest.fixture
def state_repo(tmp_path: Path) -> StateRepo:
    path = tmp_path / "state"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = StateRepo(path=path, root=tmp_path / "root")
    repo.commit("first", content="version 1\n", app=app_yaml())
    return repo


def config_for(repo: StateRepo, data_dir: Path, **overrides: Any) -> DaemonConfig:
    base = DaemonConfig(repo=f"file://{repo.path}", data_dir=data_dir, listen=None,
                        poll_interval=3600.0, drift_interval=0.0, log_format="plain")
    return replace(base, **overrides)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(repo: StateRepo, **overrides: Any) -> Daemon:
        config = config_for(repo, tmp_path / "data", **overrides)
        daemon = Daemon(config, tmp_path / "data")
        daemon.start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop(timeout=30)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


def notes(daemon: Daemon, sha: str) -> list[Mapping[str, Any]]:
    """The statuses in the commit's git note, read with the git CLI from the mirror."""
    out = subprocess.run(
        ["git", "--git-dir", str(daemon.engine.mirror.path), "notes", "--ref=reconciler",
         "show", sha], capture_output=True, text=True, env=GIT_ENV)
    if out.returncode != 0:
        return []
    statuses: list[Mapping[str, Any]] = json.loads(out.stdout)["statuses"]
    return statuses


def states(daemon: Daemon, sha: str) -> list[str]:
    return [s["state"] for s in notes(daemon, sha)]


def deploys(daemon: Daemon) -> list[tuple[str, str]]:
    """(revision, result) of every deploy, oldest first."""
    return [(d.revision, d.result) for d in reversed(daemon.history.deploys(limit=100))]


def history_rows(data_dir: Path) -> list[tuple[str, str]]:
    """(revision, result) of every deploy in a daemon process's own history, read
    with sqlite3 while the process runs."""
    path = data_dir / "history.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        try:
            found = db.execute("SELECT revision, result FROM deploys ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the daemon is still creating the schema
            return []
    return [(str(r[0]), str(r[1])) for r in found]
