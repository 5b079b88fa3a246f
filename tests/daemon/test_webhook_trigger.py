"""Webhooks into a running daemon: signed deliveries over real HTTP on 127.0.0.1
(the daemon's own server), and `Daemon.on_webhook` for what the server hands
over. The daemon polls once an hour and does not watch the repository, so only
the webhook can explain a fetch, a deploy or a plan."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from reconciler.daemon.config import PullRequestsConfig, WebhooksConfig
from reconciler.daemon.service import Daemon, wait_idle
from reconciler.webhooks import Provider, Trigger, TriggerKind, sign
from tests.daemon.conftest import GIT_ENV, StateRepo, deploys, git, notes, wait_for

Factory = Callable[..., Daemon]
SECRET = "webhook-secret-for-tests"
SECRET_ENV = "RECONCILER_TEST_WEBHOOK_SECRET"


def on_branch(repo: StateRepo, branch: str, content: str) -> str:
    """Commit a new web.conf on `branch` (created off main), then go back to main."""
    git(repo.path, "checkout", "-q", "-B", branch, "main")
    try:
        return repo.commit(f"change on {branch}", content=content)
    finally:
        git(repo.path, "checkout", "-q", "main")


def publish_pull_request(repo: StateRepo, number: int, content: str) -> str:
    """What GitHub does: the head lives at refs/pull/<number>/head, not on a branch."""
    sha = on_branch(repo, f"feature-{number}", content)
    git(repo.path, "update-ref", f"refs/pull/{number}/head", sha)
    git(repo.path, "branch", "-q", "-D", f"feature-{number}")
    return sha


def plan_states(daemon: Daemon, sha: str) -> list[str]:
    return [s["state"] for s in notes(daemon, sha) if s["context"] == "reconciler/plan"]


def mirror_refs(daemon: Daemon) -> set[str]:
    out = subprocess.run(["git", "--git-dir", str(daemon.engine.mirror.path), "for-each-ref",
                          "--format=%(refname)"], capture_output=True, text=True, check=True,
                         env=GIT_ENV)
    return set(out.stdout.split())


def post(daemon: Daemon, event: str, payload: Mapping[str, Any]) -> tuple[int, str]:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{daemon.web_url}/hooks/github", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-GitHub-Event": event,
                 "X-Hub-Signature-256": "sha256=" + sign(body, SECRET)})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())["message"]


@pytest.fixture
def quiet(state_repo: StateRepo, daemon_factory: Factory) -> Callable[..., Daemon]:
    """A daemon with no poll and no file watch, after its first deploy."""
    def make(**overrides: Any) -> Daemon:
        daemon = daemon_factory(state_repo, watch=False, **overrides)
        wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
        return daemon
    return make


@pytest.fixture
def served(quiet: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    daemon = quiet(listen="127.0.0.1:0", webhooks=WebhooksConfig(github_secret_env=SECRET_ENV))
    assert daemon.web_url is not None
    return daemon


def test_a_signed_pull_request_webhook_plans_the_head_at_once(
    state_repo: StateRepo, served: Daemon
) -> None:
    sha = publish_pull_request(state_repo, 7, "version 2\n")
    payload = {"action": "opened", "number": 7, "pull_request": {"head": {"sha": sha}}}

    sent = time.monotonic()
    assert post(served, "pull_request", payload)[0] == 202
    wait_for(lambda: "success" in plan_states(served, sha), timeout=5)

    assert time.monotonic() - sent < 5  # the next poll is an hour away
    assert plan_states(served, sha) == ["pending", "success"]
    assert notes(served, sha)[-1]["description"] == "0 to create, 1 to change, 0 to delete"
    assert state_repo.web_conf() == "version 1\n"
    assert len(deploys(served)) == 1


def test_a_push_webhook_for_the_tracked_branch_deploys_its_head(
    state_repo: StateRepo, served: Daemon
) -> None:
    sha = state_repo.commit("second", content="version 2\n")

    assert post(served, "push", {"ref": "refs/heads/main", "after": sha})[0] == 202
    wait_for(lambda: deploys(served)[-1] == (sha, "success"))

    assert state_repo.web_conf() == "version 2\n"
    assert served.history.deploys(limit=1)[0].trigger == "webhook:github:push"


def test_a_push_webhook_for_another_branch_does_nothing(
    state_repo: StateRepo, served: Daemon
) -> None:
    before = mirror_refs(served)
    sha = on_branch(state_repo, "experiment", "version 2\n")

    assert post(served, "push", {"ref": "refs/heads/experiment", "after": sha})[0] == 202
    time.sleep(0.5)  # a fetch or a deploy would have started by now

    assert wait_idle(served, 1) and served.plans is not None and served.plans.idle()
    assert mirror_refs(served) == before  # not even fetched
    assert "refs/heads/experiment" not in before
    assert len(deploys(served)) == 1 and notes(served, sha) == []
    assert state_repo.web_conf() == "version 1\n"


def test_a_pull_request_trigger_fetches_and_plans_only_the_head_it_names(
    state_repo: StateRepo, quiet: Callable[..., Daemon]
) -> None:
    daemon = quiet()
    named = publish_pull_request(state_repo, 7, "version 2\n")
    other = publish_pull_request(state_repo, 8, "version 3\n")

    daemon.on_webhook(Trigger(provider=Provider.GITHUB, kind=TriggerKind.PULL_REQUEST,
                              ref="refs/pull/7/head", sha=named))
    wait_for(lambda: "success" in plan_states(daemon, named), timeout=5)

    assert daemon.plans is not None
    wait_for(daemon.plans.idle)
    refs = mirror_refs(daemon)
    assert "refs/pull/7/head" in refs and "refs/pull/8/head" not in refs
    assert plan_states(daemon, other) == []
    assert len(deploys(daemon)) == 1


def test_with_branch_patterns_a_push_to_a_covered_branch_plans_and_main_deploys(
    state_repo: StateRepo, quiet: Callable[..., Daemon]
) -> None:
    # refs/heads/* covers the tracked branch too: a push to main is still a deploy.
    daemon = quiet(pull_requests=PullRequestsConfig(refspecs=("refs/heads/*",)))
    branch = on_branch(state_repo, "pr/web", "version 2\n")
    daemon.on_webhook(Trigger(provider=Provider.GITEA, kind=TriggerKind.PUSH,
                              ref="refs/heads/pr/web", sha=branch))
    wait_for(lambda: "success" in plan_states(daemon, branch), timeout=5)
    assert len(deploys(daemon)) == 1

    head = state_repo.commit("second", content="version 3\n")
    daemon.on_webhook(Trigger(provider=Provider.GITEA, kind=TriggerKind.PUSH,
                              ref="refs/heads/main", sha=head))
    wait_for(lambda: deploys(daemon)[-1] == (head, "success"))
    assert state_repo.web_conf() == "version 3\n"
    assert daemon.plans is not None
    wait_for(daemon.plans.idle)
    assert plan_states(daemon, head) == []  # the tracked branch is deployed, never planned
