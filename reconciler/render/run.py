"""Running one render tool: a time limit, an output limit, no network.

The tool runs in its own session (so a timeout kills whatever it started), with
an environment of its own: no PATH (kustomize finds no `git` for remote
bases), HOME and Helm's folders inside the private work folder, empty Helm
repository and registry configs, and HTTP(S) proxies that refuse every
connection, so a manifest or chart that names a URL fails at once instead of
fetching it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEAD_PROXY = "http://127.0.0.1:1"
"""Nothing listens on port 1: a connection through it is refused at once."""


@dataclass(frozen=True, kw_only=True)
class ToolRun:
    code: int | None
    """Exit status; None when the run was stopped (see `stopped`)."""
    output: bytes
    errors: str
    """The end of what the tool wrote to stderr."""
    stopped: str = ""
    """Why the run was killed: over the time or output limit; empty otherwise."""


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a render: nothing of the reconciler's own, no network."""
    for sub in ("cache", "config", "data", "plugins", "repository"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    empty = home / "config" / "empty.yaml"
    empty.write_bytes(b"")
    return {
        "PATH": "",
        "HOME": str(home),
        "LANG": "C",
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_PLUGINS": str(home / "plugins"),
        "HELM_REPOSITORY_CONFIG": str(empty),
        "HELM_REPOSITORY_CACHE": str(home / "repository"),
        "HELM_REGISTRY_CONFIG": str(empty),
        "KUSTOMIZE_PLUGIN_HOME": str(home / "plugins"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY,
        "NO_PROXY": "", "no_proxy": "",
    }


def run_tool(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float,
             max_output: int, max_errors: int = 16_384) -> ToolRun:
    """Run `argv`, keeping at most `max_output` bytes of stdout and the last
    `max_errors` bytes of stderr; past either limit of size or time the whole
    process group is killed."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = bytearray()
    stopped = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        open_streams = 2
        while open_streams and not stopped:
            left = deadline - time.monotonic()
            if left <= 0:
                stopped = f"it ran longer than {timeout:g} s"
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65_536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is out and len(out) > max_output:
                    stopped = f"its output is over the limit of {max_output} bytes"
                    break
                if buffer is err and len(err) > 2 * max_errors:
                    del err[:-max_errors]
    if stopped:
        _kill(proc)
    code = proc.wait() if not stopped else None
    proc.stdout.close()
    proc.stderr.close()
    return ToolRun(code=code, output=bytes(out) if not stopped else b"",
                   errors=err[-max_errors:].decode("utf-8", "replace"), stopped=stopped)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
