"""Signed webhook deliveries as the forges send them, and a tiny real server around `handle`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler import webhooks
from tests.support.httpservers import LocalServer, QuietHandler

SECRET = "It's a Secret to Everybody"
SHA = "a" * 40
OLD = "b" * 40


@dataclass(frozen=True, kw_only=True)
class Delivery:
    headers: dict[str, str]
    body: bytes


def github_push(secret: str = SECRET, ref: str = "refs/heads/main", after: str = SHA) -> Delivery:
    body = json.dumps({"ref": ref, "before": OLD, "after": after, "deleted": False}).encode()
    return Delivery(headers={"X-GitHub-Event": "push", "Content-Type": "application/json",
                             "X-Hub-Signature-256": "sha256=" + webhooks.sign(body, secret)},
                    body=body)


def github_pull_request(action: str = "opened", secret: str = SECRET) -> Delivery:
    payload = {"action": action, "number": 7,
               "pull_request": {"head": {"ref": "feature", "sha": SHA}}}
    body = json.dumps(payload).encode()
    return Delivery(headers={"X-GitHub-Event": "pull_request",
                             "X-Hub-Signature-256": "sha256=" + webhooks.sign(body, secret)},
                    body=body)


def gitlab_event(event: str, payload: Mapping[str, Any], token: str = SECRET) -> Delivery:
    return Delivery(headers={"X-Gitlab-Event": event, "X-Gitlab-Token": token},
                    body=json.dumps(payload).encode())


def gitea_event(event: str, payload: Mapping[str, Any], secret: str = SECRET) -> Delivery:
    body = json.dumps(payload).encode()
    return Delivery(headers={"X-Gitea-Event": event,
                             "X-Gitea-Signature": webhooks.sign(body, secret)}, body=body)


class HookServer(LocalServer):
    """POST /hooks/<provider> -> webhooks.handle; accepted triggers go to `on_trigger`."""

    def __init__(self, secret: str, on_trigger: Callable[[webhooks.Trigger], None]) -> None:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                provider = self.path.removeprefix("/hooks/")
                length = int(self.headers.get("Content-Length") or 0)
                limit = webhooks.MAX_BODY
                # Never read more than the limit plus one byte: enough to know it is too big.
                body = self.rfile.read(min(length, limit + 1))
                result = webhooks.handle(provider, dict(self.headers.items()), body, secret)
                if result.trigger is not None:
                    on_trigger(result.trigger)
                data = json.dumps({"message": result.message}).encode()
                self.send_response(result.status_code)
                self.send_header("Content-Length", str(len(data)))
                if length > limit:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)


@pytest.fixture
def hook_server() -> Iterator[tuple[HookServer, list[webhooks.Trigger]]]:
    triggers: list[webhooks.Trigger] = []
    server = HookServer(SECRET, triggers.append)
    yield server, triggers
    server.close()
