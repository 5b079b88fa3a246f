"""The parts of the Kubernetes plan benchmark that are not timing: the synthetic
desired state, the breakdown of the recorded API calls, waiting for the
cluster's controllers to settle, and memory figures.

The desired state is one app per namespace (a Namespace, ConfigMaps and
Deployments), as a team per namespace would lay out a state repo. Deployments
have `replicas: 0` by default: the Deployment controller still makes one
ReplicaSet per Deployment and keeps its status, but no pod is created, so
10,000 objects do not become 5,000+ pods on kwok's three nodes (110 pods each).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.model import (
    App,
    BackendKind,
    DesiredState,
    Location,
    Resource,
    ResourceId,
    Target,
)
from tests.support.kube_env import KubeEnv
from tests.support.kube_proxy import Upstream

TARGET = "bench"
OWNED = "app.kubernetes.io/managed-by=reconciler"
Obj = dict[str, Any]


def namespace_prefix() -> str:
    """Unique per run, so a shared $KUBECONFIG cluster never mixes two runs."""
    return f"bench-{uuid.uuid4().hex[:6]}"


def manifests(namespace: str, per_namespace: int, replicas: int) -> list[Obj]:
    """A Namespace, then per_namespace // 2 ConfigMaps and as many Deployments."""
    out: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for i in range(per_namespace // 2):
        out.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"cfg-{i}", "namespace": namespace},
                    "data": {"index": str(i)}})
        labels = {"app": f"svc-{i}"}
        out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": f"svc-{i}", "namespace": namespace},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": {
                                 "containers": [{"name": "main", "image": "nginx:1.27"}]}}}})
    return out


def to_resource(app: str, body: Obj, line: int) -> Resource:
    meta = body["metadata"]
    rid = ResourceId(group=body["apiVersion"].rpartition("/")[0], kind=body["kind"],
                     namespace=meta.get("namespace", ""), name=meta["name"])
    return Resource(id=rid, app=app, body=body,
                    location=Location(file=f"apps/{app}/resources.yaml", line=line))


def desired_state(kubeconfig: Path, namespaces: Sequence[str], per_namespace: int,
                  replicas: int) -> DesiredState:
    target = Target(name=TARGET, backend=BackendKind.KUBERNETES,
                    options={"kubeconfig": str(kubeconfig)},
                    location=Location(file="reconciler.yaml", line=1))
    apps: dict[str, App] = {}
    for ns in namespaces:
        resources = tuple(to_resource(ns, body, index + 1)
                          for index, body in enumerate(manifests(ns, per_namespace, replicas)))
        apps[ns] = App(name=ns, target=TARGET, resources=resources,
                       location=Location(file=f"apps/{ns}/app.yaml"))
    return DesiredState(revision="bench", targets={TARGET: target}, apps=apps)


def call_breakdown(requests: Sequence[tuple[str, str, str]]) -> Counter[str]:
    """GETs by what they are for: discovery, LISTs per namespace, cluster-wide
    LISTs, owned-object LISTs (by label), follow-up pages of any LIST, WATCHes."""
    out: Counter[str] = Counter()
    for method, path, query in requests:
        if method != "GET":
            continue
        if "watch=" in query:
            out["watches"] += 1
        elif "continue=" in query:
            out["next pages"] += 1
        elif _is_discovery(path):
            out["discovery"] += 1
        elif "labelSelector=" in query:
            out["owned lists"] += 1
        elif "/namespaces/" in path:
            out["namespace lists"] += 1
        else:
            out["cluster lists"] += 1
    return out


def _is_discovery(path: str) -> bool:
    """/api, /apis, /api/v1, /apis/<group>/<version>: no resource in the path."""
    if path in ("/api", "/apis"):
        return True
    if path.startswith("/apis/"):
        return path.count("/") == 3
    return path.startswith("/api/") and path.count("/") == 2


def _list_all(env: KubeEnv, path: str) -> list[Obj]:
    items: list[Obj] = []
    token = ""
    while True:
        query = f"?labelSelector={OWNED}&limit=500" + (f"&continue={token}" if token else "")
        page = env.get(path + query) or {}
        items.extend(page.get("items") or ())
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return items


def wait_settled(env: KubeEnv, prefix: str, expected: int, timeout: float) -> tuple[float, int]:
    """Wait until the Deployment controller has seen every bench Deployment
    (observedGeneration == generation): until then it writes their status and
    makes their ReplicaSets, and that work would land inside the no-op plan.
    Returns (seconds waited, Deployments still unsettled). Admin calls: the
    proxy does not count them."""
    began = time.monotonic()
    behind = expected
    while time.monotonic() - began < timeout:
        deployments = [d for d in _list_all(env, "/apis/apps/v1/deployments")
                       if d["metadata"]["namespace"].startswith(prefix)]
        behind = expected - len(deployments) + sum(
            1 for d in deployments
            if (d.get("status") or {}).get("observedGeneration") != d["metadata"]["generation"])
        if behind == 0:
            break
        # Each look lists every Deployment: not so often that it slows the controller.
        time.sleep(10.0)
    return time.monotonic() - began, behind


@dataclass(frozen=True, kw_only=True)
class Replay:
    seconds: float
    size: int
    owned_size: int
    """Bytes of the owned-object (labelled) LISTs, the rest being per-namespace ones."""
    decode: float
    """Seconds json.loads takes over all the bodies, each dropped at once."""
    decode_kept: float
    """The same, keeping every decoded body alive, as a plan does: the cyclic
    garbage collector then walks the growing heap again and again."""


def replay(upstream: Upstream, requests: Sequence[tuple[str, str, str]]) -> Replay:
    """Send the recorded GETs again, straight to the server on one connection, and
    only read the bytes. This is what the server and the transfer cost of a plan,
    without the client's work."""
    connection = upstream.connect()
    headers = {"Accept": "application/json", **upstream.headers}
    bodies: list[bytes] = []
    owned = 0
    began = time.perf_counter()
    try:
        for method, path, query in requests:
            if method != "GET":
                continue
            connection.request("GET", f"{path}?{query}" if query else path, headers=headers)
            reply = connection.getresponse()
            bodies.append(reply.read())
            if "labelSelector=" in query:
                owned += len(bodies[-1])
            if reply.status != 200:
                raise RuntimeError(f"replay GET {path}?{query}: {reply.status}")
    finally:
        connection.close()
    took = time.perf_counter() - began
    began = time.perf_counter()
    for body in bodies:
        json.loads(body)
    decode = time.perf_counter() - began
    began = time.perf_counter()
    kept = [json.loads(body) for body in bodies]
    decode_kept = time.perf_counter() - began
    del kept
    return Replay(seconds=took, size=sum(len(b) for b in bodies), owned_size=owned,
                  decode=decode, decode_kept=decode_kept)


# The client's parts worth timing apart: (module, function). A name missing from
# its module (the backend changed) is skipped, not an error.
PARTS = (("backends.kubernetes.client", "_parse"),
         ("backends.kubernetes.live", "may_differ"),
         ("backends.kubernetes.live", "comparable"),
         ("backends.kubernetes.live", "place"))


@contextlib.contextmanager
def timed_parts() -> Iterator[dict[str, float]]:
    """Time the PARTS while the block runs, by wrapping them where the backend
    looks them up (module globals); seconds by name, filled in at the end.
    Without a profiler's overhead on every other call."""
    spent: dict[str, float] = {}
    restore: list[tuple[object, str, Callable[..., object]]] = []

    def wrap(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def timed(*args: object, **kwargs: object) -> object:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began
        return timed

    for module_name, name in PARTS:
        module = importlib.import_module(module_name)
        fn = getattr(module, name, None)
        if callable(fn):
            restore.append((module, name, fn))
            setattr(module, name, wrap(name, fn))
    try:
        yield spent
    finally:
        for owner, name, fn in restore:
            setattr(owner, name, fn)


def drop_namespaces(env: KubeEnv, namespaces: Sequence[str]) -> None:
    """Clean up after a run on someone's $KUBECONFIG cluster (not waited for)."""
    for ns in namespaces:
        env.drop_namespace(ns)


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def peak_rss_mib(pid: int) -> float | None:
    """The high-water mark of a server process's resident memory (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None
