"""The handler behind a real HTTP server: what the forge sees and what the daemon gets."""

from __future__ import annotations

import urllib.error
import urllib.request

from reconciler import webhooks
from tests.webhooks.conftest import SHA, Delivery, HookServer, github_push


def post(server: HookServer, provider: str, delivery: Delivery) -> int:
    request = urllib.request.Request(f"{server.url}/hooks/{provider}", data=delivery.body,
                                     headers=delivery.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def test_signed_push_over_http_triggers_once(
    hook_server: tuple[HookServer, list[webhooks.Trigger]],
) -> None:
    server, triggers = hook_server
    assert post(server, "github", github_push()) == 202
    assert [(t.ref, t.sha) for t in triggers] == [("refs/heads/main", SHA)]


def test_refused_deliveries_over_http_trigger_nothing(
    hook_server: tuple[HookServer, list[webhooks.Trigger]],
) -> None:
    server, triggers = hook_server
    good = github_push()
    unsigned = Delivery(headers={"X-GitHub-Event": "push"}, body=good.body)
    assert post(server, "github", github_push(secret="wrong")) == 401
    assert post(server, "github", unsigned) == 401
    big = b"{" + b" " * (webhooks.MAX_BODY + 10) + b"}"
    oversized = Delivery(headers={**good.headers, "X-Hub-Signature-256": "sha256=" +
                                  webhooks.sign(big, "It's a Secret to Everybody")}, body=big)
    assert post(server, "github", oversized) == 413
    assert triggers == []
