"""DESIGN.md's rollback invariants through Engine.sync: a real git repo, the VM backend
on its local transport rooted in tmp, and a real SQLite history.

The app's health check is a command that fails while a file named `broken`
exists next to the root, so a test breaks and heals the app at will.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.events import Event, EventKind
from reconciler.rollout.runner import RolloutOptions


@dataclass
class Repo:
    path: Path
    root: Path
    flag: Path

    def commit(self, apps: dict[str, str], waves: dict[str, int] | None = None) -> str:
        """`apps`: name -> the content of its one file /srv/<name>.txt."""
        files = {"reconciler.yaml": ("apiVersion: reconciler/v1\ntargets:\n"
                                     f"  laptop: {{backend: vm, transport: local, "
                                     f"root: {self.root}}}\n")}
        check = json.dumps(f"test ! -e {self.flag}")
        for name, content in apps.items():
            files[f"apps/{name}/app.yaml"] = (
                f"target: laptop\nwave: {(waves or {}).get(name, 0)}\n"
                f"health:\n  - command: {check}\n"
                "    timeout: 2s\n    retries: 0\n    interval: 0.05s\n")
            files[f"apps/{name}/file.yaml"] = (f"kind: File\npath: /srv/{name}.txt\n"
                                               f"content: {json.dumps(content)}\n")
        for old in self.path.glob("apps/*/*.yaml"):
            old.unlink()
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "--allow-empty", "-m", "change")
        return _git(self.path, "rev-parse", "HEAD").strip()

    def served(self, name: str) -> str | None:
        path = self.root / f"srv/{name}.txt"
        return path.read_text() if path.exists() else None


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "state"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (tmp_path / "root").mkdir()
    return Repo(path=path, root=tmp_path / "root", flag=tmp_path / "broken")


@pytest.fixture
def engine(tmp_path: Path, repo: Repo) -> Iterator[Engine]:
    eng = Engine(EngineSettings(repo=str(repo.path), rev="main", data_dir=tmp_path / "data"),
                 rollout_options=RolloutOptions(max_workers=2))
    yield eng
    eng.close()


def test_a_rollback_that_fails_again_is_reported_as_such_and_not_retried(
    engine: Engine, repo: Repo
) -> None:
    repo.commit({"web": "v1\n"})
    assert engine.sync().result == "success"
    repo.flag.write_text("")  # from now on every health check fails, v1's too
    repo.commit({"web": "v2\n"})
    events: list[Event] = []
    engine.subscribe(events.append)
    result = engine.sync()
    assert result.result == "failure"
    assert result.rollback_failed and not result.rolled_back
    assert "; rollback failed: web: failure" in result.message
    assert [e.kind for e in events].count(EventKind.ROLLBACK_STARTED) == 1
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and not record.rolled_back
    assert "rollback failed" in record.message
    assert engine.history.last_good("web") != result.revision


def test_a_failed_new_app_is_removed_and_an_older_app_keeps_running(
    engine: Engine, repo: Repo
) -> None:
    repo.commit({"api": "a1\n"})
    assert engine.sync().result == "success"
    repo.flag.write_text("")
    repo.commit({"api": "a1\n", "web": "w1\n"})
    result = engine.sync()
    assert result.result == "failure" and result.rolled_back and not result.rollback_failed
    assert repo.served("web") is None
    assert repo.served("api") == "a1\n"
    assert {e.app for e in engine.history.inventory_entries("laptop")} == {"api"}


def test_reconciler_sync_exits_1_and_says_the_rollback_failed(tmp_path: Path, repo: Repo) -> None:
    import os
    import sys

    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "reconciler", "sync", "--repo", str(repo.path),
               "--rev", "main", "--data-dir", str(tmp_path / "cli-data")]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(root)})

    repo.commit({"web": "v1\n"})
    done = run()
    assert done.returncode == 0, done.stderr
    repo.flag.write_text("")
    repo.commit({"web": "v2\n"})
    failed = run()
    assert failed.returncode == 1
    assert failed.stderr.startswith("reconciler sync: failed (rollback failed): web: ")
    assert "rolled back)" not in failed.stderr
