"""Key checking and typed field access for parsed YAML, collecting problems.

Every check here reports into a `Problems` collector for one file instead of
raising, so a commit's validation finds every problem at once. Getters return
None when a value is missing or wrong (after reporting it), and callers fall
back to a default so that later checks still run.

Invariants: an unknown key is always an error, with a did-you-mean from the
allowed keys; a key that looks like an inline secret gets its own message,
because secrets never live in the state repo; values are type-checked
strictly (`"2"` is not an int, `true` is not an int, 1.5 is not an int).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from reconciler.errors import BackendError, Problem
from reconciler.load.yamlio import YamlMap, YamlSeq, from_plain, shown
from reconciler.model import Location, Target
from reconciler.options import did_you_mean
from reconciler.options import parse_duration as shared_duration

SECRET_KEYS = frozenset({
    "password", "passwd", "token", "secret", "api_key", "apikey", "private_key",
    "passphrase", "client_secret", "bearer_token", "access_key", "secret_key",
    "credentials", "client_key_data", "token_value",
})



class Problems:
    """The problems found in one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, line: int, message: str) -> None:
        self.items.append(Problem(location=Location(file=self.file, line=line), message=message))


def describe(value: Any) -> str:
    """How a wrong value is named in messages: its type, never its content,
    since the content may be a secret pasted in the wrong place."""
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            YamlMap: "a mapping", YamlSeq: "a list"}.get(type(value), type(value).__name__)


def suggest(word: str, choices: Collection[str]) -> str:
    return did_you_mean(word, choices)


def check_keys(p: Problems, m: YamlMap, allowed: Collection[str], what: str,
               required: Sequence[str] = ()) -> None:
    for key in m:
        if key in allowed:
            continue
        if key.lower() in SECRET_KEYS:
            p.add(m.line_of(key), f"{what}: {key!r} looks like a secret; secrets are never "
                  "stored in the state repo: name a file or environment variable instead")
        else:
            p.add(m.line_of(key), f"{what}: unknown key {shown(key)}{suggest(key, allowed)}")
    for key in required:
        if key not in m:
            p.add(m.line, f"{what}: {key!r} is required")


def as_map(p: Problems, value: Any, line: int, what: str) -> YamlMap | None:
    if isinstance(value, YamlMap):
        return value
    p.add(line, f"{what} must be a mapping, not {describe(value)}")
    return None


def get_map(p: Problems, m: YamlMap, key: str, what: str) -> YamlMap | None:
    if key not in m or m[key] is None:
        return None
    return as_map(p, m[key], m.line_of(key), f"{what}: {key!r}")


def get_str(p: Problems, m: YamlMap, key: str, what: str, *, required: bool = False) -> str | None:
    value = m.get(key)
    if value is None:
        if required and key not in m:
            p.add(m.line, f"{what}: {key!r} is required")
        elif required:
            p.add(m.line_of(key), f"{what}: {key!r} must not be empty")
        return None
    if not isinstance(value, str) or (required and not value):
        p.add(m.line_of(key), f"{what}: {key!r} must be a non-empty string, "
                              f"not {describe(value) if value != '' else 'an empty string'}")
        return None
    return value


def get_bool(p: Problems, m: YamlMap, key: str, what: str) -> bool | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        p.add(m.line_of(key), f"{what}: {key!r} must be true or false, not {describe(value)}")
        return None
    return value


def get_int(p: Problems, m: YamlMap, key: str, what: str, *,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        text = shown(value) if isinstance(value, str | float) else describe(value)
        p.add(m.line_of(key), f"{what}: {key!r} must be an integer, not {text}")
        return None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        p.add(m.line_of(key), f"{what}: {key!r} must be {bounds}, not {shown(value)}")
        return None
    return value


def get_enum(p: Problems, m: YamlMap, key: str, what: str, choices: Sequence[str]) -> str | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in choices:
        hint = suggest(value, choices) if isinstance(value, str) else ""
        p.add(m.line_of(key), f"{what}: {key!r} must be one of {', '.join(choices)}, "
                              f"not {shown(value)}{hint}")
        return None
    return value


def get_str_list(p: Problems, m: YamlMap, key: str, what: str) -> YamlSeq | None:
    """A list of non-empty strings; the YamlSeq is returned for item lines."""
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, YamlSeq):
        p.add(m.line_of(key), f"{what}: {key!r} must be a list, not {describe(value)}")
        return None
    ok = True
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            p.add(value.line_of(index), f"{what}: {key!r} items must be non-empty strings, "
                                        f"not {describe(item)}")
            ok = False
    return value if ok else None


def parse_duration(value: Any) -> float | None:
    """Seconds (> 0) from a duration (`reconciler.options`); None if invalid or zero."""
    seconds = shared_duration(value)
    return seconds if seconds else None


def get_duration(p: Problems, m: YamlMap, key: str, what: str) -> float | None:
    value = m.get(key)
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is None:
        p.add(m.line_of(key), f"{what}: {key!r} must be a positive duration like 60s, 5m, 1h30m "
                              f"or a number of seconds, not {shown(value)}")
    return seconds


OptionsT = TypeVar("OptionsT")


def typed_options(target: Target, kind: type[OptionsT],
                  parse: Callable[[Problems, YamlMap, str], OptionsT | None]) -> OptionsT:
    """A target's typed options: as the loader parsed them, or, for a Target built
    in code with a plain mapping, parsed now by the same schema (BackendError
    holds every problem)."""
    if isinstance(target.options, kind):
        return target.options
    if not isinstance(target.options, Mapping):
        raise BackendError(f"target {target.name}: options must be a mapping or {kind.__name__}")
    p = Problems(target.location.file)
    parsed = parse(p, from_plain(target.options, target.location.line), f"target {target.name!r}")
    if parsed is None:
        raise BackendError("; ".join(str(problem) for problem in p.items))
    return parsed
