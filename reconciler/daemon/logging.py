"""Structured logs for the daemon: JSON lines for machines, plain lines for people.

A daemon's stderr usually goes to journald or a log shipper, which wants one
JSON object per line; a person running `reconciler run` in a terminal wants
readable lines. The choice is made once at start (`log_format: auto` picks JSON
when stderr is not a TTY).

Fields travel in `extra={"fields": {...}}`, so call sites stay plain
`log.info("rollout started", extra=fields(sha=..., trigger=...))`.

Invariant: nothing here adds data; secrets never reach a log line because no
call site passes them (tokens are read by `reconciler.source` only and error
messages are scrubbed there).
"""

from __future__ import annotations

import json
import logging
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
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, sort_keys=False)


class PlainFormatter(logging.Formatter):
    """`12:00:01 info  rollout started sha=abc123 trigger=poll`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():<7} {record.getMessage()}"
        line = f"{line} {extra}" if extra else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def use_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


def configure(log_format: str = "auto", level: str = "info",
              stream: TextIO | None = None) -> logging.Handler:
    """Install one handler on the `reconciler` and `backends` loggers; returns it,
    so a caller (or a test) can remove it again."""
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if use_json(log_format, target) else PlainFormatter())
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
