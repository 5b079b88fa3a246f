"""Plan records in the history (SQLite and PostgreSQL alike) are pruned after each
scan: the newest `pull_requests.keep` stay, and so does every record of a head
that still exists."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from reconciler import pulls
from reconciler.daemon.config import PullRequestsConfig, parse_config
from reconciler.daemon.service import Daemon, wait_idle
from reconciler.errors import ConfigError
from reconciler.history import History
from reconciler.reporters import State
from tests.daemon.conftest import StateRepo, deploys, git, wait_for
from tests.daemon.test_pulls import open_pull_request

Factory = Callable[..., Daemon]


def sha(n: int) -> str:
    return f"{n:040x}"


def write_record(history: History, n: int, planned_at: float) -> None:
    pulls.save_record(history, pulls.PlanResult(
        sha=sha(n), ref=f"refs/pull/{n}/head", state=State.SUCCESS, description="ok"))
    with history.database.transaction(write=True) as db:
        db.execute("UPDATE plans SET planned_at=? WHERE sha=?", (planned_at, sha(n)))


def records(history: History) -> set[str]:
    return set(history.plans())


def has_record(history: History, head: str) -> bool:
    return head in records(history)


@pytest.fixture
def history(open_store: Callable[[], History]) -> History:
    return open_store()


def test_the_newest_records_and_current_heads_stay(history: History) -> None:
    for n in range(1, 6):
        write_record(history, n, planned_at=1000.0 + n)  # 5 is the newest

    deleted = pulls.prune_records(history, keep=2, current={sha(1)})

    assert sorted(deleted) == [sha(2), sha(3)]
    assert records(history) == {sha(1), sha(4), sha(5)}
    assert history.plans() == [sha(5), sha(4), sha(1)]  # newest first


def test_keep_zero_leaves_only_current_heads_and_none_is_no_error(history: History) -> None:
    assert pulls.prune_records(history, keep=0, current=()) == []
    write_record(history, 1, planned_at=1.0)
    write_record(history, 2, planned_at=2.0)
    assert pulls.prune_records(history, keep=0, current={sha(1)}) == [sha(2)]
    assert records(history) == {sha(1)}
    assert pulls.load_record(history, sha(2)) is None
    assert pulls.load_record(history, sha(1)) == {
        "sha": sha(1), "ref": "refs/pull/1/head", "state": "success", "description": "ok",
        "problems": [], "plan": None}


def test_keep_is_read_and_checked_like_the_rest_of_the_file() -> None:
    assert parse_config("repo: x\n").pull_requests.keep == 500
    assert parse_config("repo: x\npull_requests: {keep: 3}\n").pull_requests.keep == 3
    with pytest.raises(ConfigError, match=r"d.yaml:3: unknown key 'kep' \(did you mean 'keep'\?\)"):
        parse_config("repo: x\npull_requests:\n  kep: 3\n", source="d.yaml")
    for bad in ("-1", "true", "lots", "1.5"):
        with pytest.raises(ConfigError, match=r"d.yaml:3: keep must be a whole number"):
            parse_config(f"repo: x\npull_requests:\n  keep: {bad}\n", source="d.yaml")


def test_a_scan_prunes_closed_pull_requests_beyond_keep(
    state_repo: StateRepo, daemon_factory: Factory,
) -> None:
    daemon = daemon_factory(state_repo, pull_requests=PullRequestsConfig(
        refspecs=("refs/heads/pr/*",), keep=1))
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    heads: dict[str, str] = {}
    for name in ("a", "b", "c"):
        head = open_pull_request(state_repo, f"pr/{name}", content=f"version {name}\n")
        heads[name] = head
        wait_for(functools.partial(has_record, daemon.history, head))
    assert records(daemon.history) == set(heads.values())  # all open: none pruned
    with daemon.history.database.transaction(write=True) as db:
        for age, name in enumerate(("a", "b", "c")):
            db.execute("UPDATE plans SET planned_at=? WHERE sha=?", (1000.0 + age, heads[name]))

    # Close a (old) and c (the newest): c stays as the one kept, b as an open head.
    git(state_repo.path, "branch", "-D", "pr/a", "pr/c")
    assert daemon.plans is not None
    daemon.plan_pull_requests("poll")
    wait_for(daemon.plans.idle)

    assert records(daemon.history) == {heads["b"], heads["c"]}
