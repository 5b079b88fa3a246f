"""Plan records under data_dir/plans/ are pruned after each scan: the newest
`pull_requests.keep` stay, and so does every record of a head that still exists."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import pulls
from reconciler.daemon.config import PullRequestsConfig, parse_config
from reconciler.daemon.service import Daemon, wait_idle
from reconciler.errors import ConfigError
from reconciler.reporters import State
from tests.daemon.conftest import StateRepo, deploys, git, wait_for
from tests.daemon.test_pulls import open_pull_request

Factory = Callable[..., Daemon]


def sha(n: int) -> str:
    return f"{n:040x}"


def write_record(data_dir: Path, n: int, mtime: float) -> None:
    path = pulls.save_record(data_dir, pulls.PlanResult(
        sha=sha(n), ref=f"refs/pull/{n}/head", state=State.SUCCESS, description="ok"))
    os.utime(path, (mtime, mtime))


def records(data_dir: Path) -> set[str]:
    return {p.stem for p in (data_dir / "plans").glob("*.json")}


def has_record(data_dir: Path, head: str) -> bool:
    return head in records(data_dir)


def test_the_newest_records_and_current_heads_stay(tmp_path: Path) -> None:
    for n in range(1, 6):
        write_record(tmp_path, n, mtime=1000.0 + n)  # 5 is the newest
    stray = tmp_path / "plans" / "README.txt"
    stray.write_text("not a record")

    deleted = pulls.prune_records(tmp_path, keep=2, current={sha(1)})

    assert sorted(deleted) == [sha(2), sha(3)]
    assert records(tmp_path) == {sha(1), sha(4), sha(5)}
    assert stray.exists()


def test_keep_zero_leaves_only_current_heads_and_no_folder_is_no_error(tmp_path: Path) -> None:
    assert pulls.prune_records(tmp_path, keep=0, current=()) == []
    write_record(tmp_path, 1, mtime=1.0)
    write_record(tmp_path, 2, mtime=2.0)
    assert pulls.prune_records(tmp_path, keep=0, current={sha(1)}) == [sha(2)]
    assert records(tmp_path) == {sha(1)}


def test_keep_is_read_and_checked_like_the_rest_of_the_file() -> None:
    assert parse_config("repo: x\n").pull_requests.keep == 500
    assert parse_config("repo: x\npull_requests: {keep: 3}\n").pull_requests.keep == 3
    with pytest.raises(ConfigError, match=r"d.yaml:3: unknown key 'kep' \(did you mean 'keep'\?\)"):
        parse_config("repo: x\npull_requests:\n  kep: 3\n", source="d.yaml")
    for bad in ("-1", "true", "lots", "1.5"):
        with pytest.raises(ConfigError, match=r"d.yaml:3: keep must be a whole number"):
            parse_config(f"repo: x\npull_requests:\n  keep: {bad}\n", source="d.yaml")


def test_a_scan_prunes_closed_pull_requests_beyond_keep(
    state_repo: StateRepo, daemon_factory: Factory, tmp_path: Path
) -> None:
    daemon = daemon_factory(state_repo, pull_requests=PullRequestsConfig(
        refspecs=("refs/heads/pr/*",), keep=1))
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    data_dir = tmp_path / "data"
    heads: dict[str, str] = {}
    for name in ("a", "b", "c"):
        head = open_pull_request(state_repo, f"pr/{name}", content=f"version {name}\n")
        heads[name] = head
        wait_for(functools.partial(has_record, data_dir, head))
    assert records(data_dir) == set(heads.values())  # all open: none pruned
    for age, name in enumerate(("a", "b", "c")):
        os.utime(pulls.plan_path(data_dir, heads[name]), (1000.0 + age, 1000.0 + age))

    # Close a (old) and c (the newest): c stays as the one kept, b as an open head.
    git(state_repo.path, "branch", "-D", "pr/a", "pr/c")
    assert daemon.plans is not None
    daemon.plan_pull_requests("poll")
    wait_for(daemon.plans.idle)

    assert records(data_dir) == {heads["b"], heads["c"]}
