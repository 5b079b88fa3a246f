"""A real Kubernetes control plane on 127.0.0.1 for the tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which
plays the kubelets of a few simulated nodes, so pods are scheduled, run and
become Ready) are the binaries `.ci/build-kube` builds from pinned Go modules.
Every process gets free loopback ports and its own folders under `base`, and is
stopped by PID (its whole process group) at the end.

Credentials: a static bearer token in group system:masters (cluster-admin) for
the tests and the controllers; RBAC is on, so tests can mint narrower tokens
for service accounts through the TokenRequest API (`KubeEnv.token_for`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.builds import BuildError, built

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "reconciler-test-admin"
NODES = 3
Obj = dict[str, Any]


class ControlPlaneError(RuntimeError):
    pass


def binaries() -> Path:
    """The folder of the built binaries, building them first when the cache is cold."""
    try:
        return built("build-kube", env="RECONCILER_KUBE_BIN")
    except BuildError as err:
        raise ControlPlaneError(str(err)) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_keys(base: Path) -> None:
    """The service-account signing key pair, made with the openssl CLI."""
    key, pub = base / "sa.key", base / "sa.pub"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True)


def kubeconfig(server: str, token: str, *, ca_file: Path | None, namespace: str = "default",
               context: str = "test") -> str:
    cluster: Obj = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "test", "user": "test",
                                                   "namespace": namespace}}],
    })


@dataclass
class ControlPlane:
    """Start with `ControlPlane.start(base)`; `stop()` when done."""

    base: Path
    server: str = ""
    ca_file: Path = field(default_factory=Path)
    etcd_url: str = ""
    admin_kubeconfig: Path = field(default_factory=Path)
    started_in: float = 0.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(cls, base: Path, *, nodes: int = NODES) -> ControlPlane:
        plane = cls(base=base)
        began = time.monotonic()
        try:
            plane._start(binaries(), nodes)
        except BaseException:
            plane.stop()
            raise
        plane.started_in = time.monotonic() - began
        print(f"\nkube control plane up in {plane.started_in:.1f} s at {plane.server}",
              file=sys.stderr)
        return plane

    def _start(self, bin_dir: Path, nodes: int) -> None:
        base = self.base
        base.mkdir(parents=True, exist_ok=True)
        _write_keys(base)
        (base / "tokens.csv").write_text(f"{ADMIN_TOKEN},admin,admin,system:masters\n")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", bin_dir / "etcd", [
            "--data-dir", str(base / "etcd"), "--name", "test",
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--quota-backend-bytes", str(4 << 30), "--log-level", "warn",
        ])
        self._wait(f"{self.etcd_url}/health", "etcd", 30)
        self.server = f"https://127.0.0.1:{api_port}"
        certs = base / "certs"
        self._spawn("kube-apiserver", bin_dir / "kube-apiserver", [
            "--etcd-servers", self.etcd_url, "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
            "--cert-dir", str(certs), "--token-auth-file", str(base / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(base / "sa.pub"),
            "--service-account-signing-key-file", str(base / "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/16",
            # Compaction is the tests' to trigger (`compact`), not a timer's.
            "--etcd-compaction-interval", "0",
            "--profiling=false", "--v", "1",
            # Continue tokens served by etcd, so a compaction expires them (410) as it
            # does on clusters whose watch cache keeps no list snapshots.
            "--feature-gates", "ListFromCacheSnapshot=false",
        ])
        self.ca_file = certs / "apiserver.crt"
        self._wait_file(self.ca_file, 60)
        self.admin_kubeconfig = self.write_kubeconfig(base / "admin.kubeconfig")
        self._wait(f"{self.server}/readyz", "kube-apiserver", 90, auth=True)
        common = ["--kubeconfig", str(self.admin_kubeconfig), "--leader-elect=false", "--v", "1"]
        self._spawn("kube-controller-manager", bin_dir / "kube-controller-manager", [
            *common, "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--service-account-private-key-file", str(base / "sa.key"),
            "--root-ca-file", str(self.ca_file), "--use-service-account-credentials=false",
            "--cluster-signing-duration", "24h",
            "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-route,-service",
            # Finish namespace deletion quickly: many tests make and drop one.
            "--concurrent-namespace-syncs", "10",
            # The default 20 requests/s leave 5,000 Deployments of the benchmark
            # unobserved for a quarter of an hour.
            "--kube-api-qps", "200", "--kube-api-burst", "400",
        ])
        self._spawn("kube-scheduler", bin_dir / "kube-scheduler", [
            *common, "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
        ])
        stages = base / "kwok-stages.yaml"
        stages.write_text("\n---\n".join(
            f.read_text() for f in sorted((bin_dir.parent / "stages").glob("*.yaml"))))
        self._spawn("kwok", bin_dir / "kwok", [
            "--config", str(stages),
            "--kubeconfig", str(self.admin_kubeconfig), "--manage-all-nodes=true",
            "--server-address", f"127.0.0.1:{free_port()}",
            "--node-lease-duration-seconds", "40", "--cidr", "10.244.0.0/16",
            "--node-ip", "127.0.0.2",
        ])
        for index in range(nodes):
            self.create("/api/v1/nodes", _node(f"kwok-node-{index}"))
        self._wait_nodes_ready(nodes, 60)
        self._wait_default_service_account(60)

    def _spawn(self, name: str, binary: Path, args: list[str]) -> None:
        if not binary.exists():
            raise ControlPlaneError(f"{binary} is missing: run `bash .ci/build-kube`")
        with (self.base / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(binary), *args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.base, start_new_session=True,
                preexec_fn=_die_with_parent)

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.base / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait(self, url: str, what: str, timeout: float, *, auth: bool = False) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if auth else {}
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=5, context=self._ssl()) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready after {timeout:.0f} s: {last}")

    def _wait_file(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{path} did not appear in {timeout:.0f} s")
            time.sleep(0.1)

    def _wait_nodes_ready(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            items = self.get("/api/v1/nodes").get("items") or []
            # Ready, and untainted by the node lifecycle controller: until then
            # the scheduler places nothing there.
            ready = [n for n in items if not (n.get("spec") or {}).get("taints") and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or ())]
            if len(ready) >= count:
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"kwok did not make {count} nodes Ready in {timeout:.0f} s")

    def _wait_default_service_account(self, timeout: float) -> None:
        """Pods are refused until the controller manager made `default`'s account."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            found = self.call("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            if found[0] == 200:
                return
            time.sleep(0.2)
        raise ControlPlaneError("the default ServiceAccount did not appear")

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.processes.clear()

    # --- the API, as the tests' admin ---------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        if self.ca_file.is_file():
            return ssl.create_default_context(cafile=str(self.ca_file))
        return ssl.create_default_context()

    def write_kubeconfig(self, path: Path, *, token: str = ADMIN_TOKEN,
                         namespace: str = "default") -> Path:
        path.write_text(kubeconfig(self.server, token, ca_file=self.ca_file,
                                   namespace=namespace))
        return path

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
             content_type: str = "application/json", token: str = ADMIN_TOKEN
             ) -> tuple[int, Obj]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.server}{path}", method=method, data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type,
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._ssl()) as answer:
                return int(answer.status), _json(answer.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), _json(exc.read())

    def get(self, path: str) -> Obj:
        status, body = self.call("GET", path)
        if status != 200:
            raise ControlPlaneError(f"GET {path}: {status} {body.get('message')}")
        return body

    def create(self, path: str, body: Mapping[str, Any]) -> Obj:
        status, answer = self.call("POST", path, body)
        if status not in (200, 201, 409):
            raise ControlPlaneError(f"POST {path}: {status} {answer.get('message')}")
        return answer

    def compact(self) -> None:
        """Compact etcd to its current revision: continue tokens older than now expire."""
        revision = _etcd(self.etcd_url, "/v3/kv/range", {"key": "Lw=="})["header"]["revision"]
        _etcd(self.etcd_url, "/v3/kv/compaction", {"revision": revision, "physical": True})


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies, however it dies, so a
    killed test run leaves no control plane behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _etcd(url: str, path: str, body: Mapping[str, Any]) -> Obj:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return _json(answer.read())


def _json(raw: bytes) -> Obj:
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:300].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {}


def _node(name: str) -> Obj:
    """A node kwok plays: no kubelet behind it, so no taint keeps ordinary pods off."""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok"}},
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}},
    }
