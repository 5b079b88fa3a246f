"""The README's main job, and where its commit statuses land: in the user's own clone.

`reconciler run --repo . --path desired-state-example --target laptop
--data-dir .reconciler --listen 127.0.0.1:PORT`, run in a copy of the project's
example (its demo port swapped for a free one), deploys the example; then
`git log --notes=reconciler -1` in that clone (not in the daemon's mirror)
shows the deploy's `success` status. The clone is non-bare with the branch
checked out, which libgit2 cannot push to.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import wait_for
from tests.daemon.test_process import REPO_ROOT
from tests.example.test_example_sync import PORT_IN_EXAMPLE, _free_port
from tests.support.gitrepo import git

EXAMPLE = REPO_ROOT / "desired-state-example"


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """A user's clone: the example under desired-state-example/, committed on main."""
    repo = tmp_path / "project"
    shutil.copytree(EXAMPLE, repo / "desired-state-example")
    port = str(_free_port())
    for path in (repo / "desired-state-example").rglob("*"):
        if path.is_file() and PORT_IN_EXAMPLE in path.read_text():
            path.write_text(path.read_text().replace(PORT_IN_EXAMPLE, port))
    (repo / ".gitignore").write_text(".reconciler/\n.demo-root/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the example")
    yield repo
    pidfile = repo / ".demo-root/var/run/demo-web/server.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def _latest(repo: Path) -> dict[str, Any] | None:
    """The newest reconciler/deploy status in the clone's own note of HEAD."""
    shown = git(repo, "log", "--notes=reconciler", "-1", "--format=%N")
    if not shown:
        return None
    statuses = [s for s in json.loads(shown)["statuses"]
                if s["context"] == "reconciler/deploy"]
    return statuses[-1] if statuses else None


def test_the_readme_main_job_writes_its_statuses_into_the_users_clone(clone: Path) -> None:
    web = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = (clone.parent / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", ".", "--path",
         "desired-state-example", "--target", "laptop", "--data-dir", ".reconciler",
         "--listen", f"127.0.0.1:{web}"],
        cwd=clone, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    try:
        def finished() -> dict[str, Any] | None:
            assert daemon.poll() is None, (clone.parent / "daemon.log").read_text()[-3000:]
            latest = _latest(clone)
            return latest if latest and latest["state"] != "pending" else None

        latest = wait_for(finished, timeout=120, step=0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(timeout=60)
    assert latest["state"] == "success", latest
    assert status == 0
    # `git log --notes=reconciler -1` as a user types it: the note is on HEAD.
    shown = git(clone, "log", "--notes=reconciler", "-1")
    assert '"state": "success"' in shown
    head = git(clone, "rev-parse", "HEAD")
    assert json.loads(git(clone, "notes", "--ref=reconciler", "show", head))["sha"] == head
    # The clone is untouched otherwise: its branch and work tree are as committed.
    assert git(clone, "status", "--porcelain") == ""
