"""A VM target's options, read once into a typed value.

The loader has already refused unknown keys; this module checks the values a
VM target needs and applies the defaults of the design (ssh transport, port 22,
root "/", 20 hosts in parallel). A relative root is resolved here, against the
working directory of the process, so every later path is absolute.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import BackendError
from reconciler.model import Target


@dataclass(frozen=True, kw_only=True)
class VmOptions:
    transport: str = "ssh"
    hosts: tuple[str, ...] = ()
    user: str = ""
    identity_file: str = ""
    known_hosts: str = ""
    root: str = "/"
    """May hold {host}; absolute."""
    port: int = 22
    sudo: bool = False
    sudo_command: str = "sudo"
    """With sudo: what `-n sh -c <script>` follows, split like a shell word list
    (say `/usr/local/bin/sudo` on hosts where sudo is not on the login PATH)."""
    connect_timeout: float = 10.0
    parallel: int = 20


def _number(options: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BackendError(f"{where}: {key} must be a positive number, not {value!r}")
    return float(value)


def _hosts(options: Mapping[str, Any], transport: str, where: str) -> tuple[str, ...]:
    # The loader gives () when the key is absent; local means the one host "localhost".
    raw = options.get("hosts") or (["localhost"] if transport == "local" else [])
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise BackendError(f"{where}: hosts must be a list")
    hosts = tuple(str(h) for h in raw)
    if not hosts:
        raise BackendError(f"{where}: hosts is empty")
    if len(set(hosts)) != len(hosts):
        raise BackendError(f"{where}: hosts lists a host twice")
    if transport == "local" and hosts != ("localhost",):
        raise BackendError(f"{where}: the local transport has the single host 'localhost'")
    return hosts


def _sudo_command(options: Mapping[str, Any], where: str) -> str:
    value = options.get("sudo_command", "sudo")
    try:
        words = shlex.split(value) if isinstance(value, str) else []
    except ValueError:
        words = []
    if not words:
        raise BackendError(f"{where}: sudo_command must be a non-empty command, not {value!r}")
    return str(value)


def parse_options(target: Target) -> VmOptions:
    """Typed options of a VM target; BackendError names the target and key."""
    options, where = target.options, f"target {target.name} ({target.location})"
    transport = str(options.get("transport", "ssh"))
    if transport not in ("ssh", "local"):
        raise BackendError(f"{where}: transport must be ssh or local, not {transport!r}")
    hosts = _hosts(options, transport, where)
    if transport == "ssh":
        for key in ("identity_file", "known_hosts"):
            if not options.get(key):
                raise BackendError(f"{where}: the ssh transport needs {key}")
    root = str(options.get("root", "/"))
    root = root if root.startswith("/") else os.path.join(os.getcwd(), root)
    return VmOptions(
        transport=transport, hosts=hosts, user=str(options.get("user", "")),
        identity_file=str(options.get("identity_file", "")),
        known_hosts=str(options.get("known_hosts", "")),
        root=os.path.normpath(root), port=int(_number(options, "port", 22, where)),
        sudo=bool(options.get("sudo", False)), sudo_command=_sudo_command(options, where),
        connect_timeout=_number(options, "connect_timeout", 10.0, where),
        parallel=int(_number(options, "parallel", 20, where)),
    )
