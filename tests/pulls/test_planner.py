"""Pull-request heads get a `reconciler/plan` status; nothing on any target changes."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler import pulls
from reconciler.engine import Engine
from reconciler.history import History
from reconciler.reporters import State, github
from tests.pulls.staterepo import LocalStateRepo, file_doc
from tests.reporters.conftest import Forge, Reply


def deployed(engine: Engine) -> None:
    result = engine.sync("main")
    assert result.result == "success", result.message


def valid_change(repo: LocalStateRepo) -> str:
    """a changes, c is new, b is removed: one of each action."""
    repo.branch("feature")
    repo.write("apps/web/files.yaml", file_doc("/etc/web/a.conf", "a=2") + "---\n"
               + file_doc("/etc/web/c.conf", "c=1"))
    repo.commit("web: a=2, c instead of b")
    return repo.pull_request(1, "feature")


def invalid_change(repo: LocalStateRepo) -> str:
    repo.branch("broken")
    repo.write("apps/web/app.yaml", "target: nowhere\nwave: 1\n")
    repo.commit("web: a target that does not exist")
    return repo.pull_request(2, "broken")


def statuses(forge: Forge) -> list[tuple[str, str, str]]:
    return [(r.path.rsplit("/", 1)[1], r.json()["state"], r.json()["description"])
            for r in forge.requests]


def test_valid_head_gets_success_with_counts_and_targets_stay_untouched(
    engine: Engine, state_repo: LocalStateRepo, forge: Forge,
    github_reporter: github.GitHubReporter,
) -> None:
    deployed(engine)
    before = state_repo.snapshot()
    sha = valid_change(state_repo)
    planner = pulls.PullRequestPlanner(engine=engine, reporters=[github_reporter],
                                       public_url="https://deploy.example.com")

    [result] = planner.scan()

    assert (result.sha, result.ref, result.state) == (sha, "refs/pull/1/head", State.SUCCESS)
    assert result.description == "1 to create, 1 to change, 1 to delete"
    assert statuses(forge) == [
        (sha, "pending", "planning against live state"),
        (sha, "success", "1 to create, 1 to change, 1 to delete"),
    ]
    body = forge.requests[-1].json()
    assert body["context"] == "reconciler/plan"
    assert body["target_url"] == f"https://deploy.example.com/plans/{sha}"
    assert state_repo.snapshot() == before


def test_full_plan_is_stored_for_the_status_page(
    engine: Engine, state_repo: LocalStateRepo, tmp_path: Path,
) -> None:
    deployed(engine)
    sha = valid_change(state_repo)
    pulls.PullRequestPlanner(engine=engine).scan()

    stored = pulls.load_record(engine.history, sha)
    assert stored is not None
    reopened = History(tmp_path / "data")  # in the history, for every process to read
    try:
        assert reopened.plan(sha) == stored
    finally:
        reopened.close()
    assert json.loads(json.dumps(stored)) == stored
    assert stored["state"] == "success"
    assert stored["plan"]["summary"] == {"create": 1, "update": 1, "delete": 1}
    actions = sorted((c["resource"], c["action"]) for w in stored["plan"]["waves"]
                     for a in w["apps"] for c in a["changes"])
    assert actions == [("File:/etc/web/a.conf", "update"), ("File:/etc/web/b.conf", "delete"),
                       ("File:/etc/web/c.conf", "create")]
    assert any("+content" in c["diff"] or "sha256" in c["diff"]
               for w in stored["plan"]["waves"] for a in w["apps"] for c in a["changes"])


def test_invalid_head_gets_error_naming_file_and_line(
    engine: Engine, state_repo: LocalStateRepo, forge: Forge,
    github_reporter: github.GitHubReporter, tmp_path: Path,
) -> None:
    deployed(engine)
    before = state_repo.snapshot()
    sha = invalid_change(state_repo)

    [result] = pulls.PullRequestPlanner(engine=engine, reporters=[github_reporter]).scan()

    assert result.state is State.ERROR
    assert result.plan is None
    assert result.problems and result.problems[0].startswith("apps/web/app.yaml:1: ")
    assert "nowhere" in result.problems[0]
    last = forge.requests[-1].json()
    assert (last["state"], last["context"]) == ("error", "reconciler/plan")
    assert last["description"].startswith("invalid: apps/web/app.yaml:1: ")
    assert pulls.load_record(engine.history, sha)["problems"] == list(result.problems)
    assert state_repo.snapshot() == before


def test_each_head_is_planned_once_even_across_restarts(
    engine: Engine, state_repo: LocalStateRepo, forge: Forge,
    github_reporter: github.GitHubReporter,
) -> None:
    valid_change(state_repo)
    invalid_change(state_repo)
    planner = pulls.PullRequestPlanner(engine=engine, reporters=[github_reporter])
    first = planner.scan()
    assert sorted(r.ref for r in first) == ["refs/pull/1/head", "refs/pull/2/head"]
    assert planner.scan() == []
    again = pulls.PullRequestPlanner(engine=engine, reporters=[github_reporter])
    assert again.scan() == []
    assert len(forge.requests) == 4  # pending + final, for each head, once

    state_repo.branch("feature", "feature")
    state_repo.write("apps/web/extra.yaml", file_doc("/etc/web/d.conf", "d=1"))
    new_sha = state_repo.commit("web: d")
    state_repo.pull_request(1, "feature")
    [pushed] = planner.scan()
    assert (pushed.sha, pushed.ref) == (new_sha, "refs/pull/1/head")


def test_provider_down_does_not_stop_planning(
    engine: Engine, state_repo: LocalStateRepo, forge: Forge,
    github_reporter: github.GitHubReporter, tmp_path: Path,
) -> None:
    forge.default = Reply(status=503)
    sha = valid_change(state_repo)
    [result] = pulls.PullRequestPlanner(engine=engine, reporters=[github_reporter]).scan()
    assert result.state is State.SUCCESS
    assert result.description == "2 to create, 0 to change, 0 to delete"  # nothing deployed yet
    assert pulls.load_record(engine.history, sha) is not None


def test_branch_patterns_exclude_the_tracked_branch(
    engine: Engine, state_repo: LocalStateRepo,
) -> None:
    valid_change(state_repo)
    planner = pulls.PullRequestPlanner(engine=engine, patterns=["refs/heads/*"],
                                       exclude=["refs/heads/main"])
    assert [r.ref for r in planner.scan()] == ["refs/heads/feature"]


def test_refspec_helpers() -> None:
    assert pulls.fetch_refspecs(["refs/pull/*/head", "+refs/x/*:refs/y/*"]) == (
        "+refs/pull/*/head:refs/pull/*/head", "+refs/x/*:refs/y/*")
    assert pulls.ref_patterns(["refs/merge-requests/*/head", "+refs/x/*:refs/y/*"]) == (
        "refs/merge-requests/*/head", "refs/y/*")

def test_a_record_is_looked_up_by_commit_id_only(engine: Engine) -> None:
    assert pulls.load_record(engine.history, "../../etc/passwd") is None
