"""Readable, deterministic unified diffs of comparable forms, with secrets masked.

Diffs are shown on the terminal, in `plan --json`, on pull-request plans and on
the status page, so they go through one function that redacts first. A value is
redacted when the resource is secret and the value sits under a key that holds
secret material (a content hash counts: a plain hash of a weak secret can be
guessed); backends already hash such values in their comparable forms, and this
is the second line of defence.

Markers are keyed with a per-process random key: equal values give equal
markers within one process, so a diff still shows which secret changed, but a
marker cannot be matched against a dictionary of guesses. Plans of secret
resources are therefore identical only within one process.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

SECRET_KEYS = frozenset(
    {"data", "stringData", "content", "value", "password", "token", "sha256"}
)
REDACTED_PREFIX = "<redacted"
_KEY = os.urandom(32)


def redact(form: Any, *, secret: bool, under_secret_key: bool = False) -> Any:
    """A copy of `form` where every scalar under a secret key is a hash marker."""
    if isinstance(form, Mapping):
        return {
            str(k): redact(v, secret=secret,
                           under_secret_key=under_secret_key or (secret and k in SECRET_KEYS))
            for k, v in form.items()
        }
    if isinstance(form, list | tuple):
        return [redact(v, secret=secret, under_secret_key=under_secret_key) for v in form]
    if under_secret_key:
        return mask(form)
    return form


def mask(value: Any) -> str:
    """A stable marker that says a secret changed without saying what it is."""
    if isinstance(value, str) and value.startswith(REDACTED_PREFIX):
        return value
    raw = value if isinstance(value, bytes) else str(value).encode()
    return f"{REDACTED_PREFIX} {hmac.new(_KEY, raw, hashlib.sha256).hexdigest()[:12]}>"


def render(form: Mapping[str, Any] | None) -> list[str]:
    """A YAML-like, key-sorted rendering: stable across runs, one value per line."""
    if form is None:
        return []
    lines: list[str] = []
    _render(form, 0, lines)
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return f"<{len(value)} bytes sha256:{hashlib.sha256(value).hexdigest()[:12]}>"
    if isinstance(value, str) and "\n" not in value and value.strip() == value and value:
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _render(value: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            item = value[key]
            if _nested(item):
                lines.append(f"{pad}{key}:")
                _render(item, indent + 1, lines)
            else:
                lines.append(f"{pad}{key}: {_leaf(item, indent + 1)}")
        return
    for item in value:
        if _nested(item):
            lines.append(f"{pad}-")
            _render(item, indent + 1, lines)
        else:
            lines.append(f"{pad}- {_leaf(item, indent + 1)}")


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _leaf(value: Any, indent: int) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    if isinstance(value, str) and "\n" in value:
        # Multi-line text (config files) diffs best line by line.
        pad = "  " * indent
        return "|\n" + "\n".join(pad + line for line in value.splitlines())
    return _scalar(value)


def unified(
    name: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    secret: bool = False,
) -> str:
    """The unified diff from `before` (live) to `after` (desired), redacted."""
    old = render(redact(before, secret=secret)) if before is not None else []
    new = render(redact(after, secret=secret)) if after is not None else []
    old = [line for chunk in old for line in chunk.split("\n")]
    new = [line for chunk in new for line in chunk.split("\n")]
    return "\n".join(
        difflib.unified_diff(
            old, new,
            fromfile=f"live/{name}" if before is not None else "/dev/null",
            tofile=f"desired/{name}" if after is not None else "/dev/null",
            lineterm="", n=3,
        )
    )
