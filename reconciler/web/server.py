"""The HTTP server of `reconciler run`: status page, JSON API, SSE, metrics, probes, webhooks.

A `ThreadingHTTPServer` from the standard library, no framework: the surface
is a dozen GET routes and three POST receivers (`routes.ROUTES`). `WebApp`
holds what requests read (a `StatusSource`, the metrics, the SSE hub, the page
credentials, webhook secrets); `WebApp.feed` is the EventBus listener that
moves the live rollout, the metrics and every open page. `start(daemon,
listen)` is the hook `reconciler.daemon.service` calls.

Invariants:
- Read-only: no route changes anything except the webhook receivers, which only
  ask the daemon to fetch (after `reconciler.webhooks.handle` checked the
  signature); every other method answers 405 with an `Allow` header.
- No secret in any response: pages and JSON are built from the status source
  (no resource bodies; diffs redacted at the source; messages masked by the
  engine), webhook answers carry `WebhookResult.message` only, and page
  credentials are never echoed. Pages and JSON are masked once more on the way
  out (`WebApp.redact`), which covers history written before masking existed.
- A request that fails inside renders a 500 page with no detail; the server
  keeps serving, and a listener failure never reaches the engine.
- Bounded: a whole request (request line, headers and body) must arrive
  within `WebApp.request_deadline` of the connection, however slowly it
  trickles (408, then the connection closes); at most `max_connections`
  connections are served at once, event streams among them (at most
  `max_streams` of those); beyond that a connection waits `busy_wait` for a
  slot, then gets 503 with `Retry-After`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler import webhooks
from reconciler.events import Event, EventKind
from reconciler.history.text import safe_text
from reconciler.outcomes import DeployResult
from reconciler.web import api, pages, routes
from reconciler.web.auth import PageAuth
from reconciler.web.events_stream import Hub, deploy_topic, format_message
from reconciler.web.layout import SCRIPT_HASH
from reconciler.web.live import RolloutTracker
from reconciler.web.metrics import Metrics
from reconciler.web.seam import DaemonView
from reconciler.web.status import CommitView, StatusSource

log = logging.getLogger(__name__)

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Inline style and the one inline script (by its hash) only; nothing
    # external, no forms: injected markup could not run a script of its own.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src {SCRIPT_HASH}; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
_DRAIN_LIMIT = 32 * 1024 * 1024
HTML = "text/html; charset=utf-8"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(kw_only=True)
class WebApp:
    source: StatusSource
    tracker: RolloutTracker
    metrics: Metrics = field(default_factory=Metrics)
    hub: Hub = field(default_factory=Hub)
    auth: PageAuth = field(default_factory=PageAuth)
    hook_secrets: Mapping[str, str | None] = field(default_factory=dict)
    """Provider name -> shared secret; a provider without one refuses every delivery."""
    on_webhook: Callable[[webhooks.Trigger], None] = lambda _trigger: None
    redact: Callable[[str], str] = lambda text: text
    """Masks secret values in pages and JSON (the engine's `EventBus.secrets.redact`)."""
    keepalive: float = 15.0
    timeout: float = 30.0
    """Seconds a connection may block on one write (or read): a client that stops
    reading its event stream frees its thread then."""
    request_deadline: float = 30.0
    """Seconds from a connection's start until its whole request (request line,
    headers, body) has arrived: a client trickling bytes is cut off then (408)."""
    max_connections: int = 64
    """Connections served at once (one thread each), event streams included."""
    max_streams: int = 32
    """Of those, open event streams: pages left open never take every thread."""
    busy_wait: float = 0.5
    """Seconds a new connection waits for a free slot before its 503."""
    deploys_shown: int = 20
    _streams: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._streams = threading.BoundedSemaphore(max(1, self.max_streams))

    def open_stream(self) -> bool:
        """Take an event-stream slot if one is free; `close_stream` gives it back."""
        return self._streams.acquire(blocking=False)

    def close_stream(self) -> None:
        self._streams.release()

    def feed(self, event: Event) -> None:
        """The EventBus listener: live rollout first, then metrics, then open pages."""
        self.tracker(event)
        self.metrics.observe(event)
        names = ["rollout"]
        if event.kind in (EventKind.DEPLOY_STARTED, EventKind.DEPLOY_FINISHED):
            names += ["deploys", "targets"]
        self.hub.publish("update", lambda: self.update(event, names))
        # The deploy's own page, if one is open; its last update ends its streams.
        self.hub.publish("update", lambda: self.deploy_update(event.deploy_id, event),
                         topic=deploy_topic(event.deploy_id),
                         last=event.kind is EventKind.DEPLOY_FINISHED)

    def update(self, event: Event | None, names: list[str]) -> dict[str, Any]:
        """An SSE payload: fresh HTML of the named page sections."""
        sections: dict[str, str] = {}
        for name in names:
            if name == "rollout":
                sections["rollout"] = pages.rollout_section(self.tracker.state)
            elif name == "deploys":
                records = self.source.deploys(self.deploys_shown)
                sections["deploys"] = pages.deploys_section(records, self.commits(records))
            elif name == "targets":
                sections["targets"] = pages.targets_section(self.source.overview())
        return {"kind": event.kind.value if event else "hello",
                "deploy_id": event.deploy_id if event else None,
                "sections": {k: self.redact(v) for k, v in sections.items()}}

    def deploy_update(self, deploy_id: int, event: Event | None) -> dict[str, Any]:
        """An SSE payload for a deploy page; "final" once the deploy has finished
        (the history records the end before DEPLOY_FINISHED is emitted) or when
        no such deploy exists, so the page stops listening."""
        record = self.source.deploy(deploy_id)
        sections = {} if record is None else pages.deploy_sections(
            record, self.source.commit(record.revision), self.tracker.state)
        final = record is None or record.result != DeployResult.RUNNING or (
            event is not None and event.kind is EventKind.DEPLOY_FINISHED)
        return {"kind": event.kind.value if event else "hello", "deploy_id": deploy_id,
                "sections": {k: self.redact(v) for k, v in sections.items()}, "final": final}

    def commits(self, records: Any) -> dict[str, CommitView]:
        found = {r.revision: self.source.commit(r.revision) for r in records}
        return {sha: c for sha, c in found.items() if c is not None}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    app: WebApp
    slots: threading.BoundedSemaphore
    saturated: threading.Event
    """Set once a connection waited `busy_wait` in vain; later ones are refused at
    once until a slot frees, so a flood is not answered one wait at a time."""

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._admit():
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _admit(self) -> bool:
        if self.slots.acquire(blocking=False):
            return True
        if self.saturated.is_set():
            return False
        if self.slots.acquire(timeout=self.app.busy_wait):
            return True
        self.saturated.set()
        return False

    def _release(self) -> None:
        self.slots.release()
        self.saturated.clear()

    def _refuse_busy(self, request: socket.socket) -> None:
        """503 on the accepting thread, without a handler thread: whatever the client
        sent already is read first, so closing does not reset the answer away."""
        try:
            request.settimeout(0.05)  # a request sent with the connect is there by now
            with contextlib.suppress(OSError):
                request.recv(65536)
            request.settimeout(0.2)
            request.sendall(_raw_answer(
                503, b"busy: too many connections, retry shortly\n", {"Retry-After": "1"}))
        except OSError:
            pass
        finally:
            self.shutdown_request(request)


class _Server6(_Server):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "reconciler"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        app = self.server.app
        # Read per connection (not the class-wide `timeout`), so tests can
        # shorten it on a running server.
        self.connection.settimeout(app.timeout)
        # A timeout per read alone lets a client sending a byte a second hold
        # the thread for good: every read of the request shares one deadline.
        self.rfile.close()
        self._reader = _DeadlineReader(self.connection, app.timeout,
                                       time.monotonic() + app.request_deadline)
        self.rfile = io.BufferedReader(self._reader)
        self._answered = False

    def handle(self) -> None:
        super().handle()
        if self._reader.expired and not self._answered:
            self._answered = True
            seconds = f"{self.server.app.request_deadline:g}"
            with contextlib.suppress(OSError):
                self.connection.settimeout(1.0)
                self.wfile.write(_raw_answer(
                    408, f"request not received within {seconds} s\n".encode()))

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up `do_<METHOD>` and answers 501 when it is
        # missing; every method (TRACE, PROPFIND, ...) goes through the route
        # table instead, so a known path answers 405 with its Allow header.
        if name.startswith("do_") and len(name) > 3:
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    # --- dispatch ----------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        self.close_connection = True
        app = self.server.app
        match = routes.resolve(method, urlsplit(self.path).path)
        if match is None:
            return self._page(404, "No such page.")
        if not match.allowed:
            return self._send(405, b"method not allowed\n", TEXT, {"Allow": match.allow_header})
        if not match.route.public and not app.auth.allows(self.headers.get("Authorization")):
            return self._send(401, b"authentication required\n", TEXT,
                              {"WWW-Authenticate": app.auth.challenge()})
        try:
            getattr(self, f"_r_{match.route.name}")(app, **match.params)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client went away or stalled past `WebApp.timeout`
        except Exception:
            log.exception("request failed: %s %s", method, match.route.name)
            self._page(500, "Something went wrong; the log has the details.")

    def _send(self, status: int, body: bytes, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**_SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, status: int, message: str) -> None:
        self._send(status, safe_text(pages.error_page(status, message)).encode(), HTML)

    def _html(self, text: str) -> None:
        # A name from a git tree may hold a byte that is not UTF-8 (a lone
        # surrogate here): shown escaped, as the history stores it, never a 500.
        self._send(200, safe_text(self.server.app.redact(text)).encode(), HTML)

    def _json(self, value: Any, status: int = 200) -> None:
        text = api.dumps(value).decode()
        self._send(status, self.server.app.redact(text).encode(), JSON)

    # --- pages -------------------------------------------------------------

    def _r_index(self, app: WebApp) -> None:
        records = app.source.deploys(app.deploys_shown)
        self._html(pages.index(app.source.overview(), app.source.rollout(), records,
                               app.commits(records)))

    def _r_deploy_page(self, app: WebApp, id: str) -> None:
        record = app.source.deploy(int(id))
        if record is None:
            return self._page(404, f"No deploy #{id}.")
        site = pages.site_of(app.source.overview())
        self._html(pages.deploy_page(record, app.source.commit(record.revision), site,
                                     app.tracker.state))

    def _r_plan_page(self, app: WebApp, sha: str) -> None:
        record = app.source.plan(sha)
        if record is None:
            return self._page(404, "No plan is stored for this commit (yet).")
        self._html(pages.plan_page(record, pages.site_of(app.source.overview())))

    def _r_commit_page(self, app: WebApp, sha: str) -> None:
        deploy_id = app.source.deploy_for_commit(sha)
        if deploy_id is not None:
            location = f"/deploys/{deploy_id}"
        elif app.source.plan(sha) is not None:
            location = f"/plans/{sha}"
        else:
            return self._page(404, "Nothing is known about this commit yet.")
        self._send(303, b"", TEXT, {"Location": location})

    # --- JSON --------------------------------------------------------------

    def _r_api_status(self, app: WebApp) -> None:
        self._json(api.status(app.source.overview(), app.source.rollout()))

    def _r_api_deploys(self, app: WebApp) -> None:
        records = app.source.deploys(app.deploys_shown)
        self._json(api.deploys(records, app.commits(records)))

    def _r_api_deploy(self, app: WebApp, id: str) -> None:
        record = app.source.deploy(int(id))
        if record is None:
            return self._json({"error": f"no deploy #{id}"}, 404)
        self._json(api.deploy_json(record, app.source.commit(record.revision), events=True))

    def _r_api_plan(self, app: WebApp, sha: str) -> None:
        record = app.source.plan(sha)
        if record is None:
            return self._json({"error": "no plan stored for this commit"}, 404)
        self._json(dict(record))

    def _r_api_events(self, app: WebApp) -> None:
        # `?deploy=<id>`: one deploy's page; no parameter: the status page.
        wanted = parse_qs(urlsplit(self.path).query).get("deploy", [""])[-1]
        if wanted and not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 18):
            return self._send(400, b"deploy must be a deploy id\n", TEXT)
        deploy_id = int(wanted) if wanted else None
        if not app.open_stream():
            return self._send(503, b"busy: too many open event streams\n", TEXT,
                              {"Retry-After": "5"})
        try:
            self._stream(app, deploy_id)
        finally:
            app.close_stream()

    def _stream(self, app: WebApp, deploy_id: int | None) -> None:
        self.send_response(200)
        for name, value in {**_SECURITY_HEADERS, "Content-Type": "text/event-stream",
                            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        topic = "" if deploy_id is None else deploy_topic(deploy_id)
        subscription = app.hub.subscribe(topic)
        try:
            # A page that connects mid-rollout catches up at once. Subscribed
            # first: an update published meanwhile is queued, not lost.
            hello = (app.update(None, ["rollout"]) if deploy_id is None
                     else app.deploy_update(deploy_id, None))
            self.wfile.write(b"retry: 2000\n\n" + format_message("update", hello))
            self.wfile.flush()
            if hello.get("final"):
                return  # nothing will change any more: the page closes its stream
            for message in subscription.messages(app.keepalive):
                self.wfile.write(message)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away
        finally:
            subscription.close()

    # --- operations --------------------------------------------------------

    def _r_metrics(self, app: WebApp) -> None:
        self._send(200, app.metrics.render(),
                   "text/plain; version=0.0.4; charset=utf-8")

    def _r_healthz(self, app: WebApp) -> None:
        self._send(200, b"ok\n", TEXT)

    def _r_readyz(self, app: WebApp) -> None:
        reason = app.source.unready_reason()
        if reason is None:
            self._send(200, b"ready\n", TEXT)
        else:
            self._send(503, f"not ready: {reason}\n".encode(), TEXT)

    def _r_webhook(self, app: WebApp, provider: str) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._json({"message": "a Content-Length is required"}, 411)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._json({"message": "bad Content-Length"}, 400)
        if length > webhooks.MAX_BODY:  # refused unparsed, never held in memory
            self._discard(length)
            return self._json({"message": f"body larger than {webhooks.MAX_BODY} bytes"}, 413)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k: v for k, v in self.headers.items()}
        result = webhooks.handle(provider, headers, body, app.hook_secrets.get(provider))
        if result.trigger is not None:
            app.on_webhook(result.trigger)
        self._json({"message": result.message}, result.status_code)


    def _discard(self, length: int) -> None:
        """Read and drop a refused body (up to a cap), so the sender sees our answer
        instead of a reset connection; beyond the cap the connection just closes."""
        left = min(length, _DRAIN_LIMIT)
        with contextlib.suppress(TimeoutError):  # the request deadline bounds this too
            while left > 0:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)


class _DeadlineReader(io.RawIOBase):
    """The connection's reads, each bounded by what is left of one deadline."""

    def __init__(self, sock: socket.socket, per_read: float, deadline: float) -> None:
        self._sock = sock
        self._per_read = per_read
        self._deadline = deadline
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(min(self._per_read, left))
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.expired = time.monotonic() >= self._deadline
            raise
        finally:
            self._sock.settimeout(self._per_read)


def _raw_answer(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """A whole response written without the handler (no parsed request to answer)."""
    reason = {408: "Request Timeout", 503: "Service Unavailable"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close",
             f"Content-Type: {TEXT}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in {**_SECURITY_HEADERS, **(headers or {})}.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class WebServer:
    """A running server: `address` once started, `stop()` to end it (and its streams)."""

    def __init__(self, app: WebApp, listen: str) -> None:
        host, port = parse_listen(listen)
        server_class = _Server6 if ":" in host else _Server
        self.app = app
        self._httpd = server_class((host, port), Handler)
        self._httpd.app = app
        self._httpd.slots = threading.BoundedSemaphore(max(1, app.max_connections))
        self._httpd.saturated = threading.Event()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="web",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._on_stop: list[Callable[[], None]] = []

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._on_stop.append(callback)

    def start(self) -> WebServer:
        self._thread.start()
        log.info("status page listening on %s", self.url)
        return self

    def stop(self) -> None:
        for callback in self._on_stop:
            callback()
        self.app.hub.close()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start(daemon: DaemonView, listen: str) -> WebServer:
    """The daemon's hook: serve `daemon` on `listen` and follow its engine's events."""
    from reconciler.web import wiring  # the daemon-facing half, imported only here

    app = wiring.daemon_app(daemon)
    server = WebServer(app, listen)
    server.on_stop(daemon.events.subscribe(app.feed))
    return server.start()
