"""An HTTP proxy on 127.0.0.1 in front of a real ResourceManager, for the faults
the RM itself cannot be made to show, and for counting the requests a test made.

Forwards every request unchanged to `upstream` and records it (method, path,
`user.name`, JSON body). On command it:
- goes down (`down()`: the port refuses connections) and comes back (`up()`,
  on the same port),
- answers with an error status instead of forwarding (`fail(503, times=2)`),
- answers late (`slow(seconds)`),
- plays an authenticating proxy (`token=`): requests without
  `Authorization: Bearer <token>` get 401. The Authorization header is never
  passed on to the RM.

Invariants: it listens on 127.0.0.1 only; it never follows redirects (a 3xx
from the RM reaches the client as it is); `requests` lists every request the
proxy received, faulted or not, in order.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

_HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "authorization",
                "proxy-connection", "content-length"}


@dataclass(frozen=True, kw_only=True)
class ProxiedRequest:
    method: str
    path: str
    """Without the query string."""
    user: str | None
    """The `user.name` query parameter."""
    authorization: str | None
    body: Any
    """Parsed JSON body, None when there was none."""
    faulted: bool
    """True when the proxy answered itself instead of forwarding."""


@dataclass
class _Fault:
    status: int
    times: int | None
    method: str | None
    path_prefix: str | None
    message: str

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class YarnProxy:
    """`YarnProxy(upstream).start()`; `.url` is what a backend should use."""

    def __init__(self, upstream: str, *, token: str | None = None, timeout: float = 60.0):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.token = token
        self.timeout = timeout
        self.requests: list[ProxiedRequest] = []
        self.delay = 0.0
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        self._serve()
        return self

    def _serve(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections to the port are refused until `up()`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def up(self) -> None:
        if self._server is None:
            self._serve()

    def stop(self) -> None:
        self.down()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- faults --------------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        *,
        times: int | None = None,
        method: str | None = None,
        path_prefix: str | None = None,
        message: str = "injected by the test proxy",
    ) -> None:
        """Answer matching requests with `status` (all of them, or the next `times`)."""
        with self._lock:
            self._faults.append(_Fault(status, times, method, path_prefix, message))

    def slow(self, seconds: float) -> None:
        """Wait `seconds` before forwarding each request (0 to stop)."""
        self.delay = seconds

    def heal(self) -> None:
        """No more faults or delay (and listening again if down)."""
        with self._lock:
            self._faults.clear()
        self.delay = 0.0
        self.up()

    # --- the request log -----------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def writes(self, *, path_prefix: str = "") -> list[tuple[str, str]]:
        """(method, path) of every request that is not a GET."""
        with self._lock:
            return [
                (r.method, r.path)
                for r in self.requests
                if r.method != "GET" and r.path.startswith(path_prefix)
            ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            )

    def users(self) -> set[str | None]:
        with self._lock:
            return {r.user for r in self.requests}

    # --- forwarding ----------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(split.query)
        auth = handler.headers.get("Authorization")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        fault = self._take_fault(handler.command, split.path)
        if fault is None and self.token is not None and auth != f"Bearer {self.token}":
            fault = _Fault(401, None, None, None, "missing or wrong bearer token")
        with self._lock:
            self.requests.append(
                ProxiedRequest(
                    method=handler.command,
                    path=split.path,
                    user=query["user.name"][0] if query.get("user.name") else None,
                    authorization=auth,
                    body=body,
                    faulted=fault is not None,
                )
            )
        if self.delay:
            time.sleep(self.delay)
        if fault is not None:
            payload = json.dumps({"diagnostics": fault.message}).encode()
            self._reply(handler, fault.status, {"Content-Type": "application/json"}, payload)
            return
        try:
            status, headers, payload = self._forward(handler, raw)
        except (OSError, http.client.HTTPException) as err:
            payload = json.dumps({"diagnostics": f"proxy: upstream failed: {err}"}).encode()
            self._reply(handler, 502, {"Content-Type": "application/json"}, payload)
            return
        self._reply(handler, status, headers, payload)

    def _forward(
        self, handler: BaseHTTPRequestHandler, raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port,
                                          timeout=self.timeout)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
            conn.request(handler.command, handler.path, body=raw or None, headers=headers)
            reply = conn.getresponse()
            payload = reply.read()
            out = {k: v for k, v in reply.getheaders() if k.lower() not in _HOP_HEADERS}
            return reply.status, out, payload
        finally:
            conn.close()

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes
    ) -> None:
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(payload)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        handler.close_connection = True
