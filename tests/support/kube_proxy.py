"""A recording, fault-injecting HTTP proxy in front of a real kube-apiserver.

The tests talk to the proxy (plain HTTP on 127.0.0.1) and the proxy talks to the
real API server with the upstream's TLS and credentials. It does two things the
real server cannot:
- it records every request (method, path, query), so a test can prove that a
  no-op sync wrote nothing and count the calls a read costs;
- it answers chosen requests with a fault (429 with Retry-After, a 5xx, a
  dropped connection, a delay) before they reach the server, for a bounded
  number of times;
- it passes WATCH responses on as they stream, and can cut every open one
  (`cut_watches`), as a load balancer or a restarting server would.

Anything else comes from the real server, byte for byte.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.kube_cluster import kubeconfig

Match = Callable[[str, str, dict[str, str]], bool]
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                "proxy-authorization", "proxy-connection", "trailer", "host"}


@dataclass
class Upstream:
    """Where the proxy sends requests: https URL, TLS trust and client auth."""

    server: str
    headers: dict[str, str]
    context: ssl.SSLContext | None

    def connect(self) -> http.client.HTTPConnection:
        url = urlsplit(self.server)
        host, port = url.hostname or "127.0.0.1", url.port
        if url.scheme == "https":
            return http.client.HTTPSConnection(host, port or 443, timeout=60,
                                               context=self.context)
        return http.client.HTTPConnection(host, port or 80, timeout=60)


def upstream_from_kubeconfig(path: Path, context: str | None = None) -> Upstream:
    """The server, CA, client certificate and token of a kubeconfig, as the client loads them."""
    from kubernetes import client as k8s_client
    from kubernetes import config as _k8s_config

    k8s_config: Any = _k8s_config  # the loaders carry no annotations
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(path), context=context,
                                client_configuration=configuration, persist_config=False)
    tls: ssl.SSLContext | None = None
    if configuration.host.startswith("https"):
        tls = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if not configuration.verify_ssl:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            tls.load_cert_chain(configuration.cert_file, configuration.key_file)
    headers = {}
    settings: Any = configuration.auth_settings()
    for setting in settings.values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"]).title()] = str(setting["value"])
    return Upstream(server=configuration.host, headers=headers, context=tls)


@dataclass
class Fault:
    match: Match
    status: int = 0
    """The answer's status; 0 drops the connection without an answer."""
    headers: tuple[tuple[str, str], ...] = ()
    times: int = 1
    delay: float = 0.0
    """Seconds to wait before answering; with status -1 the request then goes upstream."""
    hits: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream: http.client.HTTPConnection | None = None

    def _serve(self) -> None:
        proxy = self.server.owner
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy.record(self.command, url.path, url.query)
        if proxy.before_request is not None:
            proxy.before_request(self.command, url.path, query)
        fault = proxy.take_fault(self.command, url.path, query)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.status > 0:
                self._answer(fault.status, list(fault.headers), _status_body(fault.status))
                return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in _HOP_HEADERS and k.lower() != "authorization"}
        auth = self.headers.get("Authorization")
        if auth == f"Bearer {proxy.token}":
            headers.update(proxy.upstream.headers)
        elif auth:
            # Someone else's credentials (a service account's, a bad token): the
            # real server judges them.
            headers["Authorization"] = auth
        if query.get("watch") in ("1", "true"):
            self._stream(self.path, headers)
            return
        status, reply_headers, data = self._forward(self.command, self.path, body, headers)
        self._answer(status, reply_headers, data)

    def _stream(self, path: str, headers: dict[str, str]) -> None:
        """A WATCH: its bytes go on as they come, on a connection of its own."""
        proxy = self.server.owner
        upstream = proxy.upstream.connect()
        upstream.timeout = None  # the watch's own timeoutSeconds ends it
        self.close_connection = True
        try:
            upstream.request("GET", path, headers=headers)
            reply = upstream.getresponse()
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in _HOP_HEADERS and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with proxy.streaming(self.connection, upstream):
                while True:
                    data = reply.read1(65536)
                    if not data:
                        break
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            pass  # cut, or the client went away: the connection closes either way
        finally:
            upstream.close()

    def _forward(self, method: str, path: str, body: bytes, headers: dict[str, str]
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            if self._upstream is None:
                self._upstream = self.server.owner.upstream.connect()
            try:
                self._upstream.request(method, path, body=body or None, headers=headers)
                reply = self._upstream.getresponse()
                data = reply.read()
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
                continue
            kept = [(k, v) for k, v in reply.getheaders()
                    if k.lower() not in _HOP_HEADERS and k.lower() != "content-length"]
            return reply.status, kept, data
        raise AssertionError("unreachable")

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if not any(k.lower() == "content-type" for k, _ in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _is_collection(path: str) -> bool:
    """/api/v1/configmaps, /api/v1/namespaces/x/configmaps, /apis/g/v/plural, ...:
    an even number of segments after the group-version names a collection."""
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    return len(rest) == 1


def _status_body(code: int) -> bytes:
    reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
              401: "Unauthorized", 504: "Timeout"}.get(code, "Unknown")
    return (f'{{"kind":"Status","apiVersion":"v1","status":"Failure","code":{code},'
            f'"reason":"{reason}","message":"injected by the test proxy: {reason}"}}').encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: KubeProxy


class KubeProxy:
    """Start with `KubeProxy.start(upstream)`; `stop()` when done.

    A client that sends `token` is sent on with the upstream's credentials; any
    other bearer token goes to the server as it is.
    """

    def __init__(self, upstream: Upstream, token: str = "proxy-token") -> None:
        self.upstream = upstream
        self.token = token
        self.requests: list[tuple[str, str, str]] = []
        self.before_request: Callable[[str, str, dict[str, str]], None] | None = None
        """Called with (method, path, query) before a request is forwarded: tests use it
        to change the cluster at a precise moment (between two pages of a LIST)."""
        self._faults: list[Fault] = []
        self._streams: set[tuple[socket.socket, http.client.HTTPConnection]] = set()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @classmethod
    def start(cls, upstream: Upstream, token: str = "proxy-token") -> KubeProxy:
        proxy = cls(upstream, token)
        proxy._thread.start()
        return proxy

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def write_kubeconfig(self, path: Path, *, token: str | None = None,
                         namespace: str = "default", context: str = "test") -> Path:
        path.write_text(kubeconfig(self.url, token or self.token, ca_file=None,
                                   namespace=namespace, context=context))
        return path

    # --- records ------------------------------------------------------------------

    def record(self, method: str, path: str, query: str) -> None:
        with self._lock:
            self.requests.append((method, path, query))

    def counts(self) -> Counter[str]:
        """Requests by method ("GET", "PATCH", "PATCH dryRun", ...)."""
        out: Counter[str] = Counter()
        with self._lock:
            for method, _, query in self.requests:
                out[method + (" dryRun" if "dryRun=" in query else "")] += 1
        return out

    def writes(self) -> list[tuple[str, str, str]]:
        """Requests that change something: writes without dryRun."""
        with self._lock:
            return [r for r in self.requests if r[0] != "GET" and "dryRun=" not in r[2]]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def lists(self) -> list[tuple[str, str, str]]:
        """The LISTs among the requests: GETs of a collection, not WATCHes (a
        read of one object names it, discovery names no resource)."""
        with self._lock:
            return [r for r in self.requests if r[0] == "GET" and "watch=" not in r[2]
                    and _is_collection(r[1])]

    def watches(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return [r for r in self.requests if r[0] == "GET" and "watch=" in r[2]]

    # --- streams ------------------------------------------------------------------

    @contextlib.contextmanager
    def streaming(self, client: socket.socket, upstream: http.client.HTTPConnection
                  ) -> Iterator[None]:
        entry = (client, upstream)
        with self._lock:
            self._streams.add(entry)
        try:
            yield
        finally:
            with self._lock:
                self._streams.discard(entry)

    def open_watches(self) -> int:
        with self._lock:
            return len(self._streams)

    def cut_watches(self) -> int:
        """Drop every WATCH in flight, both ways, without a clean end; how many."""
        with self._lock:
            streams = list(self._streams)
        for client, upstream in streams:
            for sock in (client, upstream.sock):
                with contextlib.suppress(OSError, AttributeError):
                    sock.shutdown(socket.SHUT_RDWR)
        return len(streams)

    # --- faults -------------------------------------------------------------------

    def fault(self, match: Match, status: int, *, times: int = 1, delay: float = 0.0,
              headers: tuple[tuple[str, str], ...] = ()) -> Fault:
        """Answer the next `times` requests that `match` with `status` (0: drop the
        connection; -1: only delay them, then forward)."""
        made = Fault(match=match, status=status, headers=headers, times=times, delay=delay)
        with self._lock:
            self._faults.append(made)
        return made

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str, query: dict[str, str]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits < fault.times and fault.match(method, path, query):
                    fault.hits += 1
                    return fault
        return None
