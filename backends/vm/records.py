"""What the backend remembers on each host, under `<root>/var/lib/reconciler`. Pure.

Two facts cannot be read back from a host's files and processes, so the
backend writes them down where it acts:

- `services/<name>.json`: how to stop a Service it started or stopped (the unit,
  or the stop command with its status guard and {host} resolved). Written with
  every start, stop or restart, so it always describes the instance that runs;
  read only when the Service is pruned.
- `commands/<name>.sha256`: the sha256 of the `run` text of an unguarded Command
  after its last successful run, so it runs again exactly when that text changes.

Invariants: record names are derived from resource names without `/` or
leading dots, so a record always lands directly in its folder; records are
written with a temporary file and a rename, so a half-written record is never
read; a record that does not parse is treated as missing.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from typing import Any

STATE_DIR = "var/lib/reconciler"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,100}")


def file_name(name: str) -> str:
    """A resource name as a file name: itself when plain, else a readable,
    collision-free spelling (the unsafe characters replaced, plus a short hash)."""
    if _SAFE.fullmatch(name):
        return name
    readable = re.sub(r"[^A-Za-z0-9._@+-]", "_", name).lstrip(".")[:60]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def state_dir(root: str) -> str:
    return posixpath.join(root, STATE_DIR)


def service_record(root: str, name: str) -> str:
    return posixpath.join(state_dir(root), "services", f"{file_name(name)}.json")


def command_record(root: str, name: str) -> str:
    return posixpath.join(state_dir(root), "commands", f"{file_name(name)}.sha256")


def run_hash(run: str) -> str:
    return hashlib.sha256(run.encode()).hexdigest()


def service_json(name: str, app: str, *, unit: str = "", stop: str = "") -> str:
    """The record of a Service: one line of ASCII JSON (the fact protocol is line based)."""
    body: dict[str, Any] = {"service": name, "app": app}
    body |= {"unit": unit} if unit else {"stop": stop}
    return json.dumps(body, ensure_ascii=True, sort_keys=True)


def stop_command(text: str, name: str) -> str | None:
    """The command that stops the Service `name` per its record, or None when the
    record does not parse or belongs to another service."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("service") != name:
        return None
    unit, stop = body.get("unit"), body.get("stop")
    if isinstance(unit, str) and unit:
        return f"systemctl stop {shlex.quote(unit)}"
    if isinstance(stop, str) and stop.strip():
        return stop
    return None


def write_command(path: str, text: str) -> str:
    """Shell that writes `text` (one line) to `path` atomically, making its folder."""
    target, tmp = shlex.quote(path), shlex.quote(f"{path}.reconciler-tmp")
    return (f"mkdir -p -- {shlex.quote(posixpath.dirname(path))} && "
            f"printf '%s\\n' {shlex.quote(text)} > {tmp} && mv -f -- {tmp} {target}")
