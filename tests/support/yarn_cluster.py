"""A real Hadoop ResourceManager for tests: MiniYARNCluster with the YARN Services
REST API, built by `.ci/build-yarn` and started on 127.0.0.1.

`YarnCluster.start()` runs the launcher of `.ci/yarn/` (one ResourceManager, one
NodeManager, an embedded ZooKeeper for the services' registry) on free loopback
ports, with its own temporary directories, waits until the Services API answers,
and prints the start-up time. `.url` is the RM web address; `.stop()` ends the
launcher by its PID, then any container process left under its directories.

Starting one costs tens of seconds, so a test session shares one: `shared()`
starts it on first use and stops it when the interpreter exits.
`yarn_cluster_session()` is the same as a generator for a session fixture.
`cluster.client(user)` is a plain client for a test's own looks at the RM
(GET a service, wait for a state, destroy what a test left behind).

Invariants: everything listens on 127.0.0.1; nothing outside the cluster's
temporary directory is written (the build cache aside); the launcher dies with
this process even when it is killed (it exits when its stdin closes).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.support.builds import BuildError, built

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN_CLASS = "reconciler.yarn.Launcher"
START_TIMEOUT = 300.0


class YarnClusterError(RuntimeError):
    """The launcher could not be built or did not come up; the message has its log's tail."""


def build_dir() -> Path:
    """The launcher's build folder, building it first when it is missing."""
    try:
        return built("build-yarn", "--print-dir")
    except BuildError as err:
        raise YarnClusterError(str(err)) from None


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java") or "java"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class YarnCluster:
    """One running launcher; create it with `YarnCluster.start()`."""

    def __init__(self, *, process: subprocess.Popen[bytes], workdir: Path, owns_workdir: bool):
        self.process = process
        self.pid = process.pid
        self.workdir = workdir
        self.log = workdir / "launcher.log"
        self.url = ""
        self.startup_seconds = 0.0
        self._owns_workdir = owns_workdir
        self._stopped = False

    @classmethod
    def start(cls, *, workdir: Path | None = None, timeout: float = START_TIMEOUT) -> YarnCluster:
        began = time.monotonic()
        build = build_dir()
        owns = workdir is None
        work = Path(tempfile.mkdtemp(prefix="yarn-cluster-")) if workdir is None else workdir
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "conf"
        conf.mkdir(exist_ok=True)
        classpath = os.pathsep.join([str(conf), str(build / "launcher"), str(build / "lib" / "*")])
        log = (work / "launcher.log").open("wb")
        process = subprocess.Popen(
            [_java(), f"@{build / 'jvm.args'}", "-cp", classpath, MAIN_CLASS,
             str(work / "cluster"), str(conf)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=work,
            start_new_session=True,
        )
        log.close()
        cluster = cls(process=process, workdir=work, owns_workdir=owns)
        try:
            cluster.url = cluster._read_url(timeout)
            cluster._wait_for_api(began + timeout)
        except BaseException:
            cluster.stop()
            raise
        cluster.startup_seconds = time.monotonic() - began
        print(
            f"\nYARN ResourceManager (MiniYARNCluster, pid {cluster.pid}) at {cluster.url}, "
            f"ready in {cluster.startup_seconds:.1f} s",
            file=sys.__stderr__,
            flush=True,
        )
        return cluster

    def _read_url(self, timeout: float) -> str:
        """The RM_WEB line of the launcher's stdout, read in a thread to bound the wait."""
        found: list[str] = []
        stdout: IO[bytes] | None = self.process.stdout

        def read() -> None:
            assert stdout is not None
            for raw in stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith("RM_WEB "):
                    found.append(line.split(" ", 1)[1])
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)
            code = self.process.poll()
            state = f"exited ({code})" if code is not None else f"not ready after {timeout:g}s"
            raise YarnClusterError(
                f"MiniYARNCluster {state} without its address; "
                f"log {self.log}:\n{_tail(self.log)}"
            )
        return found[0]

    def _wait_for_api(self, deadline: float) -> None:
        """Until the Services API answers (a 404 for an unknown service is an answer)."""
        probe = f"{self.url}/app/v1/services/reconciler-probe?user.name=probe"
        while True:
            try:
                with urllib.request.urlopen(probe, timeout=10):
                    return
            except urllib.error.HTTPError as err:
                if err.code in (404, 400):
                    return
                last = f"HTTP {err.code}"
            except OSError as err:
                last = str(err)
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise YarnClusterError(
                    f"the Services API at {self.url} did not answer ({last}); "
                    f"log {self.log}:\n{_tail(self.log)}"
                )
            time.sleep(0.5)

    def client(self, user: str = "deploy") -> RmClient:
        return RmClient(self.url, user)

    def stop(self) -> None:
        """SIGTERM to the launcher's PID (it stops the cluster), SIGKILL after 60 s;
        then end container processes still running from its directories."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        for pid in leftover_pids(self.workdir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class RmClient:
    """Direct calls to the Services API as `user`, for tests to look and clean up."""

    def __init__(self, url: str, user: str) -> None:
        self.url = url
        self.user = user

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON or None); HTTP errors are answers too."""
        sep = "&" if "?" in path else "?"
        request = urllib.request.Request(
            f"{self.url}/app/v1/services{path}{sep}user.name={self.user}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw.strip() else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def service(self, name: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/{name}")
        return body if status == 200 and isinstance(body, dict) else None

    def create(self, spec: Mapping[str, Any]) -> None:
        status, body = self.call("POST", "", spec)
        if status != 202:
            raise AssertionError(f"create of {spec.get('name')}: HTTP {status}: {body}")

    def destroy(self, name: str) -> None:
        self.call("DELETE", f"/{name}")

    def wait(
        self,
        name: str,
        done: Callable[[dict[str, Any] | None], bool],
        *,
        timeout: float = 120.0,
        what: str = "",
    ) -> dict[str, Any] | None:
        """GET `name` every half second until `done(answer)`; AssertionError at `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            live = self.service(name)
            if done(live):
                return live
            if time.monotonic() > deadline:
                state = None if live is None else live.get("state")
                raise AssertionError(f"service {name}: still {state} after {timeout:g}s {what}")
            time.sleep(0.5)


def leftover_pids(workdir: Path) -> list[int]:
    """PIDs of processes whose working directory lies under `workdir`
    (containers and ApplicationMasters of a cluster that was killed)."""
    root = str(workdir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found.append(int(entry.name))
    return found


_shared: YarnCluster | None = None
_shared_lock = threading.Lock()


def shared() -> YarnCluster:
    """The process's one cluster, started on first use, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.process.poll() is not None:
            _shared = YarnCluster.start()
            atexit.register(_shared.stop)
        return _shared


def yarn_cluster_session() -> Iterator[YarnCluster]:
    """Body of a session-scoped pytest fixture: the shared cluster."""
    yield shared()
