"""`webhooks.handle`: signed deliveries trigger; everything else is refused or ignored."""

from __future__ import annotations

import json

import pytest

from reconciler import webhooks
from reconciler.webhooks import Provider, TriggerKind
from tests.webhooks.conftest import (
    OLD,
    SECRET,
    SHA,
    Delivery,
    gitea_event,
    github_pull_request,
    github_push,
    gitlab_event,
)


def run(provider: str, delivery: Delivery, secret: str | None = SECRET) -> webhooks.WebhookResult:
    return webhooks.handle(provider, delivery.headers, delivery.body, secret)


def test_github_signature_matches_the_documented_example() -> None:
    # GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!".
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert webhooks.sign(b"Hello, World!", SECRET) == expected


def test_github_push_triggers() -> None:
    result = run("github", github_push())
    assert result.status_code == 202
    assert result.trigger == webhooks.Trigger(provider=Provider.GITHUB, kind=TriggerKind.PUSH,
                                              ref="refs/heads/main", sha=SHA)
    assert result.trigger.reason == "webhook:github:push"


def test_github_pull_request_triggers_a_plan_of_its_head() -> None:
    result = run("github", github_pull_request("synchronize"))
    assert result.trigger is not None
    assert (result.trigger.kind, result.trigger.ref, result.trigger.sha) == (
        TriggerKind.PULL_REQUEST, "refs/pull/7/head", SHA)


@pytest.mark.parametrize("action", ["closed", "labeled", "edited"])
def test_github_pull_request_actions_that_do_not_move_the_head_are_ignored(action: str) -> None:
    result = run("github", github_pull_request(action))
    assert result.status_code == 202
    assert result.trigger is None


def test_bad_signature_is_refused() -> None:
    delivery = github_push()
    tampered = Delivery(headers=delivery.headers, body=delivery.body.replace(b"main", b"evil"))
    result = run("github", tampered)
    assert (result.status_code, result.trigger) == (401, None)


def test_missing_signature_is_refused() -> None:
    delivery = github_push()
    headers = {k: v for k, v in delivery.headers.items() if k != "X-Hub-Signature-256"}
    result = webhooks.handle("github", headers, delivery.body, SECRET)
    assert (result.status_code, result.trigger) == (401, None)


def test_wrong_secret_is_refused() -> None:
    result = run("github", github_push(secret="not the secret"))
    assert (result.status_code, result.trigger) == (401, None)


def test_signature_without_prefix_is_refused() -> None:
    delivery = github_push()
    headers = dict(delivery.headers)
    headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"].removeprefix("sha256=")
    assert webhooks.handle("github", headers, delivery.body, SECRET).status_code == 401


@pytest.mark.parametrize("secret", [None, ""])
def test_no_configured_secret_refuses_everything(secret: str | None) -> None:
    result = run("github", github_push(secret=""), secret=secret)
    assert (result.status_code, result.trigger) == (401, None)


def test_oversized_body_is_refused_before_checking_anything() -> None:
    delivery = github_push()
    result = webhooks.handle("github", delivery.headers, delivery.body, SECRET,
                             max_body=len(delivery.body) - 1)
    assert (result.status_code, result.trigger) == (413, None)


def test_header_names_are_case_insensitive() -> None:
    delivery = github_push()
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert webhooks.handle("github", headers, delivery.body, SECRET).trigger is not None


def test_ping_and_unknown_events_are_accepted_and_ignored() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + webhooks.sign(
        body, SECRET)}
    result = webhooks.handle("github", headers, body, SECRET)
    assert (result.status_code, result.trigger) == (202, None)
    assert "ping" in result.message


def test_unsigned_unknown_event_is_still_refused() -> None:
    result = webhooks.handle("github", {"X-GitHub-Event": "ping"}, b"{}", SECRET)
    assert result.status_code == 401


def test_branch_deletion_is_ignored() -> None:
    result = run("github", github_push(after="0" * 40))
    assert (result.status_code, result.trigger) == (202, None)


def test_signed_garbage_is_a_bad_request() -> None:
    body = b"not json"
    headers = {"X-GitHub-Event": "push",
               "X-Hub-Signature-256": "sha256=" + webhooks.sign(body, SECRET)}
    assert webhooks.handle("github", headers, body, SECRET).status_code == 400
    body = json.dumps({"ref": "main", "after": "xyz"}).encode()
    headers["X-Hub-Signature-256"] = "sha256=" + webhooks.sign(body, SECRET)
    assert webhooks.handle("github", headers, body, SECRET).status_code == 400


def test_unknown_provider_is_not_found() -> None:
    assert run("bitbucket", github_push()).status_code == 404


def test_gitlab_push_and_merge_request() -> None:
    push = run("gitlab", gitlab_event("Push Hook", {"ref": "refs/heads/main", "before": OLD,
                                                    "after": SHA}))
    assert push.trigger is not None
    assert (push.trigger.provider, push.trigger.ref) == (Provider.GITLAB, "refs/heads/main")
    mr = run("gitlab", gitlab_event("Merge Request Hook", {
        "object_kind": "merge_request",
        "object_attributes": {"iid": 12, "action": "update", "last_commit": {"id": SHA}}}))
    assert mr.trigger is not None
    assert (mr.trigger.kind, mr.trigger.ref, mr.trigger.sha) == (
        TriggerKind.PULL_REQUEST, "refs/merge-requests/12/head", SHA)


def test_gitlab_wrong_or_missing_token_is_refused() -> None:
    payload = {"ref": "refs/heads/main", "after": SHA}
    assert run("gitlab", gitlab_event("Push Hook", payload, token="guess")).status_code == 401
    delivery = gitlab_event("Push Hook", payload)
    headers = {k: v for k, v in delivery.headers.items() if k != "X-Gitlab-Token"}
    assert webhooks.handle("gitlab", headers, delivery.body, SECRET).status_code == 401


def test_gitlab_merged_request_is_ignored() -> None:
    result = run("gitlab", gitlab_event("Merge Request Hook", {
        "object_attributes": {"iid": 3, "action": "merge", "last_commit": {"id": SHA}}}))
    assert (result.status_code, result.trigger) == (202, None)


def test_gitea_push_and_pull_request() -> None:
    push = run("gitea", gitea_event("push", {"ref": "refs/heads/main", "after": SHA}))
    assert push.trigger is not None and push.trigger.provider is Provider.GITEA
    pr = run("gitea", gitea_event("pull_request", {
        "action": "synchronized", "number": 4, "pull_request": {"head": {"sha": SHA}}}))
    assert pr.trigger is not None and pr.trigger.ref == "refs/pull/4/head"


def test_gitea_bad_signature_is_refused() -> None:
    delivery = gitea_event("push", {"ref": "refs/heads/main", "after": SHA}, secret="other")
    assert run("gitea", delivery).status_code == 401


def test_forgejo_headers_are_accepted() -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": SHA}).encode()
    headers = {"X-Forgejo-Event": "push", "X-Forgejo-Signature": webhooks.sign(body, SECRET)}
    assert webhooks.handle("gitea", headers, body, SECRET).trigger is not None


def test_results_never_carry_the_secret() -> None:
    for result in (run("github", github_push()), run("github", github_push(secret="x")),
                   run("gitlab", gitlab_event("Push Hook", {}, token="x"))):
        assert SECRET not in repr(result)
