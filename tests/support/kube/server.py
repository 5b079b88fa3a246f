"""HTTP for the test API server: bearer auth, routing, request records."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ruamel.yaml import YAML

from tests.support.kube.api import Api
from tests.support.kube.objects import BUILTINS, HttpError, Obj, status_object


def _parse_body(raw: bytes, content_type: str) -> Obj:
    if not raw:
        return {}
    yaml = "yaml" in content_type
    parsed = YAML(typ="safe").load(raw.decode()) if yaml else json.loads(raw)
    if not isinstance(parsed, dict):
        raise HttpError(400, "BadRequest", "the body must be an object")
    return parsed


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counters
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without NODELAY, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        owner = self.server.owner
        owner.record(self.command, url.path, url.query)
        if owner.before_request is not None:
            owner.before_request(self.command, url.path, query)
        try:
            if self.headers.get("Authorization") != f"Bearer {owner.token}":
                raise HttpError(401, "Unauthorized", "Unauthorized")
            body = _parse_body(raw, self.headers.get("Content-Type") or "")
            code, answer = owner.dispatch(self.command, url.path, query, body,
                                          self.headers.get("Content-Type") or "")
        except HttpError as exc:
            code, answer = exc.code, status_object(exc.code, exc.reason, exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            code, answer = 400, status_object(400, "BadRequest", f"bad request: {exc}")
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: KubeApiServer


class KubeApiServer:
    """Start with `KubeApiServer.start()`; `stop()` when done."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.api = Api()
        self.requests: list[tuple[str, str, str]] = []
        self.unavailable: set[str] = set()
        self.before_request: Callable[[str, str, dict[str, str]], None] | None = None
        """Called with (method, path, query) before each request is served: tests use
        it to change the cluster at a precise moment (between two pages of a LIST)."""
        """Group-versions ("metrics.k8s.io/v1beta1") whose discovery answers 503, as an
        aggregated API does while its server is down."""
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        # The namespaces every cluster starts with.
        for ns in ("default", "kube-system"):
            self.api.write(BUILTINS[0], "", ns, {"metadata": {"name": ns}}, old=None, dry_run=False)

    @classmethod
    def start(cls, token: str = "test-token") -> KubeApiServer:
        server = cls(token)
        server._thread.start()
        return server

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, method: str, path: str, query: str) -> None:
        with self.api.lock:
            self.requests.append((method, path, query))

    def counts(self) -> Counter[str]:
        """Requests by method ("GET", "PATCH", "PATCH dryRun", ...)."""
        out: Counter[str] = Counter()
        for method, _, query in self.requests:
            out[method + (" dryRun" if "dryRun=" in query else "")] += 1
        return out

    def writes(self) -> list[tuple[str, str, str]]:
        """Requests that change something: writes without dryRun."""
        return [r for r in self.requests if r[0] != "GET" and "dryRun=" not in r[2]]

    def reset_counts(self) -> None:
        with self.api.lock:
            self.requests.clear()

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Obj,
                 content_type: str) -> tuple[int, Obj]:
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            if "/".join(parts[1:3] if parts[:1] == ["apis"] else parts[1:2]) in self.unavailable:
                raise HttpError(503, "ServiceUnavailable", "the server is currently unable "
                                "to handle the request")
            doc = self.api.discovery(parts)
            if doc is not None:
                return 200, doc
        kind, namespace, name, sub = self.api.route(parts)
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager", "test-controller")
        if method == "GET":
            if name:
                return 200, self.api.get(kind, namespace, name)
            limit = int(query.get("limit") or 0)
            if limit < 0:
                raise HttpError(400, "BadRequest", "limit must not be negative")
            return 200, self.api.list(kind, namespace, query.get("labelSelector", ""),
                                      limit=limit, token=query.get("continue", ""))
        if method == "POST" and not name:
            return 201, self.api.create(kind, namespace, body, manager, dry_run)
        if method == "PATCH" and "apply-patch" in content_type and not sub:
            if not body.get("apiVersion") or not body.get("kind"):
                raise HttpError(400, "BadRequest", "apiVersion and kind must be set")
            force = query.get("force") == "true"
            return 200, self.api.apply(kind, namespace, name, body, manager=manager, force=force,
                                       dry_run=dry_run)
        if method in ("PATCH", "PUT") and name:
            if method == "PATCH" and "merge-patch" not in content_type:
                raise HttpError(415, "UnsupportedMediaType", f"unsupported patch {content_type}")
            return 200, self.api.update(kind, namespace, name, body, merge=method == "PATCH",
                                        manager=manager, subresource=sub, dry_run=dry_run)
        if method == "DELETE" and name:
            return 200, self.api.delete(kind, namespace, name, body, dry_run)
        raise HttpError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    # --- helpers for tests that play the controllers ------------------------------------

    def write_kubeconfig(
        self, path: Path, *, context: str = "test", namespace: str = "default"
    ) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "test", "user": "test",
                                                         "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    def patch_status(self, path: str, status: Obj) -> Obj:
        """Merge `status` into the object at `path` through its /status subresource, over HTTP."""
        request = urllib.request.Request(
            f"{self.url}{path}/status", method="PATCH",
            data=json.dumps({"status": status}).encode(),
            headers={"Content-Type": "application/merge-patch+json",
                     "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: Obj = json.loads(response.read())
        return answer
