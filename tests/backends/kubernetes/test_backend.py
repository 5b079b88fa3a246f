"""The Kubernetes backend end to end over HTTP: against the test API server, and
against a real cluster when KUBECONFIG is set."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from backends.kubernetes.normalize import APP_LABEL, MANAGED_BY_LABEL, TARGET_ANNOTATION
from reconciler.errors import ApiError
from reconciler.model import Action, HealthStatus
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource
from tests.support.kube_apiserver import KubeApiServer

pytestmark = pytest.mark.kubeconfig


def configmap(ns: str, name: str, data: dict[str, str], **meta: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, **meta}, "data": data}


def deployment(ns: str, name: str, image: str = "nginx:1.27", replicas: int = 2,
               **meta: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
    }


def service(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def sync(cluster: Cluster, manifests: list[dict[str, Any]], app: str = "web", **opts: Any) -> Any:
    """Read, plan and apply one app; returns (changes, apply result)."""
    backend = cluster.backend(**opts)
    resources = [resource(app, m) for m in manifests]
    changes = plan_changes(backend.read_live(resources, {}), resources, app)
    result = backend.apply(make_app(app, resources), changes)
    backend.close()
    return changes, result


def test_create_then_noop_makes_no_writes(cluster: Cluster) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", {"a": "1"}), deployment(ns, "web"), service(ns, "web")]
    changes, result = sync(cluster, manifests)
    assert [c.action for c in changes] == [Action.CREATE] * 3
    assert result.applied == 3

    backend = cluster.backend()
    resources = [resource("web", m) for m in manifests]
    if cluster.server:
        cluster.server.reset_counts()
    view = backend.read_live(resources, {})
    # Server defaults (Deployment strategy, Service clusterIP) are not a difference.
    assert plan_changes(view, resources) == []
    live = view.live[("", resources[0].id)]
    assert live.owner_app == "web"
    assert live.state["metadata"]["labels"][MANAGED_BY_LABEL] == "reconciler"
    assert "managedFields" not in live.state["metadata"] and "status" not in live.state
    if cluster.server:
        assert cluster.server.writes() == []
        assert cluster.server.counts()["PATCH dryRun"] == 0


def test_update_dry_runs_only_what_changed(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [configmap(ns, "a", {"k": "1"}), configmap(ns, "b", {"k": "1"}),
                   deployment(ns, "web")])
    manifests = [configmap(ns, "a", {"k": "2"}), configmap(ns, "b", {"k": "1"}),
                 deployment(ns, "web", image="nginx:1.28")]
    if cluster.server:
        cluster.server.reset_counts()
    changes, _ = sync(cluster, manifests)
    assert {(c.id.name, c.action) for c in changes} == {("a", Action.UPDATE),
                                                        ("web", Action.UPDATE)}
    web = next(c for c in changes if c.id.name == "web")
    assert "nginx:1.28" in web.diff and "nginx:1.27" in web.diff
    # The dry-run answer carries server defaults, so they do not show as removed.
    assert "RollingUpdate" not in web.diff
    if cluster.server:
        assert cluster.server.counts()["PATCH dryRun"] == 2
    _, again = sync(cluster, manifests)
    assert again.applied == 0


def test_a_field_removed_from_git_is_removed_live(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [configmap(ns, "cfg", {"a": "1", "b": "2"})])
    changes, _ = sync(cluster, [configmap(ns, "cfg", {"a": "1"})])
    assert [c.action for c in changes] == [Action.UPDATE]
    assert changes[0].live is not None and "b" in changes[0].live["data"]
    assert changes[0].desired is not None and "b" not in changes[0].desired["data"]
    backend = cluster.backend()
    got = backend.client.request("GET", f"/api/v1/namespaces/{ns}/configmaps/cfg", what="cfg")
    assert got.body["data"] == {"a": "1"}


def test_prune_deletes_only_owned_objects(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [configmap(ns, "keep", {"k": "v"}), configmap(ns, "gone", {"k": "v"})])
    backend = cluster.backend()
    stranger = configmap(ns, "stranger", {"k": "v"})
    other_target = configmap(ns, "other", {"k": "v"}, labels={MANAGED_BY_LABEL: "reconciler",
                             APP_LABEL: "web"}, annotations={TARGET_ANNOTATION: "elsewhere"})
    for body in (stranger, other_target):
        backend.client.request("POST", f"/api/v1/namespaces/{ns}/configmaps", what="cm", body=body)

    changes, result = sync(cluster, [configmap(ns, "keep", {"k": "v"})])
    assert [(c.id.name, c.action) for c in changes] == [("gone", Action.DELETE)]
    assert result.applied == 1
    listed = backend.client.request("GET", f"/api/v1/namespaces/{ns}/configmaps", what="cms")
    names = {i["metadata"]["name"] for i in listed.body["items"]}
    assert {"keep", "stranger", "other"} <= names and "gone" not in names


def test_crd_and_its_custom_resource_in_one_app(cluster: Cluster) -> None:
    group = f"r{cluster.suffix}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                           "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": cluster.namespace}, "spec": {"size": 3}}
    try:
        # The custom resource comes first in Git; the backend still applies the CRD first.
        changes, result = sync(cluster, [widget, crd])
        assert sorted(c.action for c in changes) == [Action.CREATE, Action.CREATE]
        assert result.applied == 2
        changes, result = sync(cluster, [widget, crd])
        assert changes == [] and result.applied == 0
    finally:
        backend = cluster.backend()
        backend.client.request(
            "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}",
            what="crd", allow=(404,))


def test_secret_values_never_leak(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ns, plain, encoded = cluster.namespace, "hunter2-very-secret", "czNjcjN0LWIlNjQtdmFsdWU="
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"password": plain}, "data": {"token": encoded}}
    changes, _ = sync(cluster, [secret])
    rotated = {**secret, "stringData": {"password": plain + "-2"}}
    changes += sync(cluster, [rotated])[0]
    assert [c.action for c in changes] == [Action.CREATE, Action.UPDATE]
    assert "<redacted sha256:" in changes[1].diff
    b64 = base64.b64encode(plain.encode()).decode()
    texts = [c.diff for c in changes] + [json.dumps([c.desired, c.live]) for c in changes]
    with pytest.raises(ApiError) as failed:
        sync(cluster, [{**rotated, "metadata": {"name": "creds", "namespace": "missing-ns"}}])
    texts += [str(failed.value), caplog.text]
    for text in texts:
        assert plain not in text and b64[:20] not in text and encoded not in text


def test_conflicting_field_manager_needs_force(test_server: KubeApiServer,
                                               cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [deployment(ns, "web", replicas=2)])
    test_server.api.apply(_deployments(test_server), ns, "web",
                          {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 5}},
                          manager="autoscaler", force=True, dry_run=False)
    with pytest.raises(ApiError, match=r"Deployment.apps/.*/web.*409"):
        sync(cluster, [deployment(ns, "web", replicas=3)])
    _, result = sync(cluster, [deployment(ns, "web", replicas=3)], force_conflicts=True)
    assert result.applied == 1


def _deployments(server: KubeApiServer) -> Any:
    return next(k for k in server.api.kinds() if k.kind == "Deployment")


def test_ignore_differences_hides_a_field_another_manager_owns(
    test_server: KubeApiServer, cluster: Cluster
) -> None:
    ns = cluster.namespace
    ignore = {"reconciler.io/ignore-differences": '["/spec/replicas"]'}
    manifest = deployment(ns, "web", replicas=2, annotations=ignore)
    sync(cluster, [manifest])
    test_server.api.apply(_deployments(test_server), ns, "web",
                          {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 7}},
                          manager="autoscaler", force=True, dry_run=False)
    changes, result = sync(cluster, [manifest])
    assert changes == [] and result.applied == 0


def test_ignored_fields_keep_their_live_value_on_apply(
    test_server: KubeApiServer, cluster: Cluster
) -> None:
    ns = cluster.namespace
    ignore = {"reconciler.io/ignore-differences": '["/spec/replicas"]'}
    sync(cluster, [deployment(ns, "web", replicas=2, annotations=ignore)])
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    backend = cluster.backend()
    assert backend.client.request("GET", path, what="web").body["spec"]["replicas"] == 2
    test_server.api.apply(_deployments(test_server), ns, "web",
                          {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 7}},
                          manager="autoscaler", force=True, dry_run=False)
    # Another field changes: the apply neither conflicts over replicas (409 without
    # force_conflicts) nor resets the autoscaler's 7 to the manifest's 2.
    changes, result = sync(cluster, [deployment(ns, "web", image="nginx:1.28", replicas=2,
                                                annotations=ignore)])
    assert [c.action for c in changes] == [Action.UPDATE] and result.applied == 1
    spec = backend.client.request("GET", path, what="web").body["spec"]
    assert spec["replicas"] == 7
    assert spec["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


def test_bad_token_is_an_api_error(test_server: KubeApiServer, cluster: Cluster) -> None:
    test_server.token = "rotated"
    backend = cluster.backend()
    with pytest.raises(ApiError, match="401") as failed:
        backend.read_live([resource("web", configmap(cluster.namespace, "x", {}))], {})
    assert failed.value.status == 401


def test_calls_grow_with_kinds_and_namespaces_not_objects(
    test_server: KubeApiServer, cluster: Cluster
) -> None:
    def gets_for(per_namespace: int) -> int:
        manifests = [configmap(ns, f"c{i}", {"i": str(i)})
                     for ns in ("default", cluster.namespace) for i in range(per_namespace)]
        sync(cluster, manifests, app=f"scale{per_namespace}")
        test_server.reset_counts()
        backend = cluster.backend()
        resources = [resource(f"scale{per_namespace}", m) for m in manifests]
        assert plan_changes(backend.read_live(resources, {}), resources,
                            f"scale{per_namespace}") == []
        return len(test_server.requests)

    assert gets_for(2) == gets_for(40) == 1 + 2 + 1  # discovery, 2 namespaces, owned list


def _paged_setup(cluster: Cluster, count: int) -> tuple[Any, list[Any]]:
    manifests = [configmap(cluster.namespace, f"c{i:02d}", {"i": str(i)}) for i in range(count)]
    sync(cluster, manifests)
    backend = cluster.backend()
    backend.page_size = 10
    return backend, [resource("web", m) for m in manifests]


def test_lists_are_paged_and_calls_grow_with_pages(
    test_server: KubeApiServer, cluster: Cluster
) -> None:
    backend, resources = _paged_setup(cluster, 25)
    test_server.reset_counts()
    view = backend.read_live(resources, {})
    assert plan_changes(view, resources) == [] and len(view.live) == 25
    lists = [q for _, path, q in test_server.requests if path.endswith("/configmaps")]
    # 25 objects in pages of 10: three pages for the namespace, three for the owned list.
    assert len(lists) == 6 and all("limit=10" in q for q in lists)
    assert sum("continue=" in q for q in lists) == 4
    assert len(test_server.requests) == 1 + 6  # and one discovery call


def test_an_expired_continue_token_restarts_the_list_unpaged(
    test_server: KubeApiServer, cluster: Cluster
) -> None:
    backend, resources = _paged_setup(cluster, 25)
    compacted: list[str] = []

    def compact_before_the_first_next_page(method: str, path: str, query: dict[str, str]) -> None:
        if "continue" in query and not compacted:
            compacted.append(path)
            test_server.api.compact()

    test_server.before_request = compact_before_the_first_next_page
    test_server.reset_counts()
    view = backend.read_live(resources, {})
    assert compacted and plan_changes(view, resources) == [] and len(view.live) == 25
    namespace_lists = [q for _, path, q in test_server.requests
                       if path == f"/api/v1/namespaces/{cluster.namespace}/configmaps"]
    # First page, the expired second page (410), then one unpaged list.
    assert len(namespace_lists) == 3 and "limit" not in namespace_lists[-1]


# --- health -----------------------------------------------------------------------


def _deploy_path(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/web"


def test_health_missing_before_apply(cluster: Cluster) -> None:
    backend = cluster.backend()
    app = make_app("web", [resource("web", deployment(cluster.namespace, "web"))])
    report = backend.health(app, [""])
    assert report.status is HealthStatus.MISSING and "not found" in report.message


def test_deployment_becomes_available(test_server: KubeApiServer, cluster: Cluster) -> None:
    ns = cluster.namespace
    manifests = [deployment(ns, "web", replicas=2), configmap(ns, "cfg", {})]
    sync(cluster, manifests)
    app = make_app("web", [resource("web", m) for m in manifests])
    backend = cluster.backend()
    first = backend.health(app, [""])
    assert first.status is HealthStatus.PROGRESSING and "Deployment.apps" in first.message
    test_server.patch_status(_deploy_path(ns), {
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
        "availableReplicas": 2})
    assert backend.health(app, [""]).status is HealthStatus.HEALTHY


def test_deployment_progress_deadline_is_degraded(test_server: KubeApiServer,
                                                  cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [deployment(ns, "web")])
    test_server.patch_status(_deploy_path(ns), {
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": 'ReplicaSet "web-1" has timed out progressing.'}]})
    report = cluster.backend().health(make_app("web", [resource("web", deployment(ns, "web"))]),
                                      [""])
    assert report.status is HealthStatus.DEGRADED and "deadline" in report.message


def test_failed_job_is_degraded(test_server: KubeApiServer, cluster: Cluster) -> None:
    ns = cluster.namespace
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "migrate", "namespace": ns},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "m", "image": "busybox"}]}}}}
    sync(cluster, [job], app="db")
    app = make_app("db", [resource("db", job)])
    assert cluster.backend().health(app, [""]).status is HealthStatus.PROGRESSING
    test_server.patch_status(f"/apis/batch/v1/namespaces/{ns}/jobs/migrate", {
        "failed": 7, "conditions": [{"type": "Failed", "status": "True",
                                     "reason": "BackoffLimitExceeded"}]})
    report = cluster.backend().health(app, [""])
    assert report.status is HealthStatus.DEGRADED and "BackoffLimitExceeded" in report.message


def test_prune_finds_a_kind_that_left_git_through_the_inventory(cluster: Cluster) -> None:
    ns = cluster.namespace
    cfg, web = configmap(ns, "cfg", {"k": "v"}), deployment(ns, "web")
    sync(cluster, [cfg, web])
    backend = cluster.backend()
    backend.client.request("POST", f"/api/v1/namespaces/{ns}/configmaps", what="cm",
                           body=configmap(ns, "hand-made", {"k": "v"}))
    # Git now names no ConfigMap at all; only the inventory remembers the kind.
    inventory = {("", resource("web", m).id): "web" for m in (cfg, web)}
    resources = [resource("web", web)]
    changes = plan_changes(backend.read_live(resources, inventory), resources)
    assert [(c.id.kind, c.id.name, c.action) for c in changes] == [
        ("ConfigMap", "cfg", Action.DELETE)]
    assert backend.apply(make_app("web", resources), changes).applied == 1
    listed = backend.client.request("GET", f"/api/v1/namespaces/{ns}/configmaps", what="cms")
    names = {i["metadata"]["name"] for i in listed.body["items"]}
    assert "hand-made" in names and "cfg" not in names


def _crd(group: str, kind: str, version: str) -> dict[str, Any]:
    plural = kind.lower() + "s"
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "schema": schema}]}}


def test_inventory_kinds_served_only_by_a_version_that_is_not_preferred(
    cluster: Cluster,
) -> None:
    group = f"v{cluster.suffix}.example.com"
    crds = [_crd(group, "Alpha", "v1"), _crd(group, "Beta", "v2")]
    beta = {"apiVersion": f"{group}/v2", "kind": "Beta",
            "metadata": {"name": "b1", "namespace": cluster.namespace}, "spec": {}}
    try:
        sync(cluster, crds, app="crds")
        sync(cluster, [beta])
        backend = cluster.backend()
        # The inventory carries no version; Beta is not served by the group's
        # preferred version, yet its object is still found and pruned.
        view = backend.read_live([], {("", resource("web", beta).id): "web"})
        assert [r.owner_app for r in view.live.values()] == ["web"]
        changes = plan_changes(view, [], "web")
        assert [(c.id.kind, c.action) for c in changes] == [("Beta", Action.DELETE)]
        assert backend.apply(make_app("web", []), changes).applied == 1
    finally:
        backend = cluster.backend()
        for crd in crds:
            backend.client.request(
                "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                f"{crd['metadata']['name']}", what="crd", allow=(404,))


def test_an_unavailable_api_group_is_an_error_not_an_empty_list(
    test_server: KubeApiServer, cluster: Cluster
) -> None:
    group = f"u{cluster.suffix}.example.com"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": cluster.namespace}, "spec": {}}
    sync(cluster, [_crd(group, "Widget", "v1"), widget])
    test_server.unavailable.add(f"{group}/v1")
    # Reporting its objects as absent would make the engine forget them, unpruned.
    with pytest.raises(ApiError, match="503"):
        cluster.backend().read_live([], {("", resource("web", widget).id): "web"})
