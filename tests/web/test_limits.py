"""Request limits against the real server: one deadline per request, however
slowly its bytes trickle in; a bound on connections served at once; webhook
bodies that are signed but unusable. Real sockets on 127.0.0.1 throughout."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import webhooks
from reconciler.daemon.config import HttpConfig, parse_config
from reconciler.daemon.service import Daemon
from reconciler.errors import ConfigError
from tests.web.conftest import HOOK_SECRET, Response, Web
from tests.web.staterepo import StateRepo

Factory = Callable[..., Web]
DEADLINE = 2.0


def trickle(web: Web, head: bytes, drip: bytes, *, every: float = 0.25,
            give_up: float = 12.0) -> tuple[bytes, float]:
    """Send `head`, then `drip` one byte every `every` seconds until the server
    answers and closes; what it answered and after how many seconds."""
    sock = socket.create_connection(web.server.address)
    began = time.monotonic()
    answer = b""
    try:
        sock.sendall(head)
        for byte in drip:
            readable, _, _ = select.select([sock], [], [], every)
            if readable or time.monotonic() - began > give_up:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(5)
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return answer, time.monotonic() - began


def handler_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def test_headers_trickled_a_byte_at_a_time_are_cut_off_at_the_deadline(
    web_factory: Factory,
) -> None:
    # Each byte arrives well within the per-read timeout; only the deadline can end it.
    web = web_factory(request_deadline=DEADLINE, timeout=10.0)
    answer, took = trickle(web, b"GET /healthz HTTP/1.1\r\nHost: test\r\n",
                           b"X-Slow: " + b"a" * 200)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert b"request not received within 2 s" in answer
    assert DEADLINE - 0.2 < took < DEADLINE + 2.0
    assert web.get("/healthz").status == 200  # the server goes on serving


def test_a_webhook_body_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline(
    web_factory: Factory,
) -> None:
    web = web_factory(request_deadline=DEADLINE, timeout=10.0)
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()
    head = (b"POST /hooks/github HTTP/1.1\r\nHost: test\r\nX-GitHub-Event: push\r\n"
            b"X-Hub-Signature-256: sha256=" + webhooks.sign(body, HOOK_SECRET).encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    answer, took = trickle(web, head, body)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert DEADLINE - 0.2 < took < DEADLINE + 2.0
    assert web.triggers == []


def test_many_slow_connections_hold_at_most_the_bound_and_others_get_503_then_service(
    web_factory: Factory,
) -> None:
    web = web_factory(request_deadline=DEADLINE, timeout=10.0, max_connections=4,
                      busy_wait=0.2)
    before = handler_threads()
    slow = []
    for _ in range(10):
        sock = socket.create_connection(web.server.address)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: a")
        slow.append(sock)
    try:
        time.sleep(0.5)  # every connection accepted by now, the refused ones answered
        assert handler_threads() - before <= 4
        # A normal request meanwhile is refused as documented, not queued for good.
        host, port = web.server.address
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/healthz")
        busy = conn.getresponse()
        assert (busy.status, busy.getheader("Retry-After")) == (503, "1")
        assert b"too many connections" in busy.read()
        conn.close()
        answers = []
        for sock in slow:
            sock.settimeout(DEADLINE + 3)
            answers.append(sock.recv(65536).split(b"\r\n", 1)[0])
        assert answers.count(b"HTTP/1.1 408 Request Timeout") == 4, answers
        assert answers.count(b"HTTP/1.1 503 Service Unavailable") == 6, answers
    finally:
        for sock in slow:
            sock.close()
    # The slow ones are gone at their deadline: the next normal request is served.
    assert web.get("/healthz").status == 200
    assert handler_threads() - before <= 1


def test_event_streams_have_their_own_bound(web_factory: Factory) -> None:
    web = web_factory(max_streams=1)
    first = socket.create_connection(web.server.address)
    try:
        first.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: test\r\n\r\n")
        first.settimeout(5)
        assert first.recv(65536).startswith(b"HTTP/1.0 200 ")
        second = web.get("/api/v1/events")
        assert (second.status, second.headers.get("Retry-After")) == (503, "5")
        assert web.get("/api/v1/status").status == 200  # other requests are not held up
    finally:
        first.close()
    deadline = time.monotonic() + 5
    while web.app.hub.listeners and time.monotonic() < deadline:
        time.sleep(0.05)  # the closed stream is noticed at its next keep-alive
    third = socket.create_connection(web.server.address)
    with third:
        third.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: test\r\n\r\n")
        third.settimeout(5)
        assert third.recv(65536).startswith(b"HTTP/1.0 200 ")


@pytest.mark.parametrize("depth", [200_000])
def test_a_signed_deeply_nested_body_is_a_bad_request(web: Web, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    answer: Response = web.request("POST", "/hooks/github", body=body, headers={
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + webhooks.sign(body, HOOK_SECRET)})
    assert answer.status == 400
    assert json.loads(answer.body) == {"message": "body is not usable JSON: nested too deeply"}
    assert web.triggers == []
    assert web.get("/healthz").status == 200


def test_the_daemon_config_sets_the_limits(tmp_path: Path, state_repo: StateRepo) -> None:
    config = parse_config(
        f"repo: {state_repo.path}\nlisten: 127.0.0.1:0\npoll_interval: 1h\n"
        "drift_interval: 0\nhttp:\n  request_deadline: 1s\n  max_connections: 3\n"
        "  max_streams: 2\n", source="daemon.yaml")
    assert config.http == HttpConfig(request_deadline=1.0, max_connections=3, max_streams=2)
    daemon = Daemon(config, tmp_path / "daemon-data")
    daemon.start()
    try:
        served = Web(server=daemon._web, app=daemon._web.app, engine=daemon.engine,
                     repo=state_repo)
        answer, took = trickle(served, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: " + b"a" * 100)
        assert answer.startswith(b"HTTP/1.1 408 ") and took < 3.0
        assert (daemon._web.app.max_connections, daemon._web.app.max_streams) == (3, 2)
    finally:
        daemon.stop(timeout=30)


@pytest.mark.parametrize(("block", "error"), [
    ("http: {max_connections: 0}",
     "daemon.yaml:2: max_connections must be a whole number, 1 or more"),
    ("http: {max_connections: 4, max_streams: 8}",
     "daemon.yaml:2: max_streams must not exceed max_connections (4)"),
    ("http: {request_deadline: 0s}", "daemon.yaml:2: request_deadline must be at least 0.1s"),
    ("http: {max_conections: 4}", "did you mean 'max_connections'?"),
])
def test_bad_limits_are_refused_with_file_and_line(block: str, error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"repo: /srv/state\n{block}\n", source="daemon.yaml")
    assert error in str(raised.value)
