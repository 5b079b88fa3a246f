"""The HTTP client every commit-status reporter shares: retries, rate limits, safety.

Forges answer status posts with the odd 502 and, under load, with rate limits;
a reporter that gives up on the first one loses statuses, and one that retries
without a cap blocks the deploy thread that reports. This module keeps the
policy in one place:

- `retry_delay` is pure: (response or network failure, attempt, policy, clock)
  -> seconds to wait, or None for "do not retry". It retries 5xx and network
  failures with exponential backoff, and rate limits (429, or 403 that says it
  is a rate limit) after `Retry-After`, GitHub's `x-ratelimit-reset` when
  `x-ratelimit-remaining` is 0, or GitLab's `RateLimit-Reset`. Every wait is
  capped by `RetryPolicy.max_delay`; a server asking for longer than the cap
  is not waited for at all (the status would be stale by then).
- `Client` does the I/O through urllib, with an injectable `sleep` so tests
  record the waits instead of taking them.
- `SafeReporter` wraps any reporter: it never raises, logs failures without
  secrets, and counts them in `ReportStats` for the metrics endpoint.

Invariants: tokens live only in request headers; they never reach a log line,
an exception message or a repr (`Request.__repr__` hides headers, and error
texts are scrubbed of every secret the caller names).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.errors import ConfigError, ReconcilerError

log = logging.getLogger(__name__)

USER_AGENT = "reconciler-status/1"
_BODY_LIMIT = 200  # characters of an error body worth showing in a one-line message


class ReporterError(ReconcilerError):
    """A commit status could not be posted (after retries). The message holds no secret."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 5
    """Total tries, the first one included."""
    base_delay: float = 0.5
    """Backoff for the first retry; doubles on every further one."""
    max_delay: float = 30.0
    """No single wait is longer; a server asking for more is not waited for."""
    timeout: float = 10.0
    """Seconds per request (connect and read)."""


@dataclass(frozen=True, kw_only=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Holds the token: never shown in reprs, logs or errors."""
    body: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: bytes = b""


def json_request(
    method: str, url: str, payload: Mapping[str, Any], headers: Mapping[str, str]
) -> Request:
    """A request with a compact JSON body and the headers every reporter sends."""
    merged = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return Request(method=method, url=url, headers=merged, body=body)


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# --- the retry decision (pure) ---------------------------------------------------


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """Exponential backoff for retry number `attempt` (1 = first retry), capped."""
    return float(min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))


def retry_delay(
    response: Response | None, attempt: int, policy: RetryPolicy, now: float
) -> float | None:
    """Seconds to wait before retry number `attempt`, or None to stop.

    `response` None means the request failed before an answer (connection
    refused, timeout): worth a retry. `now` is the wall clock (epoch seconds),
    for reset headers that name a moment.
    """
    if attempt >= policy.attempts:
        return None
    if response is None or response.status >= 500:
        return backoff(attempt, policy)
    if response.status not in (403, 429):
        return None
    wanted = rate_limit_wait(response.headers, now)
    if wanted is None:
        # 429 without a hint is still a rate limit; 403 without one is a refusal.
        return backoff(attempt, policy) if response.status == 429 else None
    if wanted > policy.max_delay:
        return None
    return max(0.0, wanted)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """How long the server asks us to wait, from its rate-limit headers; None if silent."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        return _retry_after(retry_after.strip(), now)
    if headers.get("x-ratelimit-remaining", "").strip() == "0":
        reset = _number(headers.get("x-ratelimit-reset"))
        if reset is not None:
            return reset - now
    reset = _number(headers.get("ratelimit-reset"))
    if reset is not None and headers.get("ratelimit-remaining", "0").strip() == "0":
        return reset - now
    return None


def _retry_after(value: str, now: float) -> float | None:
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() - now


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


# --- I/O -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Client:
    """Sends a `Request` with retries; raises `ReporterError` when it gives up."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    def send(self, request: Request, *, secrets: Iterable[str] = ()) -> Response:
        hidden = tuple(s for s in secrets if s)
        attempt = 0
        while True:
            attempt += 1
            response, failure = self._once(request)
            if response is not None and response.status < 400:
                return response
            delay = retry_delay(response, attempt, self.policy, self.clock())
            if delay is None:
                raise _error(request, response, failure, attempt, hidden)
            log.info("%s %s: %s; retry %d in %.2fs", request.method, _scrub(request.url, hidden),
                     _what(response, failure), attempt, delay)
            self.sleep(delay)

    def _once(self, request: Request) -> tuple[Response | None, str]:
        req = urllib.request.Request(
            request.url, data=request.body, method=request.method, headers=dict(request.headers)
        )
        try:
            with urllib.request.urlopen(req, timeout=self.policy.timeout) as answer:
                return _response(answer.status, answer.headers.items(), answer.read()), ""
        except urllib.error.HTTPError as exc:
            with exc:
                return _response(exc.code, exc.headers.items(), exc.read()), ""
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, " ".join(str(reason).split()) or type(exc).__name__


def _response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Response:
    return Response(status=status, headers={k.lower(): v for k, v in headers}, body=body)


def _what(response: Response | None, failure: str) -> str:
    return f"HTTP {response.status}" if response is not None else failure


def _error(
    request: Request, response: Response | None, failure: str, attempts: int,
    secrets: tuple[str, ...],
) -> ReporterError:
    detail = _what(response, failure)
    if response is not None and response.body:
        detail += f" {_body_message(response.body)}"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    text = f"{request.method} {request.url}: {detail}{tries}"
    return ReporterError(_scrub(text, secrets), status=response.status if response else 0)


def _body_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return shorten(text, _BODY_LIMIT)
    if isinstance(parsed, dict) and "message" in parsed:
        return shorten(str(parsed["message"]), _BODY_LIMIT)
    return shorten(text, _BODY_LIMIT)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


# --- what every forge reporter shares ----------------------------------------------


class Status(Protocol):
    """What a reporter reads of a `reporters.CommitStatus` (kept structural, so
    this module does not import the package that builds reporters from it)."""

    @property
    def sha(self) -> str: ...
    @property
    def context(self) -> str: ...
    @property
    def state(self) -> Any: ...
    @property
    def description(self) -> str: ...
    @property
    def target_url(self) -> str | None: ...


def state_of(status: Status) -> str:
    """The status state as text, whether it is a str enum or a plain string."""
    return str(getattr(status.state, "value", status.state))


def known_state(state: str, states: Collection[str], forge: str) -> str:
    """`state` if the forge knows it; a ValueError before anything is sent otherwise."""
    if state not in states:
        raise ValueError(f"{forge} has no commit status state {state!r}")
    return state


def status_body(status: Status, state: str, *, name_key: str, limit: int) -> dict[str, Any]:
    """The body every forge takes: `state`, our context under the forge's `name_key`,
    the description on one line cut to `limit`, and `target_url` only when there is one."""
    body: dict[str, Any] = {
        "state": state,
        name_key: status.context,
        "description": shorten(status.description, limit),
    }
    if status.target_url:
        body["target_url"] = status.target_url
    return body


def api_url(base: str, *segments: str) -> str:
    """`base` (a trailing slash dropped), then each segment URL-encoded whole, "/" included."""
    return "/".join([base.rstrip("/"), *(urllib.parse.quote(s, safe="") for s in segments)])


def owner_repo(repo: str, kind: str) -> tuple[str, str]:
    """"org/name" -> ("org", "name"); anything else is a configuration error."""
    parts = repo.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"reporter {kind}: repo must be owner/name, not {repo!r}")
    return parts[0], parts[1]


def check_entry(entry: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str]) -> None:
    """Refuse unknown and missing keys of a reporter entry of the daemon config."""
    kind = entry.get("type", "?")
    if "token" in entry:
        raise ConfigError(
            f"reporter {kind}: put the token in a file or an environment variable "
            "(token_file / token_env), not in the configuration"
        )
    unknown = sorted(set(entry) - set(allowed) - {"type"})
    if unknown:
        raise ConfigError(f"reporter {kind}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(k for k in required if not entry.get(k))
    if missing:
        raise ConfigError(f"reporter {kind}: missing {', '.join(missing)}")


def load_token(entry: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """The token named by `token_env` or `token_file` (variables from `environ`, by
    default the process's); errors name where, never what."""
    kind = entry.get("type", "?")
    environ = os.environ if environ is None else environ
    env, path = entry.get("token_env"), entry.get("token_file")
    if bool(env) == bool(path):
        raise ConfigError(f"reporter {kind}: give exactly one of token_env or token_file")
    if env:
        value = environ.get(str(env), "").strip()
        if not value:
            raise ConfigError(f"reporter {kind}: environment variable {env} is empty or unset")
        return value
    try:
        with open(str(path), encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"reporter {kind}: cannot read token file {path}: "
                          f"{exc.strerror or type(exc).__name__}") from None
    if not value:
        raise ConfigError(f"reporter {kind}: token file {path} is empty")
    return value


# --- never let a reporter stop a deploy --------------------------------------------


class StatusReporter(Protocol):
    def report(self, status: Any) -> None: ...


class ReportStats:
    """Posted and failed status counts per reporter name, for `/metrics`.

    Thread-safe; `snapshot()` returns plain dicts the metrics code can export.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: dict[str, int] = {}
        self._failed: dict[str, int] = {}

    def record(self, name: str, *, ok: bool) -> None:
        with self._lock:
            counts = self._posted if ok else self._failed
            counts[name] = counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"posted": dict(self._posted), "failed": dict(self._failed)}

    def failed(self, name: str) -> int:
        with self._lock:
            return self._failed.get(name, 0)


STATS = ReportStats()
"""The process-wide counters `SafeReporter` uses unless given its own (as a
Prometheus registry is process-wide): the metrics endpoint reads this one."""


class SafeReporter:
    """A reporter that cannot fail: errors are logged (one line, no secrets) and counted."""

    def __init__(self, inner: StatusReporter, name: str, stats: ReportStats | None = None):
        self.inner = inner
        self.name = name
        self.stats = stats if stats is not None else STATS

    def report(self, status: Any) -> None:
        try:
            self.inner.report(status)
        except ReconcilerError as exc:
            # Our own errors carry a one-line message that was scrubbed at the source.
            self._failed(status, str(exc))
        except Exception as exc:
            # Anything else may quote a request: log the class, never the text.
            self._failed(status, type(exc).__name__)
        else:
            self.stats.record(self.name, ok=True)

    def _failed(self, status: Any, reason: str) -> None:
        self.stats.record(self.name, ok=False)
        sha = str(getattr(status, "sha", ""))[:12]
        context = getattr(status, "context", "")
        context = getattr(context, "value", context)
        log.warning("status %s on %s via %s not posted: %s", context, sha, self.name, reason)

    def __repr__(self) -> str:
        return f"SafeReporter({self.name})"
