"""Fixtures for the Kubernetes backend: a cluster to talk to, and small builders.

`cluster` is parametrised: the test API server (tests/support/kube_apiserver.py)
always, and the real cluster of $KUBECONFIG when that variable is set (in a
dedicated namespace that is deleted afterwards). Tests that must play a
controller through /status ask for `test_server`, which skips on a real cluster.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.base import BackendContext
from backends.kubernetes import KubernetesBackend
from backends.kubernetes import open as open_backend
from reconciler import plan
from reconciler.errors import ApiError
from reconciler.model import (
    App,
    BackendKind,
    Change,
    DesiredState,
    LiveView,
    Location,
    Resource,
    ResourceId,
    Target,
)
from tests.support.kube_apiserver import KubeApiServer


@dataclass
class Cluster:
    kubeconfig: Path
    context: str | None
    namespace: str
    suffix: str
    """Unique per test: CRD groups and other cluster-scoped names use it."""
    server: KubeApiServer | None
    tmp: Path

    def backend(self, name: str = "t1", **options: Any) -> KubernetesBackend:
        opts = {"kubeconfig": str(self.kubeconfig), "namespace": self.namespace, **options}
        if self.context:
            opts["context"] = self.context
        target = Target(name=name, backend=BackendKind.KUBERNETES, options=opts,
                        location=Location(file="reconciler.yaml"))
        return open_backend(target, BackendContext(data_dir=self.tmp))


@pytest.fixture(params=["test-server", pytest.param("real-cluster", marks=pytest.mark.kubeconfig)])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:8]
    if request.param == "test-server":
        server = KubeApiServer.start()
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        made = Cluster(kubeconfig=kubeconfig, context=None, namespace=f"test-{suffix}",
                       suffix=suffix, server=server, tmp=tmp_path)
    else:
        env = os.environ.get("KUBECONFIG")
        if not env:
            pytest.skip("no real cluster: set KUBECONFIG to run these tests against one")
        server = None
        made = Cluster(kubeconfig=Path(env.split(os.pathsep)[0]), context=None,
                       namespace=f"reconciler-test-{suffix}", suffix=suffix, server=None,
                       tmp=tmp_path)
    backend = made.backend()
    ns_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": made.namespace}}
    backend.client.request("POST", "/api/v1/namespaces", what="test namespace", body=ns_body)
    try:
        yield made
    finally:
        with contextlib.suppress(ApiError):
            backend.client.request("DELETE", f"/api/v1/namespaces/{made.namespace}",
                                   what="test namespace", allow=(404,))
        backend.close()
        if server is not None:
            server.stop()


@pytest.fixture
def test_server(cluster: Cluster) -> KubeApiServer:
    """The test API server; tests that play controllers through /status need it."""
    if cluster.server is None:
        pytest.skip("plays a controller through /status: test server only")
    return cluster.server


def resource(app: str, manifest: Mapping[str, Any]) -> Resource:
    group = str(manifest["apiVersion"]).rpartition("/")[0]
    meta = manifest.get("metadata") or {}
    rid = ResourceId(group=group, kind=str(manifest["kind"]),
                     namespace=str(meta.get("namespace", "")), name=str(meta["name"]))
    return Resource(id=rid, app=app, body=manifest, location=Location(file=f"apps/{app}/x.yaml"),
                    secret=manifest["kind"] == "Secret")


def make_app(name: str, resources: Sequence[Resource], target: str = "t1") -> App:
    return App(name=name, target=target, resources=tuple(resources),
               location=Location(file=f"apps/{name}/app.yaml"))


def diff_text(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> str:
    def lines(x: Mapping[str, Any] | None) -> list[str]:
        return json.dumps(x, indent=1, sort_keys=True).splitlines() if x is not None else []

    return "\n".join(difflib.unified_diff(lines(a), lines(b), lineterm=""))


def plan_changes(view: LiveView, resources: Sequence[Resource], app: str = "web") -> list[Change]:
    """What reconciler.plan makes of this view for one app: the backend's forms feed it."""
    here = Location(file="reconciler.yaml", line=1)
    state = DesiredState(
        revision="test",
        targets={view.target: Target(name=view.target, backend=BackendKind.KUBERNETES,
                                     options={}, location=here)},
        apps={app: make_app(app, resources, target=view.target)},
    )
    return plan.plan(state, {view.target: view}).changes()
