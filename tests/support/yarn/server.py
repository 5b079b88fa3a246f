"""The YARN test server: `ServiceApi` over real HTTP on 127.0.0.1, with the
controls tests use (seed, advance, doom, fail) and a log of every request.

Requests are checked the way a ResourceManager in front of the API checks
them: a bearer token when `token` is set, `?user.name=` when `require_user`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.yarn.api import ServiceApi
from tests.support.yarn.records import ROOT, HttpAnswer, resolve


class YarnServer(ServiceApi):
    """Start with `start()`, point a target's `url` at `url`, `stop()` after."""

    def __init__(
        self,
        *,
        token: str | None = None,
        require_user: bool = False,
        list_services: bool = False,
        auto_advance: bool = True,
    ) -> None:
        super().__init__(list_services=list_services, auto_advance=auto_advance)
        self.token = token
        self.require_user = require_user
        self.requests: list[tuple[str, str]] = []
        self.users: list[str | None] = []
        self.authorizations: list[str | None] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> YarnServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> YarnServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- test controls ------------------------------------------------------

    def seed(self, spec: Mapping[str, Any], *, state: str = "STABLE") -> None:
        """Put a service in place without a request: STABLE with READY containers."""
        with self._lock:
            svc = self._add(resolve(spec), "ACCEPTED")
            for _ in range(5 if state != "ACCEPTED" else 0):
                svc.step()
            if state in ("STOPPED", "FAILED"):
                svc.state = state
                if state == "STOPPED":
                    svc.containers = {k: [] for k in svc.containers}
                else:
                    svc.fail()

    def advance(self, name: str, steps: int = 1) -> str:
        with self._lock:
            svc = self._services[name]
            for _ in range(steps):
                svc.step()
            return svc.state

    def settle(self, name: str, limit: int = 20) -> str:
        """Step until the service stops changing state (STABLE, FAILED, ...)."""
        return self.advance(name, limit)

    def fail(self, name: str) -> None:
        with self._lock:
            self._services[name].fail()

    def doom(self, name: str) -> None:
        """Make `name` (existing now or created later) fail at its next step."""
        with self._lock:
            self._doomed.add(name)
            if name in self._services:
                self._services[name].doomed = True

    def service(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            svc = self._services.get(name)
            return svc.render() if svc else None

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for m, p in list(self.requests)
            if (method is None or m == method) and (path is None or p == path)
        )

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in list(self.requests) if m != "GET"]

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter(self.requests)

    def reset(self) -> None:
        self.requests.clear()
        self.users.clear()
        self.authorizations.clear()

    # --- the API ------------------------------------------------------------

def _handler(server: YarnServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests assert on `server.requests` instead."""

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            server.requests.append((method, split.path))
            user = parse_qs(split.query).get("user.name", [None])[0]
            server.users.append(user)
            server.authorizations.append(self.headers.get("Authorization"))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    raise HttpAnswer(401, "Authentication required")
                if server.require_user and not user:
                    raise HttpAnswer(401, "Authentication required: user.name is missing")
                if not split.path.startswith(ROOT):
                    raise HttpAnswer(404, "Not Found")
                parts = [unquote(p) for p in split.path[len(ROOT) :].split("/") if p]
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError:
                    raise HttpAnswer(400, "Malformed JSON") from None
                status, answer = server.handle(method, parts, body)
            except HttpAnswer as err:
                status, answer = err.status, err.body
            data = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler
