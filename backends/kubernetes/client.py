"""The one HTTP seam of the Kubernetes backend: raw JSON requests to the API server.

Why raw requests instead of the typed API classes: the backend handles arbitrary
kinds (custom resources included) as plain mappings, and server-side apply needs
the `application/apply-patch+yaml` content type, which the typed classes do not
cover for every kind. The official client still does the hard parts: kubeconfig
and in-cluster loading, TLS, client certificates, bearer tokens, token refresh.

Invariants:
- Every target gets its own `Configuration`; the client's global default
  configuration is never read or written, so several clusters can be open at once.
- Every failure is an `ApiError` that names the object; the server's message is
  left out for Secrets, because validation errors may echo submitted values.
- Request bodies are never logged.
- Transient faults are retried the way client-go's `rest.Request` retries them
  (see `RetryPolicy`), each retry logged at INFO with method, object and reason,
  all of it within one deadline per request. A WATCH (`watch`) is never
  retried here: whoever holds it resumes or re-lists, as an informer does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config
from urllib3 import exceptions as urllib3_errors

from reconciler.errors import ApiError, BackendError

# The client's config loaders and REST responses carry no annotations.
k8s_config: Any = _k8s_config

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
FIELD_MANAGER = "reconciler"

Query = Sequence[tuple[str, str]]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    body: Mapping[str, Any]


def load_configuration(
    *, kubeconfig: str | None, context: str | None, in_cluster: bool
) -> k8s_client.Configuration:
    """A fresh Configuration for one target, never the process-wide default."""
    configuration = k8s_client.Configuration()
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (k8s_config.ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "~/.kube/config"
        source = "in-cluster config" if in_cluster else f"kubeconfig {where}"
        raise BackendError(f"cannot load {source} (context {context or 'current'}): {exc}") from exc
    return configuration


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How one request rides out transient faults, after client-go's `rest.Request`.

    - 429 (API Priority and Fairness, max-in-flight) and any 5xx that carries
      `Retry-After`: the server asks for another try, so every method is retried
      after `Retry-After` seconds (at most `max_wait`), up to `max_retries` times.
      A 429 without a usable `Retry-After` waits 1 s (client-go would give up);
      a 5xx without one is final, since nothing says it will pass.
    - No answer: a connect that was refused or timed out sent nothing, so every
      method is retried; a dropped connection, a reset or a read timeout may
      have been processed, so only requests that are safe to repeat are
      (`repeatable`). At most `connection_retries` times, after `backoff`
      seconds, doubling.
    - `deadline` bounds the whole request, waits included. None: twice the
      per-attempt timeout, at most 60 s, so a client made for short requests
      (the Lease client of leader election) stays short.
    """

    max_retries: int = 10
    max_wait: float = 10.0
    connection_retries: int = 3
    backoff: float = 0.25
    deadline: float | None = None

    def deadline_for(self, timeout: float) -> float:
        if self.deadline is not None:
            return self.deadline
        return max(timeout, min(60.0, 2 * timeout))


def repeatable(method: str, content_type: str, body: Mapping[str, Any] | None) -> bool:
    """Whether sending the request twice has the effect of sending it once."""
    if method in ("GET", "HEAD"):
        return True
    if method == "PATCH":
        # The same manifest applied again by the same manager changes nothing.
        return content_type == APPLY_PATCH
    if method == "DELETE":
        # A repeat meets 404, or a failed precondition if the name was reused.
        return bool((body or {}).get("preconditions"))
    # POST creates twice; PUT with a resourceVersion would turn its own success
    # into a 409 (a leader would think it lost its Lease).
    return False


@dataclass(frozen=True, kw_only=True)
class _Call:
    method: str
    path: str
    what: str
    query: Query
    headers: Mapping[str, str]
    payload: str | Mapping[str, Any] | None
    secret: bool
    allow: Sequence[int]


@dataclass(frozen=True, kw_only=True)
class _Failed:
    error: ApiError
    reason: str
    """A few words for the retry log line: never a body."""
    kind: str
    """"status", "connect" (nothing was sent), "read" (maybe processed) or "final"."""
    retry_after: float | None = None
    cause: BaseException | None = None


class _NoAnswer(Exception):
    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class KubeClient:
    """JSON over HTTP with the target's credentials; one instance per target.

    The client owns `configuration`: urllib3's own retries are switched off on
    it, so `retry` is the only retry policy and every retry is logged. `sleep`
    and `clock` are the waits and the deadline's clock.
    """

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        configuration.retries = False
        self._headers = dict(headers or {})
        """Sent with every request (Impersonate-User for a tenant target)."""
        self._api: Any = k8s_client.ApiClient(configuration)
        self._timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self._api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Query = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        secret: bool = False,
        allow: Sequence[int] = (),
    ) -> Response:
        """Send one request, retried per `self.retry`; statuses in `allow` are
        returned instead of raised.

        `what` names the object or collection for error messages and logs.
        """
        headers = {"Accept": JSON, **self._headers}
        payload: str | Mapping[str, Any] | None = body
        if body is not None:
            headers["Content-Type"] = content_type
            if "json" not in content_type:
                # The client serialises mappings only for JSON types in every
                # supported version; a string is sent as is, and JSON is valid YAML.
                payload = json.dumps(body)
        call = _Call(method=method, path=path, what=what, query=query, headers=headers,
                     payload=payload, secret=secret, allow=allow)
        return self._run(call, repeatable(method, content_type, body))

    def watch(self, path: str, *, what: str, query: Query, timeout: float) -> WatchStream:
        """Open one WATCH of `path`; its events come from `WatchStream.events()`.

        No retries but one, at once, when nothing answered (a pooled connection
        closed by the other end): a fault is raised (ApiError; status 0 when
        nothing answered), and the caller decides between resuming and
        re-listing.
        `timeout` bounds the connect and each wait for the next bytes, so it
        must be longer than the server's `timeoutSeconds` for the watch.
        """
        headers = {"Accept": JSON}
        method, url, headers, _, _ = self._api.param_serialize(
            "GET", path, query_params=list(query) or None, header_params=headers,
            auth_settings=["BearerToken"],
        )
        for attempt in (1, 2):
            try:
                raw = self._api.call_api(method, url, header_params=headers,
                                         _request_timeout=(min(timeout, 30.0), timeout))
                break
            except Exception as exc:  # as in _send: urllib3's and ssl's errors share no base
                if attempt == 2:
                    raise ApiError(f"WATCH {what}: cannot reach the API server: "
                                   f"{_describe(exc)}") from exc
                # Once more at once: a GET is safe to repeat, and the pooled
                # connection may be one the server (or a proxy) has just closed.
                log.debug("WATCH %s: %s; trying again", what, _describe(exc))
        status = int(raw.status)
        if status != 200:
            data = bytes(raw.read() or b"")
            raise api_error("WATCH", what, status, _parse(data), secret=False, raw=data)
        return WatchStream(raw.response, what)

    def _run(self, call: _Call, may_repeat: bool) -> Response:
        budget = self.retry.deadline_for(self._timeout)
        deadline = self._clock() + budget
        retries = {"status": 0, "connection": 0}
        while True:
            timeout = min(self._timeout, max(deadline - self._clock(), 0.001))
            outcome = self._attempt(call, timeout)
            if isinstance(outcome, Response):
                return outcome
            wait = self._next_wait(outcome, retries, may_repeat)
            done = sum(retries.values())
            if wait is None:
                raise _noted(outcome.error, done) from outcome.cause
            if self._clock() + wait > deadline:
                why = f"a wait of {wait:g} s would pass the request's {budget:g} s deadline"
                raise _noted(outcome.error, done, why) from outcome.cause
            retries["status" if outcome.kind == "status" else "connection"] += 1
            log.info("retrying %s %s in %g s (retry %d): %s",
                     call.method, call.what, wait, done + 1, outcome.reason)
            self._sleep(wait)

    def _next_wait(
        self, failed: _Failed, retries: Mapping[str, int], may_repeat: bool
    ) -> float | None:
        policy = self.retry
        if failed.kind == "status":
            if failed.retry_after is None or retries["status"] >= policy.max_retries:
                return None
            return min(failed.retry_after, policy.max_wait)
        if failed.kind == "connect" or (failed.kind == "read" and may_repeat):
            count = retries["connection"]
            if count >= policy.connection_retries:
                return None
            return float(min(policy.backoff * 2**count, policy.max_wait))
        return None

    def _attempt(self, call: _Call, timeout: float) -> Response | _Failed:
        try:
            status, reply_headers, data = self._send(call, timeout)
        except _NoAnswer as exc:
            unreachable = f"cannot reach the API server: {exc.reason}"
            error = ApiError(f"{call.method} {call.what}: {unreachable}")
            return _Failed(error=error, reason=exc.reason, kind=exc.kind, cause=exc.__cause__)
        parsed = _parse(data)
        if status < 400 or status in call.allow:
            return Response(status=status, body=parsed)
        error = api_error(call.method, call.what, status, parsed, secret=call.secret, raw=data)
        return _Failed(error=error, reason=f"{status} {error.reason}".rstrip(), kind="status",
                       retry_after=_server_wait(status, reply_headers.get("Retry-After")))

    def _send(self, call: _Call, timeout: float) -> tuple[int, Mapping[str, str], bytes]:
        # Serialised per attempt: the credentials may have been refreshed meanwhile.
        method, url, headers, _, _ = self._api.param_serialize(
            call.method,
            call.path,
            query_params=list(call.query) or None,
            header_params=dict(call.headers),
            auth_settings=["BearerToken"],
        )
        try:
            raw = self._api.call_api(
                method, url, header_params=headers, body=call.payload, _request_timeout=timeout
            )
            data = raw.read()
        except urllib3_errors.ConnectTimeoutError as exc:  # refused, too: nothing was sent
            raise _NoAnswer(_describe(exc), "connect") from exc
        except (urllib3_errors.ReadTimeoutError, urllib3_errors.ProtocolError) as exc:
            raise _NoAnswer(_describe(exc), "read") from exc
        except Exception as exc:  # ssl and other errors have no common base worth naming
            raise _NoAnswer(_describe(exc), "final") from exc
        return int(raw.status), raw.headers, bytes(data or b"")


class WatchStream:
    """An open WATCH: `events()` yields its events as the server sends them;
    `close()`, from any thread, ends it (the reader then sees an ApiError)."""

    def __init__(self, response: Any, what: str) -> None:
        self._response = response
        self.what = what
        self._closed = False

    def events(self) -> Iterator[Mapping[str, Any]]:
        """Each event ({"type", "object"}) as it arrives; returns when the server
        ends the watch cleanly, raises ApiError (status 0) when the connection
        breaks or falls silent for longer than the watch's timeout."""
        pending = b""
        try:
            for chunk in self._chunks():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    event = _parse(line)
                    if event:
                        yield event
        except (urllib3_errors.HTTPError, OSError, ValueError) as exc:
            why = "closed" if self._closed else _describe(exc)
            raise ApiError(f"WATCH {self.what}: the stream broke: {why}") from exc
        if pending.strip():
            event = _parse(pending)
            if event:
                yield event

    def _chunks(self) -> Iterator[bytes]:
        if self._response.chunked and self._response.supports_chunked_reads():
            yield from self._response.read_chunked()
            return
        while True:  # not chunked (a proxy may do that): whatever has arrived
            data = self._response.read1(65536)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._closed = True
        # Shut down first: it wakes a reader blocked on the socket in another thread.
        for step in (self._response.shutdown, self._response.close, self._response.release_conn):
            with contextlib.suppress(Exception):  # already closed, or never connected
                step()


def _describe(exc: BaseException) -> str:
    """The failure in a few words: its type, and what it wraps or the OS said."""
    name = type(exc).__name__
    nested = [a for a in exc.args if isinstance(a, BaseException)]
    if nested:
        return f"{name} ({type(nested[0]).__name__})"
    if isinstance(exc, urllib3_errors.NewConnectionError):
        return f"{name} ({str(exc).rpartition(': ')[2]})"  # "[Errno 111] Connection refused"
    reason = getattr(exc, "reason", None)  # the client's ApiException: "SSLError\n..."
    return reason.splitlines()[0] if isinstance(reason, str) and reason else name


def _noted(error: ApiError, retries: int, why: str = "") -> ApiError:
    """The error of the last attempt, saying how many retries came before it."""
    if not retries and not why:
        return error
    note = f"after {retries} {'retry' if retries == 1 else 'retries'}"
    note += f"; gave up: {why}" if why else ""
    return ApiError(f"{error} ({note})", status=error.status, reason=error.reason,
                    conflicts=error.conflicts)


def _server_wait(status: int, header: str | None) -> float | None:
    """Seconds the server asked to wait before a retry; None: do not retry."""
    value = (header or "").strip()
    seconds = float(value) if value.isdigit() else None
    if status == 429:
        return 1.0 if seconds is None else seconds
    if status >= 500:
        return seconds
    return None


def _parse(data: bytes | None) -> Mapping[str, Any]:
    if not data:
        return {}
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


_MANAGER = re.compile(r'conflict with "((?:[^"\\]|\\.)*)"')


def field_conflicts(body: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(field, manager, the server's words) per server-side apply conflict.

    The server sends one cause per field: reason FieldManagerConflict, `field`
    ".spec.replicas", message 'conflict with "autoscaler"' (Apply managers) or
    'conflict with "kubectl-edit" using apps/v1 at <time>' (Update managers);
    the manager name is a Go-quoted string.
    """
    details = body.get("details")
    causes = details.get("causes") if isinstance(details, Mapping) else None
    found = []
    for cause in causes if isinstance(causes, list) else ():
        if not isinstance(cause, Mapping) or cause.get("reason") != "FieldManagerConflict":
            continue
        message = str(cause.get("message") or "")
        quoted = _MANAGER.search(message)
        manager = _unquote(quoted.group(1)) if quoted else ""
        found.append((str(cause.get("field") or ""), manager, message))
    return tuple(found)


def _unquote(text: str) -> str:
    try:
        return str(json.loads(f'"{text}"'))
    except ValueError:
        return text


def api_error(
    method: str, what: str, status: int, body: Mapping[str, Any], *, secret: bool,
    raw: bytes = b"",
) -> ApiError:
    """The ApiError of an error answer: status, the Status reason, field conflicts."""
    reason = str(body.get("reason") or "")
    conflicts = field_conflicts(body) if status == 409 else ()
    if conflicts:
        # Field paths and manager names only: never a value, so Secrets too.
        shown = "; ".join(f"{message}: {field}" for field, _, message in conflicts[:10])
        more = f"; and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        plural = "s" if len(conflicts) > 1 else ""
        detail = f"Apply failed with {len(conflicts)} conflict{plural}: {shown}{more}"
    elif secret:
        # Invalid-value messages quote the submitted value: never for a Secret.
        detail = reason or f"HTTP {status}"
    else:
        text = "" if body else raw[:300].decode(errors="replace").strip()
        message = str(body.get("message") or text or reason or f"HTTP {status}")
        # A 422 names every rejected field and value on its first line: all of it.
        detail = message.splitlines()[0][: 4000 if status == 422 else 300]
    return ApiError(
        f"{method} {what}: {status} {detail}",
        status=status,
        reason=reason,
        conflicts=tuple((field, manager) for field, manager, _ in conflicts),
    )

def object_path(
    *, group: str, version: str, plural: str, namespace: str, name: str = "", subresource: str = ""
) -> str:
    """The REST path of an object or a collection (namespace "" = cluster scope or all)."""
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    parts = [prefix]
    if namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)
