"""Real HTTP servers on 127.0.0.1 for tests, each on a free port in a daemon thread.

`LocalServer(handler)` serves any request handler class and stops on `close()`
(or at the end of a `with` block). `Forge` is the one the commit-status tests
talk to: it records every POST and answers from a script, and the `forge`
fixture gives a test a fresh one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access-log lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalServer:
    """`handler` served by a ThreadingHTTPServer on 127.0.0.1 until `close()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, poll: float = 0.02) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(poll,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


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


class Forge(LocalServer):
    """Answers the queued replies in order, then `default`; records every request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self._lock = threading.Lock()
        forge = self

        class Handler(QuietHandler):
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

        super().__init__(Handler)


@pytest.fixture
def forge() -> Iterator[Forge]:
    with Forge() as server:
        yield server
