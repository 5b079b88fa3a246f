"""The VM backend's one I/O seam: run a shell script, put and get a file.

Two implementations sit behind it, as pyinfra's connectors do: `LocalTransport`
(subprocess and local files, for `transport: local`) and `SshTransport`
(`backends/vm/ssh.py`, paramiko). Everything above speaks only `Transport`,
so the fact collector and the applier are the same for both.

Invariants:
- `run` always hands the script to POSIX `sh` (wrapped in `sudo -n` when
  asked), never to the login shell, so scripts are portable.
- A script travels on the shell's stdin, never as an argument: one argument
  may hold at most 128 KiB on Linux, and the fact script of a host with
  thousands of paths is larger. The script is one `{ ...; } </dev/null` group,
  so the shell reads all of it before running any of it (a script cut in
  transit runs nothing) and no command in it can read the rest as input. Only
  a script that reads data on stdin (`put_via_shell`, a few hundred bytes)
  goes as `sh -c`.
- Under sudo, a script that never started (sudo missing, or refusing) is a
  TransportError naming the host and sudo's own words, never a script failure:
  the inner shell first writes `SUDO_STARTED` to stderr, and a result without
  it did not come from our script.
- `put` is atomic: a temporary file in the same directory is written, given its
  mode, then renamed over the path; readers see the old or the new file only.
- Every failure is a TransportError naming the host and, for files, the path.
  File content never appears in an error. A write that found no space says
  "no space left on device", whatever the tool in between called it.
- `calls` counts round trips by operation, for tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import TransportError


@dataclass(frozen=True, kw_only=True)
class RunResult:
    exit: int
    stdout: str
    stderr: str


class Transport(Protocol):
    host: str
    calls: Counter[str]

    def run(self, command: str, stdin: bytes | None = None) -> RunResult:
        """Run a POSIX sh script on the host; never raises for a non-zero exit."""
        ...

    def put(self, path: str, data: bytes, mode: int) -> None:
        """Write `data` to `path` atomically with permission bits `mode`."""
        ...

    def get(self, path: str) -> bytes: ...

    def close(self) -> None: ...


SUDO_STARTED = "reconciler: sudo started\n"
"""Written to stderr by the shell under sudo, before the script, and removed
again: sudo's exit codes overlap with the script's, this line does not."""


def invocation(command: str, stdin: bytes | None, sudo: bool, sudo_command: str = "sudo"
               ) -> tuple[list[str], bytes]:
    """The argv that runs `command` and the bytes to send on its stdin.

    Without data of its own the script itself is the input (see the module's
    invariants); with data, the script is the `-c` argument and must be small.
    """
    started = f"printf %s {shlex.quote(SUDO_STARTED)} >&2\n" if sudo else ""
    prefix = [*shlex.split(sudo_command), "-n"] if sudo else []
    if stdin is None:
        script = f"{started}{{\n{command}\n}} </dev/null\n"
        return [*prefix, "sh", "-s"], script.encode()
    return [*prefix, "sh", "-c", started + command], stdin


def sudo_checked(host: str, sudo_command: str, result: RunResult) -> RunResult:
    """The script's own result, or a TransportError when sudo did not run it."""
    if result.stderr.startswith(SUDO_STARTED):
        return RunResult(exit=result.exit, stdout=result.stdout,
                         stderr=result.stderr[len(SUDO_STARTED):])
    said = result.stderr.strip().splitlines()[-1:] or ["no output"]
    raise TransportError(
        f"{host}: sudo could not run the command ({sudo_command} -n, exit {result.exit}): "
        f"{said[0]}"
    )


def os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return NO_SPACE
    return exc.strerror or str(exc) or type(exc).__name__


NO_SPACE = "no space left on device"


def plain(reason: str) -> str:
    """`reason`, or NO_SPACE when it is a tool's words for a full disk."""
    return NO_SPACE if NO_SPACE in reason.lower() else reason


def space_script(directory: str) -> str:
    """Prints the bytes available to us and the free inodes of `directory`'s file system."""
    d = shlex.quote(directory)
    return (f"s=$(stat -f -c '%a %S %d' -- {d} 2>/dev/null) && set -- $s && "
            "echo \"$(($1 * $2)) $3\"")


def lacks_space(output: str, needed: int) -> bool:
    """Whether the output of `space_script` shows too little room for `needed` bytes."""
    words = output.split()
    if len(words) != 2 or not all(w.isdigit() for w in words):
        return False
    return int(words[0]) < needed or int(words[1]) == 0


class LocalTransport:
    """The local machine: subprocess for scripts, plain file I/O for files."""

    def __init__(self, *, host: str = "localhost", sudo: bool = False,
                 sudo_command: str = "sudo", timeout: float = 600.0):
        self.host = host
        self.calls: Counter[str] = Counter()
        self._sudo = sudo
        self._sudo_command = sudo_command
        self._timeout = timeout

    def run(self, command: str, stdin: bytes | None = None) -> RunResult:
        self.calls["run"] += 1
        try:
            argv, data = invocation(command, stdin, self._sudo, self._sudo_command)
            done = subprocess.run(argv, input=data, capture_output=True,
                                  timeout=self._timeout, check=False)
        except FileNotFoundError as exc:
            if self._sudo:  # here sudo itself is what exec could not find
                raise TransportError(
                    f"{self.host}: sudo could not run the command ({self._sudo_command} -n): "
                    f"{os_reason(exc)}"
                ) from None
            raise TransportError(f"{self.host}: cannot run a command: {exc}") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TransportError(f"{self.host}: cannot run a command: {exc}") from None
        result = RunResult(
            exit=done.returncode,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
        )
        return sudo_checked(self.host, self._sudo_command, result) if self._sudo else result

    def put(self, path: str, data: bytes, mode: int) -> None:
        self.calls["put"] += 1
        if self._sudo:
            put_via_shell(self, path, data, mode)
            return
        directory, name = os.path.split(path)
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory or ".")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise TransportError(f"{self.host}: cannot write {path}: {os_reason(exc)}") from None

    def get(self, path: str) -> bytes:
        self.calls["get"] += 1
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise TransportError(f"{self.host}: cannot read {path}: {os_reason(exc)}") from None

    def close(self) -> None:
        pass


def put_script(path: str, mode: int) -> str:
    """A script that writes stdin to `path` atomically (for sudo, where the
    file protocol would run as the unprivileged login user)."""
    target = shlex.quote(path)
    return (
        f"set -e; d=$(dirname -- {target}); t=$(mktemp \"$d/.reconciler.XXXXXX\"); "
        f"trap 'rm -f \"$t\"' EXIT; cat >\"$t\"; chmod {mode:o} \"$t\"; "
        f"mv -f -- \"$t\" {target}; trap - EXIT"
    )


def put_via_shell(transport: Transport, path: str, data: bytes, mode: int) -> None:
    result = transport.run(put_script(path, mode), stdin=data)
    if result.exit != 0:
        reason = result.stderr.strip().splitlines()[-1:] or [f"exit {result.exit}"]
        raise TransportError(f"{transport.host}: cannot write {path}: {plain(reason[0])}")
