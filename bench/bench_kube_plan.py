"""Benchmark: API calls and wall time of a Kubernetes plan over many objects.

Runs against the test API server (tests/support/kube_apiserver.py) on 127.0.0.1:
a first plan with nothing live, an apply of everything, then a no-op plan. The
point is the call count: it must grow with kinds x namespaces (x pages of 500),
not with objects. The server runs in a thread of this process and competes for
the GIL, so the client's own CPU time (the main thread's) is printed next to
the wall time.

    python bench/bench_kube_plan.py [--namespaces 100] [--per-namespace 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.base import BackendContext
from backends.kubernetes import open as open_backend
from reconciler.model import (
    Action,
    App,
    BackendKind,
    Change,
    Location,
    Resource,
    ResourceId,
    Target,
)
from tests.support.kube_apiserver import KubeApiServer


def manifests(namespaces: int, per_namespace: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(namespaces):
        ns = f"team-{n:03d}"
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for i in range(per_namespace // 2):
            meta = {"name": f"cfg-{i}", "namespace": ns}
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                        "data": {"index": str(i)}})
            labels = {"app": f"svc-{i}"}
            out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"svc-{i}", "namespace": ns},
                        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                                 "template": {"metadata": {"labels": labels}, "spec": {
                                     "containers": [{"name": "main", "image": "nginx:1.27"}]}}}})
    return out


def to_resource(body: dict[str, Any]) -> Resource:
    meta = body["metadata"]
    rid = ResourceId(group=body["apiVersion"].rpartition("/")[0], kind=body["kind"],
                     namespace=meta.get("namespace", ""), name=meta["name"])
    return Resource(id=rid, app="bench", body=body, location=Location(file="apps/bench/x.yaml"))


def changes_of(view: Any, resources: list[Resource]) -> list[Change]:
    out = []
    for r in resources:
        live = view.live.get(("", r.id))
        if live is None or live.state != view.desired[("", r.id)]:
            action = Action.CREATE if live is None else Action.UPDATE
            out.append(Change(id=r.id, app="bench", target="bench", action=action, resource=r))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--per-namespace", type=int, default=100)
    args = parser.parse_args()
    server = KubeApiServer.start()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        target = Target(name="bench", backend=BackendKind.KUBERNETES,
                        options={"kubeconfig": str(kubeconfig)}, location=Location(file="r.yaml"))
        backend = open_backend(target, BackendContext(data_dir=Path(tmp)))
        resources = [to_resource(m) for m in manifests(args.namespaces, args.per_namespace)]
        app = App(name="bench", target="bench", resources=tuple(resources),
                  location=Location(file="apps/bench/app.yaml"))
        print(f"{len(resources)} resources in {args.namespaces} namespaces")
        for label in ("first plan (nothing live)", "apply", "no-op plan"):
            server.reset_counts()
            start, cpu = time.perf_counter(), time.thread_time()
            view = backend.read_live(resources, {})
            changes = changes_of(view, resources)
            if label == "apply":
                backend.apply(app, changes)
            elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
            calls = dict(sorted(server.counts().items()))
            print(f"{label:28s} {len(changes):6d} changes {len(server.requests):6d} calls "
                  f"{elapsed:7.2f} s wall {cpu:6.2f} s client CPU  {calls}")
        backend.close()
    server.stop()


if __name__ == "__main__":
    main()
