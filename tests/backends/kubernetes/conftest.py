"""Fixtures for the Kubernetes backend: a cluster to talk to, and small builders.

`cluster` is a namespace of the test's own on the real control plane (or on the
cluster of $KUBECONFIG), reached through a recording, fault-injecting proxy.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.base import BackendContext
from backends.kubernetes import KubernetesBackend
from backends.kubernetes import open as open_backend
from reconciler import plan
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
from tests.support.kube_env import KubeEnv, KubeTest
from tests.support.kube_proxy import KubeProxy


@dataclass
class Cluster:
    kube: KubeTest

    @property
    def namespace(self) -> str:
        return self.kube.namespace

    @property
    def suffix(self) -> str:
        """Unique per test: CRD groups and other cluster-scoped names use it."""
        return self.kube.suffix

    @property
    def proxy(self) -> KubeProxy:
        return self.kube.proxy

    @property
    def env(self) -> KubeEnv:
        return self.kube.env

    @property
    def tmp(self) -> Path:
        return self.kube.tmp

    @property
    def target(self) -> str:
        """This test's target name: the session shares one cluster, and an object a
        test leaves behind must never be another test's prune candidate."""
        return f"t1-{self.suffix}"

    def backend(self, name: str = "", *, token: str | None = None,
                **options: Any) -> KubernetesBackend:
        kubeconfig = self.kube.kubeconfig(f"kubeconfig-{token or 'admin'}"[:60], token=token)
        opts = {"kubeconfig": str(kubeconfig), "namespace": self.namespace, **options}
        target = Target(name=name or self.target, backend=BackendKind.KUBERNETES, options=opts,
                        location=Location(file="reconciler.yaml"))
        return open_backend(target, BackendContext(data_dir=self.tmp))


@pytest.fixture
def cluster(kube: KubeTest) -> Cluster:
    return Cluster(kube=kube)


def resource(app: str, manifest: Mapping[str, Any], line: int = 0) -> Resource:
    group = str(manifest["apiVersion"]).rpartition("/")[0]
    meta = manifest.get("metadata") or {}
    rid = ResourceId(group=group, kind=str(manifest["kind"]),
                     namespace=str(meta.get("namespace", "")), name=str(meta["name"]))
    where = Location(file=f"apps/{app}/x.yaml", line=line)
    return Resource(id=rid, app=app, body=manifest, location=where,
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
