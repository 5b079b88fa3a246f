"""A history write that fails must still end the deploy: a folder name that is
not UTF-8 (made with the real git CLI) and a full disk under SQLite (a real
tmpfs) once left a deploy `running` for good and its commit without a status."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.daemon.service import Daemon, wait_idle
from tests.daemon.conftest import StateRepo, deploys, git, notes, wait_for

Factory = Callable[..., Daemon]


def get(daemon: Daemon, path: str) -> str:
    with urllib.request.urlopen(f"{daemon.web_url}{path}", timeout=30) as answer:
        body: bytes = answer.read()
    return body.decode("utf-8")


def commit_bad_folder(repo: StateRepo) -> str:
    """apps/w<0xff>eb/app.yaml: a tree entry name with a byte that is not UTF-8."""
    folder = repo.path / os.fsdecode(b"apps/w\xffeb")
    folder.mkdir(parents=True)
    (folder / "app.yaml").write_text("target: laptop\n")
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-q", "-m", "an app folder whose name is not UTF-8")
    return git(repo.path, "rev-parse", "HEAD")


def test_a_folder_name_that_is_not_utf8_gets_an_error_status_and_a_closed_deploy(
    state_repo: StateRepo, daemon_factory: Factory,
) -> None:
    daemon = daemon_factory(state_repo, listen="127.0.0.1:0")
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    sha = commit_bad_folder(state_repo)
    daemon.trigger("poll")
    wait_for(lambda: any(s["state"] == "error" for s in notes(daemon, sha)), timeout=20)
    assert wait_idle(daemon, 10)

    [status] = [s for s in notes(daemon, sha) if s["state"] == "error"]
    assert "apps/w\\xffeb/app.yaml:1" in status["description"]
    assert deploys(daemon)[-1] == (sha, "error")
    assert daemon.history.running() == []
    [record] = [d for d in daemon.history.deploys() if d.revision == sha]
    assert record.message.startswith("invalid: apps/w\\xffeb/app.yaml:1: ")
    # The page and the API show it, escaped, and no rollout in progress.
    assert daemon.web_url is not None
    with urllib.request.urlopen(f"{daemon.web_url}/api/v1/deploys/{record.id}") as answer:
        body = answer.read().decode("utf-8")
    assert "w\\\\xffeb" in body and '"error"' in body
    with urllib.request.urlopen(f"{daemon.web_url}/") as answer:
        page = answer.read().decode("utf-8")
    assert "w\\xffeb" in page and "in progress" not in page.lower()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB tmpfs: a disk that fills. Needs mount rights (root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def history_on(disk: Path, data_dir: Path) -> Path:
    """data_dir/history.sqlite3 on the small disk (SQLite follows the link, and
    keeps its -wal beside the real file); the mirror and its notes stay off it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "history.sqlite3").symlink_to(disk / "history.sqlite3")
    return disk / "fill"


def filling_app(fill: Path) -> str:
    """An app whose health check fills the disk: the next history write fails."""
    from tests.daemon.conftest import app_yaml
    return app_yaml(health=f"head -c 64m /dev/zero > {fill} 2>/dev/null; true")


def test_a_full_disk_still_ends_the_deploy_and_the_row_closes_when_space_returns(
    state_repo: StateRepo, daemon_factory: Factory, small_disk: Path, tmp_path: Path,
) -> None:
    fill = history_on(small_disk, tmp_path / "data")
    daemon = daemon_factory(state_repo)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    sha = state_repo.commit("fills the disk", content="version 2\n", app=filling_app(fill))
    daemon.trigger("poll")
    final = wait_for(lambda: [s for s in notes(daemon, sha) if s["state"] != "pending"],
                     timeout=30)
    assert wait_idle(daemon, 10)
    assert fill.exists() and os.statvfs(small_disk).f_bavail == 0
    # The commit got its final status, and it says the history missed it.
    assert final[-1]["description"].endswith("; not in history (see log)")
    assert daemon.worker.state.running is None
    assert [d.revision for d in daemon.history.running()] == [sha]  # the disk is still full

    fill.unlink()
    daemon.trigger("poll")  # any next job stores what was missed
    wait_for(lambda: daemon.history.running() == [], timeout=20)
    [record] = [d for d in daemon.history.deploys() if d.revision == sha]
    assert record.result in ("success", "failure") and record.finished is not None
    assert "recorded late: cannot write to the history" in record.message


def test_a_full_disk_leaves_no_running_row_after_a_restart(
    state_repo: StateRepo, small_disk: Path, tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    fill = history_on(small_disk, data)
    state_repo.commit("fills the disk", content="version 2\n", app=filling_app(fill))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        ["python", "-m", "reconciler", "sync", "--repo", f"file://{state_repo.path}",
         "--data-dir", str(data)], capture_output=True, text=True, env=env, timeout=120,
        check=False)
    assert "its end is not recorded: cannot write to the history" in done.stderr, done.stderr
    assert "database or disk is full" in done.stderr
    assert "Traceback" not in done.stderr
    assert fill.exists()

    fill.unlink()
    from reconciler.history import History
    from reconciler.history.store import INTERRUPTED
    history = History(data)  # the next start: the process that ran it is gone
    try:
        assert history.running() == []
        [record] = history.deploys()
        assert (record.result, record.message) == ("interrupted", INTERRUPTED)
    finally:
        history.close()


def test_postgresql_down_starts_no_rollout_and_the_daemon_resumes_when_it_returns(
    state_repo: StateRepo, daemon_factory: Factory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler.history import HistorySettings
    from tests.support.postgres import PASSWORD, start_postgres

    server = start_postgres()
    try:
        monkeypatch.setenv("RECONCILER_TEST_PG", PASSWORD)
        daemon = daemon_factory(state_repo, listen="127.0.0.1:0", history=HistorySettings(
            url=server.url(), password_env="RECONCILER_TEST_PG", timeout=1.0))
        wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
        first = deploys(daemon)
        assert first[0][1] == "success" and state_repo.web_conf() == "version 1\n"
        assert "history is unavailable" not in get(daemon, "/")

        server.stop()
        # The page keeps serving what it last read, and says it is stale.
        page = get(daemon, "/")
        assert "The history is unavailable since " in page and "connection" in page
        assert first[0][0][:12] in page  # the deploy it knew
        status = json.loads(get(daemon, "/api/v1/status"))
        assert status["history_unavailable"].startswith("since ")
        sha = state_repo.commit("while the database is down", content="version 2\n")
        daemon.trigger("poll")
        wait_for(lambda: daemon.worker.state.head == sha, timeout=20)
        assert wait_idle(daemon, 20)
        assert state_repo.web_conf() == "version 1\n"  # nothing applied without its history
        assert sha not in daemon.worker.state.memory.failed  # not a failure of the commit
        assert [s["state"] for s in notes(daemon, sha)] == []
        # Down for 30 s in all, polled every few seconds: longer than the pool's
        # timeout and its reconnect attempts, and still nothing starts.
        outage_ends = time.monotonic() + 30
        while time.monotonic() < outage_ends:
            daemon.trigger("poll")
            time.sleep(3)
            assert wait_idle(daemon, 20)
            assert state_repo.web_conf() == "version 1\n"
            assert "The history is unavailable since " in get(daemon, "/")
        assert sha not in daemon.worker.state.memory.failed

        server.start()
        daemon.trigger("poll")
        wait_for(lambda: (sha, "success") in deploys(daemon), timeout=30)
        assert state_repo.web_conf() == "version 2\n"
        assert deploys(daemon) == [*first, (sha, "success")]  # nothing recorded was lost
        assert daemon.history.running() == []
        wait_for(lambda: "history is unavailable" not in get(daemon, "/"), timeout=15)
        assert sha[:12] in get(daemon, "/")
    finally:
        server.remove()
