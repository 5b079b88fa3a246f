"""Sync options on the real control plane: replace on an immutable field,
create_namespace, conflicts forced per app or per object, resource exclusions,
and Orphan propagation per app."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from backends.kubernetes.backend import KubernetesBackend
from backends.kubernetes.crds import CREATED_FOR
from reconciler.errors import ApiError
from reconciler.model import Action, App, Resource
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource
from tests.backends.kubernetes.test_backend import configmap, deployment

pytestmark = pytest.mark.kubeconfig


def job(ns: str, name: str, command: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, **meta},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": [command]}]}}}}


def app_with(name: str, resources: list[Resource], **options: Any) -> App:
    return dataclasses.replace(make_app(name, resources), options=options)


def run(backend: KubernetesBackend, app: App) -> tuple[list[Any], Any]:
    changes = plan_changes(backend.read_live(list(app.resources), {}), app.resources, app.name)
    return changes, backend.apply(app, changes)


def new_selector(ns: str) -> dict[str, Any]:
    moved = deployment(ns, "web")
    labels = {"app": "web", "tier": "front"}
    moved["spec"]["selector"] = {"matchLabels": labels}
    moved["spec"]["template"]["metadata"]["labels"] = labels
    return moved


def test_an_immutable_change_fails_before_any_write_without_replace(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    run(backend, make_app("web", [resource("web", deployment(ns, "web"), line=3)]))
    before = cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert before is not None

    moved = [resource("web", configmap(ns, "first", {"k": "v"}), line=1),
             resource("web", new_selector(ns), line=3)]
    changes = plan_changes(backend.read_live(moved, {}), moved)
    # The plan shows the change; the apply decides whether it may be made.
    assert sorted((c.id.kind, c.action) for c in changes) == [
        ("ConfigMap", Action.CREATE), ("Deployment", Action.UPDATE)]
    cluster.proxy.reset_counts()
    with pytest.raises(ApiError) as failed:
        backend.apply(make_app("web", moved), changes)
    message = str(failed.value)
    assert message.startswith("apps/web/x.yaml:3: Deployment.apps/")
    assert "spec.selector" in message and "field is immutable" in message
    assert "replace: true" in message and "Replace=true" in message
    # Refused whole: not even the ConfigMap before it was written.
    assert cluster.proxy.writes() == []
    after = cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]


def test_replace_per_app_deletes_and_recreates_the_object(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    run(backend, make_app("web", [resource("web", deployment(ns, "web"))]))
    before = cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert before is not None

    changes, result = run(backend, app_with("web", [resource("web", new_selector(ns))],
                                            replace=True))
    assert [c.action for c in changes] == [Action.UPDATE]
    assert result.applied == 1
    after = cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert after is not None
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["selector"]["matchLabels"] == {"app": "web", "tier": "front"}
    # Planned again, the new object is what Git says: nothing left to do.
    again = [resource("web", new_selector(ns))]
    assert plan_changes(backend.read_live(again, {}), again) == []


def test_replace_by_annotation_recreates_a_job_with_a_new_template(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    note = {"argocd.argoproj.io/sync-options": "Replace=true"}
    run(backend, make_app("jobs", [resource("jobs", job(ns, "seed", "true", annotations=note))]))
    first = cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/seed")
    assert first is not None
    changes, result = run(backend, make_app(
        "jobs", [resource("jobs", job(ns, "seed", "false", annotations=note))]))
    assert [c.action for c in changes] == [Action.UPDATE] and result.applied == 1
    second = cluster.env.get(f"/apis/batch/v1/namespaces/{ns}/jobs/seed")
    assert second is not None and second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["spec"]["template"]["spec"]["containers"][0]["command"] == ["false"]


def test_create_namespace_makes_a_missing_namespace_that_is_never_pruned(
    cluster: Cluster,
) -> None:
    ns = f"{cluster.namespace}-made"
    backend = cluster.backend()
    cfg = [resource("web", configmap(ns, "cfg", {"k": "v"}))]
    try:
        # Without the option the server refuses: the namespace does not exist.
        with pytest.raises(ApiError, match="404"):
            run(backend, make_app("web", cfg))
        _, result = run(backend, app_with("web", cfg, create_namespace=True))
        assert result.applied == 2  # the namespace and the ConfigMap
        made = cluster.env.get(f"/api/v1/namespaces/{ns}")
        assert made is not None
        assert made["metadata"]["annotations"][CREATED_FOR] == f"{cluster.target}/web"
        # Not owned: no plan of the app (or of its removal) deletes it.
        view = backend.read_live([], {("", cfg[0].id): "web"})
        prune = plan_changes(view, [], "web")
        assert [(c.id.kind, c.action) for c in prune] == [("ConfigMap", Action.DELETE)]
    finally:
        cluster.env.drop_namespace(ns)


def test_force_conflicts_per_app_and_per_object(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    run(backend, make_app("web", [resource("web", deployment(ns, "web", replicas=2))]))
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    scale = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": ns}, "spec": {"replicas": 5}}
    cluster.env.apply(path, scale, "autoscaler", force=True)
    wanted = [resource("web", deployment(ns, "web", replicas=3))]
    with pytest.raises(ApiError, match="409"):
        run(backend, make_app("web", wanted))
    _, result = run(backend, app_with("web", wanted, force_conflicts=True))
    assert result.applied == 1
    live = cluster.env.get(path)
    assert live is not None and live["spec"]["replicas"] == 3

    cluster.env.apply(path, scale, "autoscaler", force=True)
    flagged = deployment(ns, "web", replicas=4,
                         annotations={"argocd.argoproj.io/sync-options": "Force=true"})
    _, result = run(backend, make_app("web", [resource("web", flagged)]))
    live = cluster.env.get(path)
    assert live is not None and live["spec"]["replicas"] == 4


def test_excluded_kinds_are_never_read_applied_or_pruned(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    kept = resource("web", configmap(ns, "cfg", {"k": "v"}))
    run(backend, make_app("web", [kept]))
    excluding = cluster.backend(exclude=("ConfigMap", "*.example.com"))
    cluster.proxy.reset_counts()
    # The ConfigMap left Git, but its kind is excluded: not listed, not pruned.
    view = excluding.read_live([], {("", kept.id): "web"})
    assert plan_changes(view, [], "web") == []
    assert not [p for _, p, _ in cluster.proxy.requests if "configmaps" in p]
    assert cluster.env.get(f"/api/v1/namespaces/{ns}/configmaps/cfg") is not None
    # A manifest of an excluded kind makes its app unplannable, with its file:line.
    named = resource("web", configmap(ns, "other", {}), line=7)
    view = excluding.read_live([named], {})
    assert view.errors["web"].startswith("apps/web/x.yaml:7: ConfigMap/")
    assert "excluded on target" in view.errors["web"] and "exclude: ConfigMap" in view.errors["web"]


def test_orphan_propagation_per_app_leaves_the_replicaset(cluster: Cluster) -> None:
    ns = cluster.namespace
    web = resource("web", deployment(ns, "web"))
    backend = cluster.backend()
    run(backend, make_app("web", [web]))
    cluster.env.wait_for(f"/apis/apps/v1/namespaces/{ns}/deployments/web",
                         lambda d: (d.get("status") or {}).get("availableReplicas") == 2)
    prune = plan_changes(backend.read_live([], {("", web.id): "web"}), [], "web")
    assert backend.apply(app_with("web", [], propagation_policy="Orphan"), prune).applied == 1
    cluster.env.wait_gone(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    replicasets = cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")
    assert replicasets is not None and len(replicasets["items"]) == 1
    assert not replicasets["items"][0]["metadata"].get("ownerReferences")
