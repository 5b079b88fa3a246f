"""A VM target's options: one typed value, parsed once by one schema.

The state-repo loader calls `parse_options` on the target's mapping in
reconciler.yaml (problems with file:line), and the target carries the
resulting `VmOptions` to the backend. A Target built in code with a plain
mapping goes through the same schema on open (`options_of`). Defaults are the
design's: ssh transport, port 22, root "/", 20 hosts in parallel; the local
transport has the single host "localhost". A relative root is resolved on
open, against the working directory of the process, so every later path is
absolute; parsing itself stays pure.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from reconciler.load.schema import (
    Problems,
    check_keys,
    get_bool,
    get_duration,
    get_enum,
    get_int,
    get_str,
    get_str_list,
    typed_options,
)
from reconciler.load.yamlio import YamlMap, shown
from reconciler.model import Target

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?)(:\d{1,5})?")


@dataclass(frozen=True, kw_only=True)
class VmOptions:
    transport: str = "ssh"
    hosts: tuple[str, ...] = ()
    user: str = ""
    identity_file: str = ""
    known_hosts: str = ""
    root: str = "/"
    """May hold {host}; absolute once opened."""
    port: int = 22
    sudo: bool = False
    sudo_command: str = "sudo"
    """With sudo: what `-n sh -c <script>` follows, split like a shell word list
    (say `/usr/local/bin/sudo` on hosts where sudo is not on the login PATH)."""
    connect_timeout: float = 10.0
    parallel: int = 20


Options = VmOptions
_Reader = Callable[[Problems, YamlMap, str, str], Any]


def _text(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_str(p, m, key, what, required=True)


def _port(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_int(p, m, key, what, minimum=1, maximum=65535)


def _positive(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_int(p, m, key, what, minimum=1)


def _sudo_command(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    value = get_str(p, m, key, what, required=True)
    try:
        words = shlex.split(value) if value else []
    except ValueError:
        words = []
    if value and not words:
        p.add(m.line_of(key), f"{what}: {key!r} must be a command, not {shown(value)}")
        return None
    return value


def _transport(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_enum(p, m, key, what, ("ssh", "local"))


def _hosts(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    hosts = get_str_list(p, m, key, what)
    if hosts is None:
        return None
    for index, host in enumerate(hosts):
        if not host_ok(host):
            p.add(hosts.line_of(index), f"{what}: host {shown(host)} is not 'host' or 'host:port'")
    if len(set(hosts)) != len(hosts):
        p.add(m.line_of(key), f"{what}: 'hosts' lists a host twice")
    return tuple(hosts)


# Each option's key, as in reconciler.yaml and on `VmOptions`, and its getter.
_READERS: dict[str, _Reader] = {
    "transport": _transport, "hosts": _hosts,
    "user": _text, "identity_file": _text, "known_hosts": _text, "root": _text,
    "port": _port, "sudo": get_bool, "sudo_command": _sudo_command,
    "connect_timeout": get_duration, "parallel": _positive,
}
KEYS = tuple(_READERS)


def host_ok(host: str) -> bool:
    match = _HOST.fullmatch(host)
    return match is not None and (not match[3] or 1 <= int(match[3][1:]) <= 65535)


def parse_options(p: Problems, m: YamlMap, what: str) -> VmOptions | None:
    """The typed options of the target mapping `m`, or None after reporting into `p`."""
    before = len(p.items)
    check_keys(p, m, ("backend", *KEYS), what)
    values: dict[str, Any] = {}
    for key, read in _READERS.items():
        if key in m:
            value = read(p, m, key, what)
            if value is not None:
                values[key] = value
    transport = values.get("transport", "ssh" if "transport" not in m else None)
    if transport == "ssh" and not m.get("hosts"):
        p.add(m.line_of("hosts"), f"{what}: transport ssh needs a non-empty 'hosts' list")
    for key in ("identity_file", "known_hosts"):
        # The backend could not open without them (host keys are never accepted
        # blindly); found here, that is a file:line before any wave runs.
        if transport == "ssh" and key not in m:
            p.add(m.line, f"{what}: transport ssh needs {key!r}")
    if transport == "local":
        if "hosts" in m:
            p.add(m.line_of("hosts"), f"{what}: 'hosts' applies to transport ssh only")
        values["hosts"] = ("localhost",)
    return VmOptions(**values) if len(p.items) == before else None


def options_of(target: Target) -> VmOptions:
    """The target's options, as the loader parsed them or parsed now from a
    mapping, with a relative root made absolute against the working directory."""
    options = typed_options(target, VmOptions, parse_options)
    root = options.root if options.root.startswith("/") else os.path.join(os.getcwd(),
                                                                          options.root)
    return replace(options, root=os.path.normpath(root))
