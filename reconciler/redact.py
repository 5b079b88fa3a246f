"""Masking secret values in text that leaves the process. Pure, but for `Secrets`.

The state repo marks values secret: the content of a VM `File` with
`secret: true`, and the `data` and `stringData` values of a Kubernetes core
`Secret` (both the base64 text and what it decodes to). Diffs never show them
(`reconciler.diff`), but command output can: a step that prints a file it
reads, a health check that echoes its input. Such output travels in error
text, so every edge where text leaves the process passes it through `redact`:
deploy messages and events (the engine's `EventBus` and the deploy's end, hence
the history, the page and the API), commit statuses and git notes
(`daemon.statuses.Publisher`), and log lines (`LogFilter` on the daemon's
handler).

Rules:
- Each secret value is masked whole, and so is each of its lines, since
  command output is quoted line by line (a multi-line key shows up one line
  at a time); the longest value is replaced first.
- Values (and lines) shorter than `MIN_LENGTH` characters are not masked: they
  would mask ordinary words all over the text. Surrounding whitespace of a
  value does not count.
- Masking happens before a text is cut to length, so no prefix of a value can
  survive a cut; `MASK` is shorter than any masked value, so masking never
  makes a text longer.

`cut_output` keeps only the last lines of the command output quoted in a
message (`... failed (exit 3): line | line | line`, as the VM backend writes
it), for the one-line commit statuses.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.model import DesiredState, Resource

MASK = "***"
MIN_LENGTH = 4
STATUS_OUTPUT_LINES = 1
"""Lines of command output a commit status keeps by default: the last one, which
usually says what went wrong, and leaves room in 140 characters for the rest."""
MAX_VALUES = 10_000
"""Values a `Secrets` keeps; the oldest go first (a state repo rotated that often
has long stopped printing the first ones)."""

_OUTPUT = re.compile(r"(\(exit \d+\): )((?:(?!; ).)*)")
"""A quoted command output: after "(exit N): ", lines joined by " | ", up to the
"; " that starts the next part of a message."""
_LINES = " | "


def secret_values(desired: DesiredState) -> frozenset[str]:
    """Every value to mask, from the resources of `desired` marked secret."""
    found: set[str] = set()
    for app in desired.apps.values():
        for resource in app.resources:
            if resource.secret:
                found.update(values_of(resource))
    return frozenset(found)


def values_of(resource: Resource) -> set[str]:
    """The secret values in one secret resource's body, each whole and per line."""
    body = resource.body
    raw: list[str] = []
    content = body.get("content")
    if isinstance(content, bytes):
        raw.append(content.decode("utf-8", "replace"))
    elif isinstance(content, str):
        raw.append(content)
    data = body.get("data")
    if isinstance(data, Mapping):
        for value in data.values():
            if isinstance(value, str):
                raw.append(value)
                raw.extend(_decoded(value))
    string_data = body.get("stringData")
    if isinstance(string_data, Mapping):
        raw.extend(v for v in string_data.values() if isinstance(v, str))
    out: set[str] = set()
    for text in raw:
        for candidate in (text, *text.splitlines()):
            value = candidate.strip()
            if len(value) >= MIN_LENGTH:
                out.add(value)
    return out


def _decoded(value: str) -> list[str]:
    try:
        return [base64.b64decode(value, validate=True).decode("utf-8")]
    except (binascii.Error, ValueError):  # not base64, or not text: the raw value only
        return []


def pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching any value, the longest where several
    start at one place; None for none.

    Built as a prefix tree, not as one alternative per value: the matcher then
    tries at most one branch per distinct next character at each place, so
    masking costs about the same for ten values or ten thousand."""
    tree: dict[str, Any] = {}
    for value in {v for v in values if len(v) >= MIN_LENGTH}:
        node = tree
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}  # a value ends here
    return re.compile(_alternatives(tree)) if tree else None


def _alternatives(node: dict[str, Any]) -> str:
    branches = []
    for char in sorted(k for k in node if k):
        child, literal = node[char], char
        while len(child) == 1 and "" not in child:  # one way on: a plain run of text
            (char, child), = child.items()
            literal += char
        branches.append(re.escape(literal) + _alternatives(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    # Longer values first: the greedy optional tries going on before stopping here.
    return f"(?:{body})?" if "" in node else body


def redact(text: str, values: Iterable[str] | re.Pattern[str] | None) -> str:
    """`text` with every secret value replaced by `MASK`."""
    found = values if isinstance(values, re.Pattern) or values is None else pattern(values)
    return text if found is None or not text else found.sub(MASK, text)


def cut_output(text: str, lines: int = STATUS_OUTPUT_LINES) -> str:
    """`text` with each quoted command output cut to its last `lines` lines."""
    def keep_last(match: re.Match[str]) -> str:
        parts = match.group(2).split(_LINES)
        return match.group(1) + _LINES.join(parts[-lines:] if lines > 0 else [])

    return _OUTPUT.sub(keep_last, text)


class Secrets:
    """The secret values of every desired state rolled out so far, thread-safe.

    The engine adds a desired state's values before a rollout of it runs
    (forward or rollback) and they stay (the newest `MAX_VALUES`), so a value
    rotated away is still masked (a rollback returns to it, and old output may
    quote it); `redact` is what the edges call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            fresh = [v for v in values if v not in self._values]
            if not fresh:
                return
            self._values.update(dict.fromkeys(fresh))
            while len(self._values) > MAX_VALUES:
                self._values.pop(next(iter(self._values)))
            self._pattern = pattern(self._values)

    def redact(self, text: str) -> str:
        with self._lock:
            found = self._pattern
        return redact(text, found)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


_TRACEBACKS = logging.Formatter()


class LogFilter(logging.Filter):
    """Masks secret values in a log record's message and fields, on a handler:
    whatever logger the record came from, it is masked before it is written."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if not len(self._secrets):
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed call: the handler reports it, as without a filter
        masked = self._secrets.redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        found = getattr(record, "fields", None)
        if isinstance(found, Mapping):
            record.fields = {k: self._masked(v) for k, v in found.items()}
        if record.exc_info and not record.exc_text:
            # A traceback quotes the exception's message, which may hold a value
            # (a command's output); formatters use exc_text when it is set.
            record.exc_text = self._secrets.redact(_TRACEBACKS.formatException(record.exc_info))
        return True

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._secrets.redact(value)
        if isinstance(value, list | tuple):
            return [self._masked(v) for v in value]
        if isinstance(value, Mapping):
            return {k: self._masked(v) for k, v in value.items()}
        return value
