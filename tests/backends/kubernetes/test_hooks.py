"""Hook objects on the real control plane: never planned or pruned, and never
mistaken for someone else's object of the same name."""

from __future__ import annotations

from typing import Any

import pytest

from backends.kubernetes.hooks import HOOK_MANAGED_BY
from backends.kubernetes.normalize import MANAGED_BY_LABEL
from reconciler.errors import ApiError
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource
from tests.backends.kubernetes.test_backend import configmap
from tests.backends.kubernetes.test_sync_options import job

pytestmark = pytest.mark.kubeconfig


def hook(ns: str, name: str, phase: str) -> dict[str, Any]:
    return job(ns, name, "true", annotations={"argocd.argoproj.io/hook": phase})


def test_a_hook_never_deletes_an_object_it_did_not_make(cluster: Cluster) -> None:
    ns = cluster.namespace
    theirs = job(ns, "migrate", "true")
    cluster.env.create(f"/apis/batch/v1/namespaces/{ns}/jobs", theirs)
    before = cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/migrate")
    assert before is not None
    backend = cluster.backend()
    wanted = [resource("web", configmap(ns, "cfg", {"k": "v"})),
              resource("web", hook(ns, "migrate", "PreSync"), line=5)]
    changes = plan_changes(backend.read_live(wanted, {}), wanted)
    assert [c.id.name for c in changes] == ["cfg"]  # the hook is not a change
    with pytest.raises(ApiError, match="exists and is not a hook of target"):
        backend.apply(make_app("web", wanted), changes)
    after = cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/migrate")
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]
    assert cluster.env.get(f"/api/v1/namespaces/{ns}/configmaps/cfg") is None


def test_hooks_are_neither_planned_nor_pruned(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    wanted = [resource("web", configmap(ns, "cfg", {"k": "v"})),
              resource("web", hook(ns, "seed", "PreSync"))]
    changes = plan_changes(backend.read_live(wanted, {}), wanted)
    backend.apply(make_app("web", wanted), changes)
    seeded = cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/seed")
    assert seeded is not None
    assert seeded["metadata"]["labels"][MANAGED_BY_LABEL] == HOOK_MANAGED_BY
    # With the hook run and still there, nothing is left to plan.
    assert plan_changes(backend.read_live(wanted, {}), wanted) == []
    # The hook left Git, and the inventory remembers Jobs: still not a prune candidate.
    inventory = {("", r.id): "web" for r in wanted}
    prune = plan_changes(backend.read_live(wanted[:1], inventory), wanted[:1])
    assert prune == []
    assert cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/seed") is not None


def test_helm_hooks_run_as_argo_cd_maps_them(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    install = job(ns, "chart-setup", "true", annotations={
        "helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-delete-policy": "hook-failed"})
    chart_test = job(ns, "chart-test", "true", annotations={"helm.sh/hook": "test"})
    wanted = [resource("web", configmap(ns, "cfg", {"k": "v"})),
              resource("web", install), resource("web", chart_test)]
    changes = plan_changes(backend.read_live(wanted, {}), wanted)
    assert [c.id.name for c in changes] == ["cfg"]
    result = backend.apply(make_app("web", wanted), changes)
    assert "PreSync hook(s) succeeded: Job.batch/" in result.messages[0]
    setup = cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/chart-setup")
    assert setup is not None and setup["metadata"]["labels"][MANAGED_BY_LABEL] == HOOK_MANAGED_BY
    # A Helm test hook is never run by a sync.
    assert cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/chart-test") is None
