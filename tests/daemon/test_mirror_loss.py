"""The mirror deleted or damaged under a running `python -m reconciler run`.

The daemon must notice (`/readyz` answers 503 and says why), clone the mirror
again without a restart, be ready once that fetch succeeded, and deploy the
next commit. The statuses of earlier commits survive: the built-in gitnotes
reporter pushed them into the (local) state repository, and the new clone
brings them back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.service import wait_idle
from tests.daemon.conftest import GIT_ENV, StateRepo, history_rows, wait_for
from tests.daemon.test_process import REPO_ROOT
from tests.source.servers import free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _note(mirror: Path, sha: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(mirror), "notes", "--ref=reconciler", "show",
                          sha], capture_output=True, text=True, env=GIT_ENV)
    if out.returncode != 0:
        return []
    return [s["state"] for s in json.loads(out.stdout)["statuses"]]


def _delete(mirror: Path) -> None:
    shutil.rmtree(mirror)


def _lose_objects(mirror: Path) -> None:
    shutil.rmtree(mirror / "objects")
    (mirror / "objects").mkdir()


@pytest.mark.parametrize(("damage", "said"), [
    # The first check already asks for the fetch that clones again: a later one
    # in the same request may see the new clone half made.
    (_delete, "not ready: mirror lost (the mirror "),
    (_lose_objects, "not ready: mirror lost (refs/heads/main names "),
], ids=["deleted", "objects-lost"])
def test_a_lost_mirror_is_cloned_again_and_the_next_commit_deploys(
    state_repo: StateRepo, tmp_path: Path, damage: Callable[[Path], None], said: str
) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(state_repo.path),
         "--data-dir", str(data), "--listen", f"127.0.0.1:{port}", "--poll-interval", "1h",
         "--drift-interval", "0", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=REPO_ROOT)
    log.close()
    readyz = f"http://127.0.0.1:{port}/readyz"
    try:
        sha1 = subprocess.run(["git", "rev-parse", "HEAD"], cwd=state_repo.path, env=GIT_ENV,
                              capture_output=True, text=True, check=True).stdout.strip()
        wait_for(lambda: history_rows(data) == [(sha1, "success")], timeout=60)
        (mirror,) = (p for p in (data / "mirrors").iterdir() if p.is_dir())
        wait_for(lambda: _note(mirror, sha1)[-1:] == ["success"], timeout=10)
        assert _get(readyz) == (200, "ready\n")

        damage(mirror)
        status, body = _get(readyz)
        assert status == 503, body
        assert body.startswith(said), body

        # Asking was enough: the daemon fetches at once, cloning the mirror again.
        wait_for(lambda: _get(readyz) == (200, "ready\n"), timeout=30, step=0.05)
        assert _note(mirror, sha1)[-1:] == ["success"]  # the status came back with the clone

        sha2 = state_repo.commit("second", content="version 2\n")
        wait_for(lambda: history_rows(data)[-1:] == [(sha2, "success")], timeout=60)
        assert state_repo.web_conf() == "version 2\n"
        wait_for(lambda: _note(mirror, sha2)[-1:] == ["success"], timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    logged = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()
              if line.startswith("{")]
    assert any(e["message"].startswith(f"mirror {mirror} is unusable (") for e in logged)


def test_readyz_says_why_while_no_fetch_has_succeeded(
    state_repo: StateRepo, tmp_path: Path, daemon_factory: Callable[..., Any]
) -> None:
    moved = tmp_path / "moved-away"
    state_repo.path.rename(moved)
    daemon = daemon_factory(state_repo, listen="127.0.0.1:0", watch=False)
    assert wait_idle(daemon, 30)
    readyz = f"{daemon.web_url}/readyz"
    status, body = _get(readyz)
    assert status == 503
    assert body.startswith(f"not ready: starting: no fetch has succeeded yet (cannot fetch "
                           f"from {state_repo.path}: "), body

    moved.rename(state_repo.path)
    daemon.trigger("poll")
    wait_for(lambda: _get(readyz) == (200, "ready\n"), timeout=30)
