"""A YARN target's options: one typed value, parsed once by one schema.

The state-repo loader calls `parse_options` on the target's mapping in
reconciler.yaml (problems with file:line); the target carries the resulting
`Options` to the backend. A Target built in code with a plain mapping goes
through the same schema on open (`options_of`). The token itself is read on
open (`token_file` or `token_env`), never while parsing: parsing stays pure,
and a secret never sits in a parsed state repo.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.load.schema import Problems, check_keys, get_duration, get_str, typed_options
from reconciler.load.yamlio import YamlMap
from reconciler.model import Target

_URL = re.compile(r"https?://[^\s/]+(/\S*)?")


@dataclass(frozen=True, kw_only=True)
class Options:
    url: str
    user: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    timeout: float = 30.0
    poll_interval: float = 2.0
    """Seconds between GETs while waiting for a service to settle."""
    settle_timeout: float = 300.0
    """How long `apply` waits for a service to become STABLE before an upgrade."""
    min_ready: float = 10.0
    """Seconds a READY container must have run before health counts it."""


_Reader = Callable[[Problems, YamlMap, str, str], Any]


def _text(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_str(p, m, key, what, required=True)


def _url(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    url = get_str(p, m, key, what, required=True)
    if url is not None and not _URL.fullmatch(url):
        p.add(m.line_of(key), f"{what}: url must be an http:// or https:// URL")
        return None
    return url


# Each option's key, as in reconciler.yaml and on `Options`, and its getter.
_READERS: dict[str, _Reader] = {
    "url": _url, "user": _text, "token_file": _text, "token_env": _text,
    "timeout": get_duration, "poll_interval": get_duration, "settle_timeout": get_duration,
    "min_ready": get_duration,
}
KEYS = tuple(_READERS)


def parse_options(p: Problems, m: YamlMap, what: str) -> Options | None:
    """The typed options of the target mapping `m`, or None after reporting into `p`."""
    before = len(p.items)
    check_keys(p, m, ("backend", *KEYS), what, required=("url",))
    values: dict[str, Any] = {}
    for key, read in _READERS.items():
        if key in m:
            value = read(p, m, key, what)
            if value is not None:
                values[key] = value
    if "token_file" in m and "token_env" in m:
        p.add(m.line_of("token_env"), f"{what}: 'token_file' and 'token_env' exclude each other")
    return Options(**values) if len(p.items) == before else None


def options_of(target: Target) -> Options:
    """The target's Options: as the loader parsed them, or parsed now from a mapping."""
    return typed_options(target, Options, parse_options)
