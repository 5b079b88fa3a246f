"""A real HTTP server on 127.0.0.1 that records every request and answers from a script."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.reporters import http


@dataclass(frozen=True, kw_only=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, kw_only=True)
class Reply:
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"id": 1}'


class Forge:
    """Answers the queued replies in order, then `default`; records every request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self._lock = threading.Lock()
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with forge._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    forge.requests.append(Recorded(
                        method="POST", path=self.path, headers=headers, body=body))
                    reply = forge.replies.pop(0) if forge.replies else forge.default
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def forge() -> Iterator[Forge]:
    server = Forge()
    yield server
    server.close()


class Sleeps:
    """Records the waits a client asks for instead of taking them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> http.Client:
    policy = http.RetryPolicy(attempts=4, base_delay=0.01, max_delay=5.0, timeout=5.0)
    return http.Client(policy=policy, sleep=sleeps)


@dataclass(frozen=True, kw_only=True)
class Status:
    """Shaped like reporters.CommitStatus."""

    sha: str = "3f786850e387550fdab836ed7e6dc881de23001b"
    context: str = "reconciler/deploy"
    state: str = "success"
    description: str = "deployed: 2 created, 1 changed, 0 deleted"
    target_url: str | None = "https://deploy.example.com/deploys/7"
