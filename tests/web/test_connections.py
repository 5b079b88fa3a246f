"""Connections that go away or stall: no server thread is held by a gone client."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from tests.web.conftest import Web


def _open_events(web: Web, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(web.server.address)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


def _until(check: Callable[[], bool], timeout: float) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "condition not met"
        time.sleep(0.05)
    return time.monotonic() - began


def test_a_closed_event_stream_is_unsubscribed(web: Web) -> None:
    sock = _open_events(web)
    sock.settimeout(5)
    seen = b""
    while b"event: update" not in seen:  # the headers and the first message may come apart
        seen += sock.recv(65536)
    assert web.app.hub.listeners == 1
    sock.close()
    # Found at the next keep-alive write (0.5 s in these tests).
    _until(lambda: web.app.hub.listeners == 0, timeout=5)


def test_a_stream_whose_client_stops_reading_is_dropped_after_the_timeout(web: Web) -> None:
    web.app.timeout = 1.0
    sock = _open_events(web, receive_buffer=4096)
    try:
        _until(lambda: web.app.hub.listeners == 1, timeout=5)
        big = {"sections": {"rollout": "x" * 400_000}}
        for _ in range(20):  # more than any socket buffer holds: the writer blocks
            web.app.hub.publish("update", big)
            time.sleep(0.02)
        _until(lambda: web.app.hub.listeners == 0, timeout=10)
    finally:
        sock.close()


def test_a_webhook_body_that_never_arrives_frees_the_connection(web: Web) -> None:
    web.app.timeout = 1.0
    with socket.create_connection(web.server.address) as sock:
        sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n"
                     b"X-GitHub-Event: push\r\n\r\n{\"ref\":")
        sock.settimeout(10)
        began = time.monotonic()
        while sock.recv(65536):
            pass  # the server closes the connection
        assert time.monotonic() - began < 5
    assert web.triggers == []
