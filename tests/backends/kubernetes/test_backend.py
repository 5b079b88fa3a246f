"""The Kubernetes backend end to end against the real control plane (or the cluster
of $KUBECONFIG), through the recording proxy."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest

from backends.kubernetes.normalize import APP_LABEL, MANAGED_BY_LABEL, TARGET_ANNOTATION
from reconciler.errors import ApiError
from reconciler.model import Action, HealthStatus
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource

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
    cluster.proxy.reset_counts()
    view = backend.read_live(resources, {})
    # Server defaults (Deployment strategy, Service clusterIP) are not a difference.
    assert plan_changes(view, resources) == []
    live = view.live[("", resources[0].id)]
    assert live.owner_app == "web"
    assert live.state["metadata"]["labels"][MANAGED_BY_LABEL] == "reconciler"
    assert "managedFields" not in live.state["metadata"] and "status" not in live.state
    assert cluster.proxy.writes() == []
    assert cluster.proxy.counts()["PATCH dryRun"] == 0


def test_update_dry_runs_only_what_changed(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [configmap(ns, "a", {"k": "1"}), configmap(ns, "b", {"k": "1"}),
                   deployment(ns, "web")])
    manifests = [configmap(ns, "a", {"k": "2"}), configmap(ns, "b", {"k": "1"}),
                 deployment(ns, "web", image="nginx:1.28")]
    cluster.proxy.reset_counts()
    changes, _ = sync(cluster, manifests)
    assert {(c.id.name, c.action) for c in changes} == {("a", Action.UPDATE),
                                                        ("web", Action.UPDATE)}
    web = next(c for c in changes if c.id.name == "web")
    assert "nginx:1.28" in web.diff and "nginx:1.27" in web.diff
    # The dry-run answer carries server defaults, so they do not show as removed.
    assert "RollingUpdate" not in web.diff
    assert cluster.proxy.counts()["PATCH dryRun"] == 2
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


def _deploy_path(ns: str, name: str = "web") -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"


def _autoscale(cluster: Cluster, replicas: int) -> None:
    """Another field manager takes spec.replicas, as an autoscaler does."""
    cluster.env.apply(_deploy_path(cluster.namespace), {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": cluster.namespace},
        "spec": {"replicas": replicas}}, "autoscaler", force=True)


def test_conflicting_field_manager_needs_force(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [deployment(ns, "web", replicas=2)])
    _autoscale(cluster, 5)
    with pytest.raises(ApiError, match=r"Deployment.apps/.*/web.*409") as failed:
        sync(cluster, [deployment(ns, "web", replicas=3)])
    # The server's own words name the field and the manager that owns it.
    assert 'conflict with "autoscaler"' in str(failed.value)
    assert ".spec.replicas" in str(failed.value)
    _, result = sync(cluster, [deployment(ns, "web", replicas=3)], force_conflicts=True)
    assert result.applied == 1
    live = cluster.env.get(_deploy_path(ns))
    assert live is not None and live["spec"]["replicas"] == 3


def test_ignore_differences_hides_a_field_another_manager_owns(cluster: Cluster) -> None:
    ns = cluster.namespace
    ignore = {"reconciler.io/ignore-differences": '["/spec/replicas"]'}
    manifest = deployment(ns, "web", replicas=2, annotations=ignore)
    sync(cluster, [manifest])
    _autoscale(cluster, 7)
    cluster.proxy.reset_counts()
    changes, result = sync(cluster, [manifest])
    assert changes == [] and result.applied == 0
    assert cluster.proxy.writes() == []


def test_ignored_fields_keep_their_live_value_on_apply(cluster: Cluster) -> None:
    ns = cluster.namespace
    ignore = {"reconciler.io/ignore-differences": '["/spec/replicas"]'}
    sync(cluster, [deployment(ns, "web", replicas=2, annotations=ignore)])
    path = _deploy_path(ns)
    live = cluster.env.get(path)
    assert live is not None and live["spec"]["replicas"] == 2
    _autoscale(cluster, 7)
    # Another field changes: the apply neither conflicts over replicas (409 without
    # force_conflicts) nor resets the autoscaler's 7 to the manifest's 2.
    changes, result = sync(cluster, [deployment(ns, "web", image="nginx:1.28", replicas=2,
                                                annotations=ignore)])
    assert [c.action for c in changes] == [Action.UPDATE] and result.applied == 1
    live = cluster.env.get(path)
    assert live is not None
    assert live["spec"]["replicas"] == 7
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


def test_bad_token_is_an_api_error(cluster: Cluster) -> None:
    backend = cluster.backend(token="rotated")
    with pytest.raises(ApiError, match="401") as failed:
        backend.read_live([resource("web", configmap(cluster.namespace, "x", {}))], {})
    assert failed.value.status == 401


def test_calls_grow_with_kinds_and_namespaces_not_objects(cluster: Cluster) -> None:
    other = cluster.env.namespace("other")

    def gets_for(per_namespace: int) -> int:
        manifests = [configmap(ns, f"c{i}", {"i": str(i)})
                     for ns in (other, cluster.namespace) for i in range(per_namespace)]
        sync(cluster, manifests, app=f"scale{per_namespace}")
        cluster.proxy.reset_counts()
        backend = cluster.backend()
        resources = [resource(f"scale{per_namespace}", m) for m in manifests]
        assert plan_changes(backend.read_live(resources, {}), resources,
                            f"scale{per_namespace}") == []
        return len(cluster.proxy.requests)

    try:
        assert gets_for(2) == gets_for(40) == 1 + 2 + 1  # discovery, 2 namespaces, owned list
    finally:
        cluster.env.drop_namespace(other)


def _paged_setup(cluster: Cluster, count: int, **options: Any) -> tuple[Any, list[Any]]:
    manifests = [configmap(cluster.namespace, f"c{i:02d}", {"i": str(i)}) for i in range(count)]
    sync(cluster, manifests)
    backend = cluster.backend(**options)
    backend.page_size = 10
    return backend, [resource("web", m) for m in manifests]


def test_lists_are_paged_and_calls_grow_with_pages(cluster: Cluster) -> None:
    backend, resources = _paged_setup(cluster, 25)
    cluster.proxy.reset_counts()
    view = backend.read_live(resources, {})
    assert plan_changes(view, resources) == [] and len(view.live) == 25
    requests = cluster.proxy.requests
    here = [q for _, path, q in requests
            if path == f"/api/v1/namespaces/{cluster.namespace}/configmaps"]
    # The namespace's list leaves out what a reconciler manages: all 25 are ours.
    assert here == ["limit=10&labelSelector=app.kubernetes.io/managed-by%21%3Dreconciler"]
    owned = [q for _, path, q in requests if path == "/api/v1/configmaps"]
    # The owned list runs cluster-wide: 25 objects (and other tests' leftovers)
    # in pages of 10, each page after the first with its continue token.
    assert len(owned) >= 3 and all("limit=10" in q and "managed-by%3D" in q for q in owned)
    assert sum("continue=" in q for q in owned) == len(owned) - 1
    assert len(requests) == 1 + len(here) + len(owned)  # and one discovery call


def test_an_expired_continue_token_restarts_the_list_unpaged(cluster: Cluster) -> None:
    plane = cluster.env.plane
    if plane is None:
        pytest.skip("compacts etcd: needs the local control plane, not $KUBECONFIG")
    backend, resources = _paged_setup(cluster, 25, namespaces=(cluster.namespace,))
    compacted: list[str] = []

    def compact_before_the_first_next_page(method: str, path: str, query: dict[str, str]) -> None:
        if "continue" in query and not compacted:
            compacted.append(path)
            # Writes after the first page, then a compaction past them: the token's
            # revision is gone, as after the server's own periodic compaction.
            for i in range(3):
                cluster.env.create(f"/api/v1/namespaces/{cluster.namespace}/configmaps",
                                   configmap(cluster.namespace, f"late{i}", {}))
            plane.compact()

    cluster.proxy.before_request = compact_before_the_first_next_page
    cluster.proxy.reset_counts()
    view = backend.read_live(resources, {})
    assert compacted and plan_changes(view, resources) == [] and len(view.live) == 25
    owned_lists = [q for _, path, q in cluster.proxy.requests
                   if path == f"/api/v1/namespaces/{cluster.namespace}/configmaps"
                   and "managed-by%3D" in q]
    # First page, the expired second page (410), then one unpaged list.
    assert len(owned_lists) == 3 and "limit" not in owned_lists[-1]


# --- health, judged on what the real controllers and kwok's nodes do ---------------


def _health_until(backend: Any, app: Any, wanted: HealthStatus, timeout: float = 60.0) -> Any:
    """Probe as the health gate does until `wanted`; every status seen on the way."""
    seen: list[HealthStatus] = []
    deadline = time.monotonic() + timeout
    while True:
        report = backend.health(app, [""])
        seen.append(report.status)
        if report.status is wanted or time.monotonic() > deadline:
            return report, seen
        time.sleep(0.2)


def test_health_missing_before_apply(cluster: Cluster) -> None:
    backend = cluster.backend()
    app = make_app("web", [resource("web", deployment(cluster.namespace, "web"))])
    report = backend.health(app, [""])
    assert report.status is HealthStatus.MISSING and "not found" in report.message


def test_deployment_becomes_available_through_the_controllers(cluster: Cluster) -> None:
    ns = cluster.namespace
    manifests = [deployment(ns, "web", replicas=2), configmap(ns, "cfg", {})]
    sync(cluster, manifests)
    app = make_app("web", [resource("web", m) for m in manifests])
    report, seen = _health_until(cluster.backend(), app, HealthStatus.HEALTHY)
    assert report.status is HealthStatus.HEALTHY, report.message
    assert set(seen) <= {HealthStatus.PROGRESSING, HealthStatus.HEALTHY}
    live = cluster.env.get(_deploy_path(ns))
    assert live is not None and live["status"]["availableReplicas"] == 2
    pods = cluster.env.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3Dweb")
    assert pods is not None and len(pods["items"]) == 2
    assert all(p["spec"].get("nodeName", "").startswith("kwok-node-") for p in pods["items"])


def test_unschedulable_deployment_is_degraded_after_its_progress_deadline(
    cluster: Cluster,
) -> None:
    ns = cluster.namespace
    stuck = deployment(ns, "web")
    stuck["spec"]["progressDeadlineSeconds"] = 2
    stuck["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "none-has-it"}
    sync(cluster, [stuck])
    app = make_app("web", [resource("web", stuck)])
    report, seen = _health_until(cluster.backend(), app, HealthStatus.DEGRADED, timeout=30)
    assert report.status is HealthStatus.DEGRADED, report.message
    assert "deadline" in report.message.lower() or "timed out" in report.message
    assert HealthStatus.HEALTHY not in seen


def test_failed_job_is_degraded(cluster: Cluster) -> None:
    ns = cluster.namespace
    # Its pod can never be placed, so the Job fails at its active deadline.
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "migrate", "namespace": ns},
           "spec": {"activeDeadlineSeconds": 2, "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never",
                                          "nodeSelector": {"disk": "none-has-it"},
                                          "containers": [{"name": "m", "image": "busybox"}]}}}}
    sync(cluster, [job], app="db")
    app = make_app("db", [resource("db", job)])
    assert cluster.backend().health(app, [""]).status is HealthStatus.PROGRESSING
    report, _ = _health_until(cluster.backend(), app, HealthStatus.DEGRADED, timeout=30)
    assert report.status is HealthStatus.DEGRADED, report.message
    assert "DeadlineExceeded" in report.message


def test_completed_job_is_healthy(cluster: Cluster) -> None:
    ns = cluster.namespace
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "migrate", "namespace": ns},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "m", "image": "busybox"}]}}}}
    sync(cluster, [job], app="db")
    app = make_app("db", [resource("db", job)])
    report, _ = _health_until(cluster.backend(), app, HealthStatus.HEALTHY)
    assert report.status is HealthStatus.HEALTHY, report.message


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


def test_an_unavailable_api_group_is_an_error_not_an_empty_list(cluster: Cluster) -> None:
    group = f"u{cluster.suffix}.example.com"
    # An aggregated API whose server does not exist: the aggregator answers 503.
    service = f"/apis/apiregistration.k8s.io/v1/apiservices/v1.{group}"
    cluster.env.create("/apis/apiregistration.k8s.io/v1/apiservices", {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": f"v1.{group}"},
        "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "insecureSkipTLSVerify": True,
                 "service": {"namespace": cluster.namespace, "name": "nobody-serves-this"}}})
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": cluster.namespace}, "spec": {}}
    try:
        # Reporting its objects as absent would make the engine forget them, unpruned.
        with pytest.raises(ApiError, match="503"):
            cluster.backend().read_live([], {("", resource("web", widget).id): "web"})
    finally:
        cluster.env.delete(service)
