"""Optional protection of the whole status page: a bearer token or HTTP basic auth.

The page is read-only, but deploy history names hosts, apps and commits, which
some teams keep private. Credentials come from the environment or from files
(a Kubernetes Secret mounted as a file); they are never logged, never echoed
in a response, and compared in constant time.

Settings (environment):
- `RECONCILER_WEB_TOKEN` or `RECONCILER_WEB_TOKEN_FILE`: `Authorization: Bearer <token>`;
- `RECONCILER_WEB_BASIC` or `RECONCILER_WEB_BASIC_FILE`: `user:password` for basic auth.
Either or both may be set; with neither, the page is open. `/healthz`,
`/readyz` (probes) and the webhook receivers (signed on their own) are always
answered without credentials: `routes.Route.public`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class PageAuth:
    token: str | None = field(default=None, repr=False)
    basic: str | None = field(default=None, repr=False)
    """"user:password"."""

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.basic)

    def challenge(self) -> str:
        """The WWW-Authenticate header of a 401 (basic lets a browser ask for a login)."""
        return 'Basic realm="reconciler", charset="UTF-8"' if self.basic else \
            'Bearer realm="reconciler"'

    def allows(self, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token:
            return _same(value, self.token)
        if scheme.lower() == "basic" and self.basic:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return _same(decoded, self.basic)
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def from_env(environ: Mapping[str, str]) -> PageAuth:
    """Read the settings above; a named file that cannot be read is a ConfigError."""
    token = _setting(environ, "RECONCILER_WEB_TOKEN")
    basic = _setting(environ, "RECONCILER_WEB_BASIC")
    if basic is not None and ":" not in basic:
        raise ConfigError("RECONCILER_WEB_BASIC must be user:password")
    return PageAuth(token=token, basic=basic)


def _setting(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    path = environ.get(f"{name}_FILE")
    if not value and path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as err:
            # Name the variable and the file, never the content.
            raise ConfigError(f"{name}_FILE: cannot read {path}: {err.strerror}") from None
    return value or None
