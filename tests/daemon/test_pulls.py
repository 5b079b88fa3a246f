"""Pull-request plans in a running daemon: a file:// state repository whose
branches under refs/heads/pr/ play the pull requests, a VM target on the local
transport, statuses read back from the git notes with the git CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler import pulls
from reconciler.daemon.config import PullRequestsConfig
from reconciler.daemon.service import Daemon, wait_idle
from tests.daemon.conftest import StateRepo, app_yaml, deploys, git, notes, wait_for

Factory = Callable[..., Daemon]
BRANCHES = PullRequestsConfig(refspecs=("refs/heads/pr/*",))
EXTRA = 'kind: File\npath: /etc/extra.conf\ncontent: "extra\\n"\n'


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under the VM root with inode, mtime and bytes: equal means untouched."""
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def plan_statuses(daemon: Daemon, sha: str) -> list[Mapping[str, Any]]:
    return [s for s in notes(daemon, sha) if s["context"] == "reconciler/plan"]


def final_plan(daemon: Daemon, sha: str) -> Mapping[str, Any] | None:
    found = [s for s in plan_statuses(daemon, sha) if s["state"] != "pending"]
    return found[-1] if found else None


def open_pull_request(repo: StateRepo, branch: str, **changes: str) -> str:
    """Commit `changes` on a new branch off main, then go back to main; the head sha."""
    git(repo.path, "checkout", "-q", "-b", branch, "main")
    try:
        return repo.commit(f"change on {branch}", **changes)
    finally:
        git(repo.path, "checkout", "-q", "main")


@pytest.fixture
def daemon(state_repo: StateRepo, daemon_factory: Factory) -> Daemon:
    """Polls once an hour: only the start scan and the file watch can explain a plan."""
    started = daemon_factory(state_repo, pull_requests=BRANCHES,
                             public_url="https://deploy.example.com")
    wait_for(lambda: wait_idle(started, 5) and len(deploys(started)) == 1)
    return started


def test_a_valid_branch_gets_a_success_plan_with_counts_and_the_target_is_untouched(
    state_repo: StateRepo, daemon: Daemon
) -> None:
    before = snapshot(state_repo.root)
    git(state_repo.path, "branch", "pr/fresh")  # no commit yet: main's own commit
    sha = open_pull_request(state_repo, "pr/good", content="version 2\n", raw=EXTRA)

    final = wait_for(lambda: final_plan(daemon, sha))

    assert final["state"] == "success"
    assert final["description"] == "1 to create, 1 to change, 0 to delete"
    assert final["target_url"] == f"https://deploy.example.com/plans/{sha}"
    assert [s["state"] for s in plan_statuses(daemon, sha)] == ["pending", "success"]
    # A plan reads live state and changes nothing: same files, same inodes and mtimes,
    # no deploy of the branch, and the tracked branch's head keeps its own context only.
    assert snapshot(state_repo.root) == before
    assert state_repo.web_conf() == "version 1\n"
    assert not (state_repo.root / "etc/extra.conf").exists()
    assert [r for r, _ in deploys(daemon)] == [git(state_repo.path, "rev-parse", "main")]
    main = git(state_repo.path, "rev-parse", "main")
    assert daemon.plans is not None
    wait_for(daemon.plans.idle)
    assert {s["context"] for s in notes(daemon, main)} == {"reconciler/deploy"}
    assert pulls.load_record(daemon.history, main) is None
    record = pulls.load_record(daemon.history, sha)
    assert record is not None and record["ref"] == "refs/heads/pr/good"
    assert record["plan"]["summary"] == {"create": 1, "update": 1, "delete": 0}


def test_an_invalid_branch_gets_an_error_plan_naming_file_and_line(
    state_repo: StateRepo, daemon: Daemon
) -> None:
    before = snapshot(state_repo.root)
    sha = open_pull_request(state_repo, "pr/typo", app="target: laptop\nwav: 2\n")

    final = wait_for(lambda: final_plan(daemon, sha))

    assert final["state"] == "error"
    assert final["description"].startswith("invalid: apps/web/app.yaml:2:")
    assert "'wav'" in final["description"] and len(final["description"]) <= 140
    assert snapshot(state_repo.root) == before
    assert len(deploys(daemon)) == 1  # an invalid pull request is not a failed deploy
    record = pulls.load_record(daemon.history, sha)
    assert record is not None and record["problems"][0].startswith("apps/web/app.yaml:2:")


def test_each_head_is_planned_once_and_a_new_push_to_the_branch_is_planned_again(
    state_repo: StateRepo, daemon: Daemon
) -> None:
    first = open_pull_request(state_repo, "pr/twice", content="version 2\n")
    wait_for(lambda: final_plan(daemon, first))
    daemon.plan_pull_requests("poll")
    wait_for(lambda: daemon.plans is not None and daemon.plans.idle())
    assert [s["state"] for s in plan_statuses(daemon, first)] == ["pending", "success"]

    git(state_repo.path, "checkout", "-q", "pr/twice")
    second = state_repo.commit("more", content="version 3\n", raw=EXTRA)
    git(state_repo.path, "checkout", "-q", "main")
    final = wait_for(lambda: final_plan(daemon, second))
    assert final["description"] == "1 to create, 1 to change, 0 to delete"
    assert len(plan_statuses(daemon, first)) == 2


def test_a_pull_request_is_planned_while_a_slow_rollout_runs(
    state_repo: StateRepo, daemon: Daemon
) -> None:
    slow = state_repo.commit("slow", content="version 2\n", app=app_yaml("sleep 2"))
    wait_for(lambda: daemon.worker.state.running == slow)
    sha = open_pull_request(state_repo, "pr/meanwhile", content="version 3\n")

    final = wait_for(lambda: final_plan(daemon, sha))

    assert final["state"] == "success"
    assert daemon.worker.state.running == slow  # the plan did not wait for the rollout
    wait_for(lambda: wait_idle(daemon, 0.1) and deploys(daemon)[-1] == (slow, "success"),
             timeout=20)
    stored = pulls.load_record(daemon.history, sha)
    assert stored is not None and stored["state"] == "success"
