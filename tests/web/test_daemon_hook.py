"""`reconciler run` serves the page through the hook in daemon/service.py."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from reconciler.daemon.config import DaemonConfig, WebhooksConfig
from reconciler.daemon.service import Daemon, wait_idle
from reconciler.webhooks import sign
from tests.web.staterepo import SECRET, StateRepo


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


def test_the_daemon_starts_the_server_and_stops_it(
    tmp_path: Path, state_repo: StateRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret-for-hooks")
    config = DaemonConfig(repo=str(state_repo.path), branch="main", listen="127.0.0.1:0",
                          poll_interval=3600, drift_interval=0,
                          webhooks=WebhooksConfig(github_secret_env="TEST_HOOK_SECRET"))
    daemon = Daemon(config, tmp_path / "daemon-data")
    daemon.start()
    try:
        assert wait_idle(daemon, 30)
        server = daemon._web
        assert server is not None
        assert fetch(server.url + "/healthz") == (200, b"ok\n")
        assert fetch(server.url + "/readyz")[0] == 200
        status = json.loads(fetch(server.url + "/api/v1/status")[1])
        assert status["branch"] == "main" and status["ready"] is True
        assert status["targets"][0]["name"] == "laptop"
        assert status["rollout"]["state"] == "success"  # followed the daemon's first deploy
        _, page = fetch(server.url + "/")
        assert b"web 1.0: first release" in page and SECRET.encode() not in page
        _, metrics = fetch(server.url + "/metrics")
        assert b'reconciler_deploys_total{result="success"} 1.0' in metrics
        assert b"reconciler_daemon_rollouts_total" in metrics  # the daemon's own counters too
        body = json.dumps({"ref": "refs/heads/main", "after": "b" * 40}).encode()
        signature = "sha256=" + sign(body, "s3cret-for-hooks")
        assert post(server.url + "/hooks/github", body, {"X-GitHub-Event": "push",
                    "X-Hub-Signature-256": signature}) == 202
        _, metrics = fetch(server.url + "/metrics")
        assert b'reconciler_daemon_triggers_total{reason="webhook:github:push"}' in metrics
    finally:
        assert daemon.stop(timeout=30)
    assert server.app.hub.listeners == 0
