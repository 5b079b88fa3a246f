"""The SSH transport: one paramiko connection per host, kept for a whole sync.

Security invariants:
- Host keys are checked against the target's own known_hosts file only (never
  the user's or the system's) with RejectPolicy: an unknown or changed key is a
  TransportError, never accepted and never written back.
- Authentication uses the target's identity_file only: no agent, no key search.

Speed: the TCP socket is opened here so that TCP_NODELAY is set before the
handshake (SSH sends many small packets; Nagle would add delays); files travel
over one SFTP session per connection, with pipelined writes.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import secrets
import shlex
import socket
from collections import Counter

import paramiko

from backends.vm.transport import (
    NO_SPACE,
    RunResult,
    invocation,
    lacks_space,
    os_reason,
    put_via_shell,
    space_script,
    sudo_checked,
)
from reconciler.errors import TransportError

_LOST = (OSError, EOFError, paramiko.SSHException)
"""What paramiko raises when a call fails or the connection drops under it
(EOFError: the server went away while the call waited on the transport)."""


class _Short(Exception):
    """The server holds fewer bytes than were written."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the host closed the connection"
    return os_reason(exc) if isinstance(exc, OSError) else str(exc)


def load_key(identity_file: str) -> paramiko.PKey:
    """Read the private key once per backend (parsing it per host is wasted work)."""
    try:
        return paramiko.PKey.from_path(identity_file)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise TransportError(f"cannot read identity_file {identity_file}: {exc}") from None


class SshTransport:
    """One host over SSH; not shared between threads."""

    def __init__(
        self, *, host: str, address: str, port: int, user: str, key: paramiko.PKey | None,
        known_hosts: str, sudo: bool = False, sudo_command: str = "sudo",
        connect_timeout: float = 10.0, command_timeout: float = 600.0,
    ) -> None:
        self.host = host
        self.calls: Counter[str] = Counter()
        self._sudo = sudo
        self._sudo_command = sudo_command
        self._command_timeout = command_timeout
        self._sftp: paramiko.SFTPClient | None = None
        self._client = _connect(host, address, port, user, key, known_hosts, connect_timeout)

    def run(self, command: str, stdin: bytes | None = None) -> RunResult:
        self.calls["run"] += 1
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise TransportError(f"{self.host}: the SSH connection is closed")
        try:
            channel = transport.open_session(timeout=self._command_timeout)
            channel.settimeout(self._command_timeout)
            argv, data = invocation(command, stdin, self._sudo, self._sudo_command)
            channel.exec_command(shlex.join(argv))
            # The remote shell reads a whole script before it writes anything,
            # so sending it all before reading cannot stall on a full window.
            if data:
                channel.sendall(data)
            channel.shutdown_write()
            # Our scripts keep stderr small, so reading stdout first cannot fill
            # the stderr window and stall the remote side.
            stdout = channel.makefile("rb").read()
            stderr = channel.makefile_stderr("rb").read()
            code = channel.recv_exit_status()
            channel.close()
        except _LOST as exc:
            raise TransportError(f"{self.host}: command failed over SSH: {_reason(exc)}"
                                 ) from None
        result = RunResult(
            exit=code, stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
        )
        return sudo_checked(self.host, self._sudo_command, result) if self._sudo else result

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except _LOST as exc:
                raise TransportError(f"{self.host}: cannot open SFTP: {_reason(exc)}") from None
        return self._sftp

    def put(self, path: str, data: bytes, mode: int) -> None:
        self.calls["put"] += 1
        if self._sudo:
            # SFTP runs as the login user; sudo needs the shell.
            put_via_shell(self, path, data, mode)
            return
        sftp = self._sftp_client()
        directory, name = posixpath.split(path)
        tmp = posixpath.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            with sftp.open(tmp, "wb") as handle:
                handle.set_pipelined(True)
                handle.write(data)
                handle.chmod(mode)
                # paramiko drops the answers to pipelined writes, errors
                # included (a full disk leaves an empty file): the size the
                # server holds after them is the proof they all landed (a
                # server that reports no size is trusted as before).
                written = handle.stat().st_size
            if written is not None and written != len(data):
                raise _Short(f"wrote {written} of {len(data)} bytes")
            sftp.posix_rename(tmp, path)
        except (*_LOST, _Short) as exc:
            with contextlib.suppress(*_LOST):
                sftp.remove(tmp)
            reason = self._why_not_written(exc, directory, len(data))
            raise TransportError(f"{self.host}: cannot write {path}: {reason}") from None

    def _why_not_written(self, exc: BaseException, directory: str, size: int) -> str:
        """SFTP v3 has no code for a full disk (the server answers "Failure"),
        so a failed write asks the host how much room is left."""
        reason = _reason(exc)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES):
            return reason
        try:
            room = self.run(space_script(directory))
        except TransportError:
            return reason
        return NO_SPACE if lacks_space(room.stdout, size) else reason

    def get(self, path: str) -> bytes:
        self.calls["get"] += 1
        try:
            with self._sftp_client().open(path, "rb") as handle:
                return handle.read()
        except _LOST as exc:
            reason = _reason(exc)
            raise TransportError(f"{self.host}: cannot read {path}: {reason}") from None

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(*_LOST):
                self._sftp.close()
            self._sftp = None
        self._client.close()


def _open_socket(host: str, address: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise TransportError(
            f"{host}: unreachable ({address}:{port}): {os_reason(exc)}"
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _connect(
    host: str, address: str, port: int, user: str, key: paramiko.PKey | None,
    known_hosts: str, timeout: float,
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(known_hosts)
    except OSError as exc:
        raise TransportError(f"{host}: cannot read known_hosts {known_hosts}: {exc}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = _open_socket(host, address, port, timeout)
    try:
        client.connect(
            address, port=port, username=user, pkey=key, sock=sock, timeout=timeout,
            banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False,
            allow_agent=False,
        )
    except paramiko.BadHostKeyException:
        message = f"{host}: host key does not match known_hosts {known_hosts} (refused)"
    except paramiko.AuthenticationException:
        message = f"{host}: authentication failed for user {user!r} with the identity_file"
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            message = f"{host}: unknown host key, not in known_hosts {known_hosts} (refused)"
        else:
            message = f"{host}: SSH handshake failed: {exc}"
    except OSError as exc:
        message = f"{host}: unreachable: {os_reason(exc)}"
    else:
        return client
    client.close()
    sock.close()
    raise TransportError(message)
