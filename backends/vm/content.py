"""Readable diffs of VM files: the text of changed files, read in one batch. Pure.

A comparable form of a File holds its hash. When a hash differs, the plan's
diff of `sha256: old -> new` says nothing a reviewer can check, so the backend
reads the live text of those files (one more command per host, only when some
file differs; a no-op still costs one command) and `enrich` puts `content` into
the desired AND the live form, where reconciler.diff renders it line by line.

Invariants:
- Secret files never get content in any form, whatever else holds.
- Only text shows: both sides must be valid UTF-8 of at most LIMIT bytes;
  otherwise both forms stay hash-only.
- Files whose hashes are equal keep forms without content, so they compare equal.
- Live text whose hash does not match the fact (the file changed in between)
  is dropped rather than shown as something it is not.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from backends.vm import resources as res
from backends.vm.facts import PathFact
from reconciler.model import Resource

LIMIT = 64 * 1024


def text_of(data: bytes) -> str | None:
    """`data` as text for a diff, or None when it is too big or not UTF-8."""
    if len(data) > LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def to_read(resource: Resource, fact: PathFact | None) -> bool:
    """Whether the live text of `resource` is worth reading for its diff."""
    if resource.id.kind != "File" or resource.secret or fact is None:
        return False
    if fact.type != "file" or fact.sha256 is None or fact.size > LIMIT:
        return False
    wanted = res.content_bytes(resource.body)
    return fact.sha256 != res.sha256(wanted) and text_of(wanted) is not None


def read_script(paths: Sequence[str]) -> str:
    """One command printing each file (first LIMIT + 1 bytes) as base64 after a
    `#file <index>` line; base64 keeps any byte intact through a text channel."""
    lines = ["LC_ALL=C; export LC_ALL"]
    for index, path in enumerate(paths):
        lines.append(f"echo '#file {index}'; head -c {LIMIT + 1} -- {shlex.quote(path)} "
                     "2>/dev/null | base64")
    lines.append("echo '#end'")
    return "\n".join(lines) + "\n"


def parse_read(output: str, count: int) -> dict[int, bytes]:
    """The bytes of each file in the output of `read_script`; a file whose part
    is missing or does not decode is left out (it then shows hash-only)."""
    chunks: dict[int, list[str]] = {}
    current: int | None = None
    ended = False
    for line in output.split("\n"):
        if line.startswith("#file ") and line[6:].isdigit():
            current = int(line[6:])
            chunks[current] = []
        elif line == "#end":
            ended, current = True, None
        elif current is not None:
            chunks[current].append(line)
    out: dict[int, bytes] = {}
    for index, parts in chunks.items():
        if not ended or index >= count:
            continue
        try:
            out[index] = base64.b64decode("".join(parts), validate=True)
        except (binascii.Error, ValueError):
            continue
    return out


def with_content(form: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {**form, "content": text}


def creation_form(resource: Resource, form: Mapping[str, Any]) -> Mapping[str, Any]:
    """The desired form of a file that does not exist yet: with its text when it
    may be shown (a new file's diff then lists its lines); nothing is read."""
    if resource.id.kind != "File" or resource.secret:
        return form
    text = text_of(res.content_bytes(resource.body))
    return form if text is None else with_content(form, text)


def enrich(
    resource: Resource, desired: Mapping[str, Any], live: Mapping[str, Any], data: bytes,
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Both forms with `content` when the desired and live bytes are both text
    and the live bytes are what the fact hashed; else both unchanged."""
    if resource.secret or res.sha256(data) != live.get("sha256"):
        return desired, live
    want, have = text_of(res.content_bytes(resource.body)), text_of(data)
    if want is None or have is None:
        return desired, live
    return with_content(desired, want), with_content(live, have)
