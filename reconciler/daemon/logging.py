"""Structured logs for the daemon: JSON lines for machines, text lines for people.

A daemon's log stream (stderr) usually goes to journald or a log shipper, which
wants one JSON object per line; a person running `reconciler run` in a terminal
wants readable lines. The choice is made once at start: `log_format: auto` (the
default) writes text when the log stream is a terminal and JSON otherwise;
`json` and `text` force one (`plain` is the earlier name of `text`). Text lines
colour warnings and errors on a terminal, unless NO_COLOR is set.

Fields travel in `extra={"fields": {...}}`, so call sites stay plain
`log.info("rollout started", extra=fields(sha=..., trigger=...))`.

Invariant: nothing here adds data; secrets never reach a log line because no
call site passes them (tokens are read by `reconciler.source` only and error
messages are scrubbed there).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call: named fields that both formats render."""
    return {"fields": values}


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    found = getattr(record, "fields", None)
    return found if isinstance(found, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            if key not in out:
                out[key] = value
        if record.exc_info:
            # exc_text first: a filter (reconciler.redact.LogFilter) may have masked it.
            out["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, default=str, sort_keys=False)


_COLOURS = {"warning": "\033[33m", "error": "\033[31m", "critical": "\033[31m",
            "debug": "\033[2m"}
_RESET = "\033[0m"
_SAFE = re.compile(r"[^\s\"'=]+")


class TextFormatter(logging.Formatter):
    """`12:00:01 info    rollout started  sha=1a2b3c4d5e6f trigger=poll`: local time,
    the level (coloured on a terminal), the message, then logfmt-style fields:
    commit ids cut to 12 characters, values with spaces quoted, lists joined."""

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname.lower():<7}"
        if self.colour and record.levelname.lower() in _COLOURS:
            level = f"{_COLOURS[record.levelname.lower()]}{level}{_RESET}"
        extra = " ".join(f"{k}={_shown(k, v)}" for k, v in _fields(record).items())
        line = f"{stamp} {level} {record.getMessage()}"
        line = f"{line}  {extra}" if extra else line
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line



def _shown(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str) and (key == "sha" or key.endswith("_sha")) and len(value) == 40:
        return value[:12]
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(_shown("", v) for v in value) or '""'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if _SAFE.fullmatch(text) else json.dumps(text)


def use_json(log_format: str, stream: TextIO) -> bool:
    """JSON unless asked for text, or, with `auto`, unless the log stream is a terminal."""
    if log_format == "auto":
        return not _is_terminal(stream)
    return log_format == "json"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return isatty is not None and bool(isatty())


def configure(log_format: str = "auto", level: str = "info",
              stream: TextIO | None = None) -> logging.Handler:
    """Install one handler on the `reconciler` and `backends` loggers; returns it,
    so a caller (or a test) can remove it again."""
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    colour = _is_terminal(target) and not os.environ.get("NO_COLOR")
    handler.setFormatter(JsonFormatter() if use_json(log_format, target)
                         else TextFormatter(colour=colour))
    for name in ("reconciler", "backends"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        # The root logger may have its own handler (pytest, embedding apps).
        logger.propagate = False
    return handler


def unconfigure(handler: logging.Handler) -> None:
    for name in ("reconciler", "backends"):
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.propagate = True
