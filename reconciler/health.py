"""Single-attempt network health probes that every backend can reuse.

A probe makes exactly one attempt and reports what it saw; retries, backoff
and deadlines belong to the rollout engine, which knows the app's budget. So a
probe never sleeps and never loops, and it never raises for an unhealthy
answer: failures are values (`Probe.ok` False with a message naming the URL or
address), so a caller folds many probes without try/except around each.

HTTP probes ignore proxy settings from the environment (a health check must hit
the host itself) and do not follow redirects: the status compared is the one
the host answered.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Probe:
    ok: bool
    message: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        # Returning None makes urllib raise HTTPError with the 3xx status itself.
        return None


# One opener for all probes: no proxies, no redirects. OpenerDirector is safe
# to share between threads because each open() builds its own request state.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def probe_http(url: str, *, status: int | tuple[int, ...] = 200, timeout: float = 5.0) -> Probe:
    """GET `url` once; healthy when the answer's status is `status` (or one of them)."""
    wanted = (status,) if isinstance(status, int) else status
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            got = int(response.status)
    except urllib.error.HTTPError as exc:
        got = exc.code
        exc.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Probe(ok=False, message=f"GET {url} failed: {reason}")
    if got in wanted:
        return Probe(ok=True, message=f"GET {url} answered {got}")
    want_text = "/".join(str(w) for w in wanted)
    return Probe(ok=False, message=f"GET {url} answered {got}, want {want_text}")


def probe_tcp(host: str, port: int, *, timeout: float = 5.0) -> Probe:
    """Open one TCP connection to host:port and close it."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return Probe(ok=False, message=f"TCP {host}:{port} failed: {reason}")
    return Probe(ok=True, message=f"TCP {host}:{port} accepted")
