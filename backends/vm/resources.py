"""VM resources as one host sees them: paths under its root, comparable forms.

Pure: no I/O. Everything a host-specific value needs ({host} placeholders, the
host's root) is resolved here, so the fact collector, the planner's comparison
and the applier agree on one spelling of every path and form.

Invariants:
- Every managed path is the host's root joined with the resource path and
  normalised; a result outside the root is refused (BackendError), so `..`
  can never escape it. Symlink targets are checked the same way.
- Paths holding a newline or NUL are refused: the fact protocol is line based.
- Comparable forms built here hold hashes and metadata only, never file
  content, so they may be shown in plan diffs even for secret files
  (`backends.vm.content` adds the text of changed non-secret files).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from typing import Any

from backends.vm import records
from reconciler.errors import BackendError
from reconciler.model import Resource

PATH_KINDS = frozenset({"File", "Directory", "Symlink"})
KINDS = PATH_KINDS | {"Service", "Command"}


def host_name(spec: str) -> str:
    """The host part of "host", "host:port" or "[v6]:port"."""
    if spec.startswith("["):
        return spec[1 : spec.index("]")] if "]" in spec else spec
    if spec.count(":") == 1:
        return spec.split(":", 1)[0]
    return spec


def host_port(spec: str, default: int) -> int:
    """The port of "host:port" or "[v6]:port", else `default`."""
    tail = spec.rsplit("]", 1)[-1] if spec.startswith("[") else spec
    if tail.count(":") == 1:
        port = tail.split(":", 1)[1]
        if not port.isdigit():
            raise BackendError(f"{spec}: port {port!r} is not a number")
        return int(port)
    return default


def expand(text: str, host: str) -> str:
    """Replace the {host} placeholder (a host name, without port)."""
    return text.replace("{host}", host)


def _check_chars(value: str, what: str, host: str) -> None:
    if "\n" in value or "\0" in value:
        raise BackendError(f"{host}: {what} {value!r} holds a newline or NUL byte")


def under_root(root: str, path: str, host: str) -> str:
    """`path` joined under `root`; refused when the result leaves the root."""
    _check_chars(path, "path", host)
    joined = posixpath.normpath(posixpath.join(root, path.lstrip("/")))
    base = root.rstrip("/") or "/"
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise BackendError(f"{host}: path {path!r} escapes the root {root!r}")
    return joined


def contained_path(kind: str, path: str) -> str:
    """The path whose real location decides where an operation on `path` lands:
    mkdir, chmod and chown follow a directory symlink itself; files and links
    are replaced by rename, so only their parent matters."""
    return path if kind == "Directory" else posixpath.dirname(path)


def link_target(root: str, link_path: str, target: str, host: str) -> str:
    """The target to write for a symlink at `link_path` (already under root).

    Absolute targets are re-rooted like every path; relative ones are kept as
    written but must resolve inside the root."""
    _check_chars(target, "symlink target", host)
    if target.startswith("/"):
        return under_root(root, target, host)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    base = root.rstrip("/") or "/"
    if resolved != base and not resolved.startswith(base.rstrip("/") + "/"):
        raise BackendError(f"{host}: symlink {link_path!r} -> {target!r} escapes the root")
    return target


def normalize_mode(value: Any, where: str) -> str:
    """A permission mode as four octal digits ("0644").

    YAML 1.2 reads an unquoted 0644 as the integer 644, so an integer is read
    by its decimal digits when they are all octal digits."""
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise BackendError(f"{where}: mode {value!r} is not an octal mode")
    if text.startswith("0o"):
        text = text[2:]
    try:
        number = int(text, 8)
    except ValueError:
        raise BackendError(f"{where}: mode {value!r} is not an octal mode") from None
    if not 0 <= number <= 0o7777:
        raise BackendError(f"{where}: mode {value!r} is out of range")
    return f"{number:04o}"


def content_bytes(body: Mapping[str, Any]) -> bytes:
    """A File's content as bytes (strings are UTF-8; the loader resolved `source`)."""
    content = body.get("content", b"")
    if isinstance(content, bytes):
        return content
    return str(content).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _metadata(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body.get("mode") is not None:
        out["mode"] = normalize_mode(body["mode"], where)
    for key in ("owner", "group"):
        if body.get(key) is not None:
            out[key] = str(body[key])
    return out


def guarded(body: Mapping[str, Any]) -> bool:
    """A Command with `unless` or `creates` asks the host whether it is done;
    one without runs again whenever its `run` text changes."""
    return bool(body.get("unless") or body.get("creates"))


def service_state(body: Mapping[str, Any]) -> str:
    return str(body.get("state", "running"))


def desired_form(resource: Resource, root: str, host: str) -> dict[str, Any]:
    """The comparable form of `resource` on `host` (hashes, never content)."""
    body, kind = resource.body, resource.id.kind
    where = f"{host}: {resource.id}"
    if kind == "File":
        form: dict[str, Any] = {"type": "file", "sha256": sha256(content_bytes(body))}
        return form | _metadata(body, where)
    if kind == "Directory":
        return {"type": "directory"} | _metadata(body, where)
    if kind == "Symlink":
        path = under_root(root, resource.id.name, host)
        target = link_target(root, path, expand(str(body["target"]), host), host)
        return {"type": "symlink", "target": target}
    if kind == "Service":
        return {"state": service_state(body)}
    if kind == "Command":
        if guarded(body):
            return {"done": True}
        return {"run_sha256": records.run_hash(expand(str(body.get("run", "")), host))}
    raise BackendError(f"{where}: kind {kind!r} is not a VM resource kind")
