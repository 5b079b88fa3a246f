"""The one I/O seam of the YARN backend: JSON over HTTP to the ResourceManager.

Why: every call to the YARN Services API (`/app/v1/services`) goes through
`YarnClient.call`, so authentication, timeouts and error wording live in one
place and the rest of the backend stays testable against a plain HTTP server.

Invariants:
- The bearer token is sent only in the Authorization header of requests to the
  configured URL. Redirects are not followed (a standby ResourceManager
  redirects to the active one; following it would carry the token to another
  host), and the token never appears in an exception or a log line.
- Every failure is a `BackendError`; an HTTP error status is an `ApiError`
  whose message names the target, the service and the status.
- Simple authentication only: `user.name` as a query parameter. Kerberos
  (SPNEGO) is out of scope.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ApiError, BackendError

API_ROOT = "/app/v1/services"


_TORN_READ = "No content to map due to end-of-input"
"""Hadoop's answer (HTTP 500) when the ResourceManager reads a service's
definition file while it is being written: a race on the server, gone at once."""
_TORN_READ_RETRIES = 3

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        # Returning None turns the 3xx into an HTTPError: see the module invariants.
        return None


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    body: Any
    """Parsed JSON, or None for an empty body."""


def _diagnostics(raw: bytes) -> str:
    """The ServiceStatus diagnostics of an error body, cut to one short line."""
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return ""
    # ServiceStatus says "diagnostics"; Jersey's exception mappers say "message".
    text = ""
    if isinstance(data, dict):
        text = str(data.get("diagnostics") or data.get("message") or "")
    return " ".join(text.split())[:200]


class YarnClient:
    """JSON requests to one ResourceManager, as one user, with one optional token."""

    def __init__(
        self, *, target: str, url: str, user: str | None, token: str | None, timeout: float
    ) -> None:
        self._target = target
        self._base = url.rstrip("/")
        self._user = user
        self._token = token
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect())

    def _url(self, path: str) -> str:
        query = f"?{urllib.parse.urlencode({'user.name': self._user})}" if self._user else ""
        return f"{self._base}{path}{query}"

    def call(
        self,
        method: str,
        path: str,
        *,
        service: str,
        body: Any = None,
        tolerate: tuple[int, ...] = (),
    ) -> Response:
        """One request; `service` names the service in error messages.

        Statuses in `tolerate` (say 404 for "does not exist") are answers with
        a None body, not errors. A GET that met the ResourceManager reading a
        service's definition while it was being written is asked again.
        """
        for attempt in range(_TORN_READ_RETRIES + 1):
            try:
                return self._call(method, path, service=service, body=body, tolerate=tolerate)
            except ApiError as err:
                if method != "GET" or err.status != 500 or _TORN_READ not in str(err) \
                        or attempt == _TORN_READ_RETRIES:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _call(
        self,
        method: str,
        path: str,
        *,
        service: str,
        body: Any,
        tolerate: tuple[int, ...],
    ) -> Response:
        # default=str: YAML scalars (dates, tagged values) travel as the text they were.
        data = json.dumps(body, default=str).encode() if body is not None else None
        request = urllib.request.Request(self._url(path), data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with self._opener.open(request, timeout=self._timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as err:
            raw = err.read() if err.fp is not None else b""
            if err.code in tolerate:
                return Response(status=err.code, body=None)
            raise self._error(method, service, err.code, _diagnostics(raw)) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise BackendError(
                f"yarn target {self._target}: {method} service {service}: "
                f"cannot reach {self._base}: {reason}"
            ) from None
        try:
            return Response(status=status, body=json.loads(raw) if raw.strip() else None)
        except ValueError:
            if method != "GET":
                # A write succeeded; its status message is informative only.
                return Response(status=status, body=None)
            raise BackendError(
                f"yarn target {self._target}: {method} service {service}: answer is not JSON"
            ) from None

    def _error(self, method: str, service: str, status: int, diagnostics: str) -> ApiError:
        hint = ""
        if status == 401:
            hint = " (unauthorised: check the target's user, token_file or token_env)"
            if not self._user and not self._token:
                hint = " (unauthorised: the ResourceManager wants user.name; set the target's user)"
        elif status == 403:
            hint = " (forbidden: the user may not manage this service)"
        elif 300 <= status < 400:
            hint = " (redirected: point url at the active ResourceManager)"
        text = f": {diagnostics}" if diagnostics else ""
        if self._token:
            # Servers sometimes echo headers back; the token must never leak.
            text = text.replace(self._token, "***")
        return ApiError(
            f"yarn target {self._target}: {method} service {service}: HTTP {status}{hint}{text}",
            status=status,
        )
