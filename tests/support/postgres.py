"""A real PostgreSQL server for tests: Debian's `postgresql` package, started by us.

`initdb` in a temporary directory, run as an unprivileged user (the package's
`postgres` user when we are root: the server refuses to run as root), on a
free 127.0.0.1 port with its unix socket in that directory; the system's
clusters are never touched. Password authentication (scram-sha-256) over
TCP, as a deployment would have it; trust on the unix socket, for the
fixtures' own administration (creating a database per test).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

USER = "reconciler"
PASSWORD = "pg-test-password"
TEMPLATE = "reconciler_template"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    directory: Path
    port: int
    run_as: str | None
    """The user the server runs as (None: the current user, who is not root)."""
    durable: bool = False
    user: str = USER
    password: str = PASSWORD

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def sockets(self) -> Path:
        return self.directory / "sock"

    def url(self, database: str = "postgres") -> str:
        """The URL a daemon config names: no password in it."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host=str(self.sockets), port=self.port, user=self.user,
                               dbname=database, autocommit=True)

    def create_database(self, name: str, template: str = TEMPLATE) -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> None:
        options = [f"-p {self.port}", f"-k {self.sockets}", "-c listen_addresses=127.0.0.1",
                   "-c max_connections=200"]
        if not self.durable:
            # Tests need no crash safety; every commit's fsync would dominate them.
            options += ["-c fsync=off", "-c synchronous_commit=off",
                        "-c full_page_writes=off"]
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"),
                  "-w", "-t", "60", "-o", " ".join(options), "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def freeze(self) -> None:
        """Stop every process of the server (SIGSTOP), the postmaster first so it
        forks no new one: the kernel still accepts connections and ACKs every
        byte, but nothing answers, as with a hung disk or a paused VM."""
        postmaster = self._postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        for pid in _children(postmaster):
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        postmaster = self._postmaster()
        for pid in _children(postmaster):
            os.kill(pid, signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def log(self) -> str:
        path = self.directory / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True,
                              cwd=self.directory, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:1])} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}\n{self.log()}")


def _children(parent: int) -> list[int]:
    """The processes whose parent is `parent`, from /proc (they have no pid file)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent:
            found.append(int(stat.parent.name))
    return found


def start_postgres(*, durable: bool = False) -> PostgresServer:
    """initdb and start a server; the caller removes it (`PostgresServer.remove`).

    The directory is made with mkdtemp, not under pytest's tmp_path: that one
    sits below a 0700 folder of root's that the server's user cannot enter."""
    run_as = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    (directory / "sock").mkdir()
    (directory / "pwfile").write_text(PASSWORD + "\n")
    if run_as is not None:
        account = pwd.getpwnam(run_as)
        for path in (directory, directory / "sock", directory / "pwfile"):
            os.chown(path, account.pw_uid, account.pw_gid)
    server = PostgresServer(directory=directory, port=_free_port(), run_as=run_as,
                            durable=durable)
    try:
        server._run(_bin("initdb"), "-D", str(server.data), "-U", USER,
                    f"--pwfile={directory / 'pwfile'}", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                    "--no-sync")
        server.start()
        with server.admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}" TEMPLATE template0')
    except BaseException:
        server.remove()
        raise
    return server
