"""VM resource documents: File, Directory, Symlink, Service, Command.

Invariants: every path is absolute and normalised by walking its components
ourselves, because `posixpath.normpath("/a/../../etc")` silently clamps to
"/etc"; a path that climbs above "/" is an error. A File `source` is a
relative path inside the app's `files/` folder and may not climb out of it;
the loader resolves it to bytes. Modes are normalised to four octal digits.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.load.resources import ParsedResource
from reconciler.load.schema import (
    Problems,
    as_map,
    check_keys,
    describe,
    get_bool,
    get_enum,
    get_str,
    get_str_list,
    suggest,
)
from reconciler.load.yamlio import Document, IntText, YamlMap, shown
from reconciler.model import Location, Resource, ResourceId

_KEYS = {
    "File": ("kind", "path", "content", "source", "mode", "owner", "group", "secret"),
    "Directory": ("kind", "path", "mode", "owner", "group"),
    "Symlink": ("kind", "path", "target"),
    "Service": ("kind", "name", "unit", "start", "stop", "status", "restart_on", "state"),
    "Command": ("kind", "name", "run", "unless", "creates"),
}
PATH_KINDS = ("File", "Directory", "Symlink")
_MODE = re.compile(r"0?[0-7]{3}|[0-7]{4}")


def normalise_path(path: str) -> str | None:
    """The absolute path with `.`, `..` and doubled slashes resolved, or None
    when it is relative or climbs above "/"."""
    if not path.startswith("/") or "\0" in path:
        return None
    parts = relative_parts(path.lstrip("/"))
    return None if parts is None else "/" + "/".join(parts)


def relative_parts(path: str) -> list[str] | None:
    """The components of a relative path after resolving `.` and `..`, or None
    when it climbs above its starting point."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return parts


def parse(p: Problems, app: str, doc: Document) -> ParsedResource | None:
    m = as_map(p, doc.value, doc.line, "VM resource")
    if m is None:
        return None
    kind = get_str(p, m, "kind", "VM resource", required=True)
    if kind is None:
        return None
    if kind not in _KEYS:
        p.add(m.line_of("kind"), f"unknown VM resource kind {shown(kind)}{suggest(kind, _KEYS)}; "
                                 f"kinds are {', '.join(_KEYS)}")
        return None
    check_keys(p, m, _KEYS[kind], kind)
    body: dict[str, Any] = dict(m)
    if kind in PATH_KINDS:
        return _path_resource(p, app, kind, m, body)
    name = get_str(p, m, "name", kind, required=True)
    ok = _service(p, m, body) if kind == "Service" else _command(p, m, body)
    if name is None or not ok:
        return None
    restart_on = tuple(body.pop("_restart_on", ()))
    return _done(p, app, m, body, ResourceId(kind=kind, name=name), restart_on=restart_on)


def _done(p: Problems, app: str, m: YamlMap, body: dict[str, Any], rid: ResourceId,
          **extra: Any) -> ParsedResource:
    resource = Resource(id=rid, app=app, body=body, location=Location(file=p.file, line=m.line),
                        secret=body.get("secret") is True)
    space = "path" if rid.kind in PATH_KINDS else rid.kind
    return ParsedResource(resource=resource, identity=("vm", space, rid.name), **extra)


def _abs_path(p: Problems, m: YamlMap, key: str, what: str, *, required: bool) -> str | None:
    raw = get_str(p, m, key, what, required=required)
    if raw is None:
        return None
    path = normalise_path(raw)
    if path is None or path == "/":
        problem = "must be absolute" if not raw.startswith("/") else "escapes '/'"
        if path == "/":
            problem = "must name something below '/'"
        p.add(m.line_of(key), f"{what}: {key!r} {shown(raw)} {problem}")
    return path


def _path_resource(p: Problems, app: str, kind: str, m: YamlMap,
                   body: dict[str, Any]) -> ParsedResource | None:
    path = _abs_path(p, m, "path", kind, required=True)
    ok = path is not None and path != "/"
    if kind != "Symlink":
        ok = _owner_and_mode(p, kind, m, body) and ok
    extra: dict[str, Any] = {}
    if kind == "Symlink":
        ok = get_str(p, m, "target", kind, required=True) is not None and ok
    elif kind == "File":
        source = _file_content(p, app, m, body)
        ok = source is not False and ok
        if isinstance(source, str):
            extra = {"source": source, "source_line": m.line_of("source")}
    if not ok or path is None:
        return None
    body["path"] = path
    return _done(p, app, m, body, ResourceId(kind=kind, name=path), **extra)


def _owner_and_mode(p: Problems, kind: str, m: YamlMap, body: dict[str, Any]) -> bool:
    ok = True
    for key in ("owner", "group"):
        value = m.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            p.add(m.line_of(key), f"{kind}: {key!r} must be a name or a numeric id")
            ok = False
    mode = m.get("mode")
    if mode is None:
        return ok
    text = str(mode) if isinstance(mode, int) and not isinstance(mode, bool) else mode
    if isinstance(mode, IntText):
        # 0o644 is the number 420: its octal digits are the mode; a hex mode is
        # surely a mistake.
        text = mode.text[2:] if mode.text.startswith("0o") else mode.text
    if not isinstance(text, str) or not _MODE.fullmatch(text):
        p.add(m.line_of("mode"), f"{kind}: 'mode' must be octal like \"0644\", not {shown(mode)}")
        return False
    # `mode: 0644` unquoted is the integer 644 in YAML 1.2: its digits are the octal mode.
    body["mode"] = text.zfill(4)
    return ok


def _file_content(p: Problems, app: str, m: YamlMap, body: dict[str, Any]) -> str | bool:
    """The state-root path of the `source` file, True for inline content, False if invalid."""
    get_bool(p, m, "secret", "File")
    if ("content" in m) == ("source" in m):
        p.add(m.line, "File: needs exactly one of 'content' or 'source'")
        return False
    if "content" in m:
        if not isinstance(m["content"], str):
            p.add(m.line_of("content"), f"File: 'content' must be a string, "
                                        f"not {describe(m['content'])}")
            return False
        return True
    raw = get_str(p, m, "source", "File", required=True)
    if raw is None:
        return False
    parts = None if raw.startswith("/") else relative_parts(raw)
    if not parts:
        p.add(m.line_of("source"), f"File: 'source' {shown(raw)} must be a path inside "
                                   f"apps/{app}/files/")
        return False
    del body["source"]
    return f"apps/{app}/files/" + "/".join(parts)


def _service(p: Problems, m: YamlMap, body: dict[str, Any]) -> bool:
    commands = [key for key in ("start", "stop", "status") if key in m]
    ok = True
    if "unit" in m and commands:
        p.add(m.line_of("unit"), "Service: give either 'unit' or start/stop/status, not both")
        ok = False
    elif "unit" not in m and len(commands) != 3:
        missing = [k for k in ("start", "stop", "status") if k not in m]
        p.add(m.line, "Service: needs a systemd 'unit', or 'start', 'stop' and 'status' "
                      f"commands (missing {', '.join(missing)})")
        ok = False
    for key in ("unit",) if "unit" in m else commands:
        ok = get_str(p, m, key, "Service", required=True) is not None and ok
    body["state"] = get_enum(p, m, "state", "Service", ("running", "stopped")) or "running"
    paths = get_str_list(p, m, "restart_on", "Service")
    refs = []
    for index, raw in enumerate(paths or ()):
        path = normalise_path(raw)
        line = paths.line_of(index) if paths is not None else m.line
        if path is None:
            p.add(line, f"Service: restart_on {shown(raw)} must be an absolute path of a File")
            ok = False
        else:
            refs.append((path, line))
    if paths is not None:
        body["restart_on"] = [path for path, _ in refs]
    body["_restart_on"] = refs
    return ok


def _command(p: Problems, m: YamlMap, body: dict[str, Any]) -> bool:
    ok = get_str(p, m, "run", "Command", required=True) is not None
    if "unless" in m:
        ok = get_str(p, m, "unless", "Command", required=True) is not None and ok
    if "creates" in m:
        creates = _abs_path(p, m, "creates", "Command", required=True)
        ok = creates is not None and ok
        if creates is not None:
            body["creates"] = creates
    return ok
