"""Real OpenSSH servers for tests, one per loopback address (127.0.0.2, .3, ...).

Each server runs Debian's sshd in the foreground with its own host key, its own
authorized_keys and its own config file; the system sshd is never touched. All
hosts of a fleet share one port, as a real fleet would, and are told apart by
their address.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshHost:
    address: str
    port: int
    host_key_pub: str
    process: subprocess.Popen[bytes]

    @property
    def spec(self) -> str:
        return f"{self.address}:{self.port}"

    def known_hosts_line(self) -> str:
        return f"[{self.address}]:{self.port} {self.host_key_pub}"


@dataclass
class SshFleet:
    """A running fleet plus the client material a target needs to reach it."""

    directory: Path
    user: str
    identity_file: Path
    known_hosts: Path
    hosts: list[SshHost] = field(default_factory=list)

    def stop_host(self, index: int) -> None:
        """Take host `index` down as a crash would: its listener and every
        session it serves, so connections already open drop as well."""
        host = self.hosts[index]
        sessions = _descendants(host.process.pid)
        host.process.kill()
        host.process.wait()
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if host.process.stderr is not None:
            host.process.stderr.close()

    def start_host(self, index: int) -> None:
        """Start host `index` again after `stop_host`, with the same keys and config."""
        host = self.hosts[index]
        host.process = _spawn(self.directory / host.address / "sshd_config")
        _wait_listening(host.address, host.port, host.process)

    def stop(self) -> None:
        for host in self.hosts:
            if host.process.poll() is None:
                host.process.terminate()
        for host in self.hosts:
            try:
                host.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()
            if host.process.stderr is not None:
                # An open pipe left to the garbage collector is a ResourceWarning (an error here).
                host.process.stderr.close()


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f", str(path)],
        check=True,
    )


def _free_port(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_can_bind(a, port) for a in addresses[1:]):
            return port
    raise RuntimeError("no port free on every test address")


def _can_bind(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"sshd on {address}:{port} exited: {err}")
        try:
            with socket.create_connection((address, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"sshd on {address}:{port} did not start")


def start_fleet(directory: Path, count: int, first: int = 2,
                network: str = "127.0.0") -> SshFleet:
    """Start `count` sshd processes on <network>.<first>... and return the fleet."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    identity = directory / "id_ed25519"
    _keygen(identity)
    authorized = directory / "authorized_keys"
    authorized.write_text(identity.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    addresses = [f"{network}.{first + i}" for i in range(count)]
    port = _free_port(addresses)
    fleet = SshFleet(
        directory=directory, user=user, identity_file=identity,
        known_hosts=directory / "known_hosts",
    )
    try:
        for address in addresses:
            fleet.hosts.append(_start_host(directory, address, port, authorized, user))
    except BaseException:
        fleet.stop()
        raise
    fleet.known_hosts.write_text("".join(h.known_hosts_line() + "\n" for h in fleet.hosts))
    return fleet


def _start_host(directory: Path, address: str, port: int, authorized: Path, user: str) -> SshHost:
    home = directory / address
    home.mkdir(exist_ok=True)
    host_key = home / "ssh_host_ed25519_key"
    _keygen(host_key)
    pub = host_key.with_suffix(".pub").read_text().split()
    config = home / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {address}:{port}",
                f"HostKey {host_key}",
                f"PidFile {home / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                f"AllowUsers {user}",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "UseDNS no",
                "MaxStartups 100:30:200",
                "MaxSessions 50",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    proc = _spawn(config)
    _wait_listening(address, port, proc)
    return SshHost(address=address, port=port, host_key_pub=f"{pub[0]} {pub[1]}", process=proc)


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (sshd forks one per connection)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The field after the parenthesised command name is the state, then the ppid.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out.extend(children)
        todo.extend(children)
    return out
