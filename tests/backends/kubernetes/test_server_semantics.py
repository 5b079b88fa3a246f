"""What only a real API server shows: namespaces finalised by the namespace
controller, propagation policies carried out by the garbage collector, 422s from
validation, RBAC refusals, finalizers that hold a deletion."""

from __future__ import annotations

import time
from typing import Any

import pytest

from reconciler import plan
from reconciler.errors import ApiError
from reconciler.model import Action, BackendKind, DesiredState, Location, Target
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource
from tests.backends.kubernetes.test_backend import configmap, deployment, sync

pytestmark = pytest.mark.kubeconfig


def _names(cluster: Cluster, path: str) -> set[str]:
    listed = cluster.env.get(path)
    assert listed is not None
    return {i["metadata"]["name"] for i in listed["items"]}


def test_a_namespace_and_its_objects_in_one_app_then_pruned_whole(cluster: Cluster) -> None:
    ns = f"team-{cluster.suffix}"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    # Git lists the namespace last; it is still created first.
    manifests = [configmap(ns, "cfg", {"k": "v"}), deployment(ns, "web"), namespace]
    try:
        changes, result = sync(cluster, manifests, app="team")
        assert sorted(c.id.kind for c in changes) == ["ConfigMap", "Deployment", "Namespace"]
        assert result.applied == 3
        cluster.env.wait_for(f"/apis/apps/v1/namespaces/{ns}/deployments/web",
                             lambda d: (d.get("status") or {}).get("availableReplicas") == 2)
        # Someone else's object of the same name in the test's own namespace survives.
        cluster.env.create(f"/api/v1/namespaces/{cluster.namespace}/configmaps",
                           configmap(cluster.namespace, "cfg", {"k": "theirs"}))

        inventory = {("", resource("team", m).id): "team" for m in manifests}
        backend = cluster.backend(propagation_policy="Foreground")
        view = backend.read_live([], inventory)
        prune = plan_changes(view, [], "team")
        assert sorted((c.id.kind, c.action) for c in prune) == [
            ("ConfigMap", Action.DELETE), ("Deployment", Action.DELETE),
            ("Namespace", Action.DELETE)]
        # Deletes run in reverse order: the objects, then their namespace.
        assert backend.apply(make_app("team", []), prune).applied == 3
        cluster.env.wait_gone(f"/api/v1/namespaces/{ns}", timeout=90)
        theirs = cluster.env.get(f"/api/v1/namespaces/{cluster.namespace}/configmaps/cfg")
        assert theirs is not None and theirs["data"] == {"k": "theirs"}
    finally:
        cluster.env.drop_namespace(ns)


def test_orphan_propagation_leaves_the_dependents(cluster: Cluster) -> None:
    ns = cluster.namespace
    web = deployment(ns, "web")
    sync(cluster, [web])
    cluster.env.wait_for(f"/apis/apps/v1/namespaces/{ns}/deployments/web",
                         lambda d: (d.get("status") or {}).get("availableReplicas") == 2)
    backend = cluster.backend(propagation_policy="Orphan")
    inventory = {("", resource("web", web).id): "web"}
    prune = plan_changes(backend.read_live([], inventory), [], "web")
    assert [(c.id.kind, c.action) for c in prune] == [("Deployment", Action.DELETE)]
    assert backend.apply(make_app("web", []), prune).applied == 1
    cluster.env.wait_gone(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    # The ReplicaSet stays, no longer owned by anyone.
    replicasets = cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")
    assert replicasets is not None and len(replicasets["items"]) == 1
    assert not replicasets["items"][0]["metadata"].get("ownerReferences")


def test_a_manifest_the_server_rejects_names_its_file_and_line(cluster: Cluster) -> None:
    ns = cluster.namespace
    bad = deployment(ns, "web")
    bad["spec"]["replicas"] = -1
    manifests = [configmap(ns, "first", {}), bad, configmap(ns, "after", {})]
    resources = [resource("web", m, line=i * 10 + 1) for i, m in enumerate(manifests)]
    backend = cluster.backend()
    changes = plan_changes(backend.read_live(resources, {}), resources)
    # Changes of one app are applied in Git's order inside their kind rank.
    with pytest.raises(ApiError) as failed:
        backend.apply(make_app("web", resources), changes)
    message = str(failed.value)
    assert message.startswith("apps/web/x.yaml:11: ")
    assert "422" in message and "spec.replicas" in message
    assert failed.value.status == 422
    # Nothing after the rejected object was applied.
    assert "after" not in _names(cluster, f"/api/v1/namespaces/{ns}/configmaps")


def test_missing_list_permission_names_verb_group_resource_and_namespace(
    cluster: Cluster,
) -> None:
    ns = cluster.namespace
    _grant(cluster, "editor", [{"apiGroups": [""], "resources": ["configmaps"],
                                "verbs": ["get", "list", "create", "patch", "delete"]}])
    token = cluster.env.token_for(ns, "editor")
    # A tenant's credentials: namespace-scoped, so the target names its namespace.
    backend = cluster.backend(token=token, namespaces=(ns,))
    cms = [configmap(ns, "cfg", {"k": "v"})]
    changes, result = sync_with(backend, cms)
    assert [c.action for c in changes] == [Action.CREATE] and result.applied == 1
    # Cluster-wide reads are what such credentials cannot do; `namespaces` avoids them.
    assert not [p for _, p, _ in cluster.proxy.requests if p == "/api/v1/configmaps"]

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
              "stringData": {"k": "v"}}
    with pytest.raises(ApiError, match="403") as failed:
        backend.read_live([resource("web", secret)], {})
    message = str(failed.value)
    assert 'cannot list resource "secrets"' in message
    assert 'in API group ""' in message and f'in the namespace "{ns}"' in message


def test_a_manifest_outside_the_listed_namespaces_is_refused(cluster: Cluster) -> None:
    backend = cluster.backend(namespaces=(cluster.namespace,))
    elsewhere = resource("web", configmap("kube-system", "cfg", {}), line=4)
    cluster.proxy.reset_counts()
    with pytest.raises(ApiError, match=r"apps/web/x\.yaml:4: .*namespace 'kube-system'"):
        backend.read_live([elsewhere], {})


def test_a_terminating_object_is_not_deleted_twice_and_a_stuck_one_is_reported(
    cluster: Cluster,
) -> None:
    ns = cluster.namespace
    held = configmap(ns, "held", {"k": "v"})
    sync(cluster, [held])
    path = f"/api/v1/namespaces/{ns}/configmaps/held"
    status, _ = cluster.env.call("PATCH", path, {"metadata": {"finalizers": ["example.com/hold"]}},
                                 content_type="application/merge-patch+json")
    assert status == 200
    cluster.env.delete(path)  # now terminating, held by the finalizer
    backend = cluster.backend(delete_timeout=1.5)
    inventory = {("", resource("web", held).id): "web"}
    prune = plan_changes(backend.read_live([], inventory), [], "web")
    assert [c.action for c in prune] == [Action.DELETE]
    cluster.proxy.reset_counts()
    began = time.monotonic()
    with pytest.raises(ApiError, match=r"still terminating .* example\.com/hold"):
        backend.apply(make_app("web", []), prune)
    assert time.monotonic() - began < 15
    assert [w for w in cluster.proxy.writes() if w[0] == "DELETE"] == []

    # Once the finalizer is gone, the same prune ends without another DELETE.
    status, _ = cluster.env.call("PATCH", path, {"metadata": {"finalizers": None}},
                                 content_type="application/merge-patch+json")
    assert status == 200
    cluster.env.wait_gone(path)
    assert cluster.backend().apply(make_app("web", []), prune).applied == 1


def sync_with(backend: Any, manifests: list[dict[str, Any]], app: str = "web") -> Any:
    resources = [resource(app, m) for m in manifests]
    changes = plan_changes(backend.read_live(resources, {}), resources, app)
    return changes, backend.apply(make_app(app, resources), changes)


def _grant(cluster: Cluster, account: str, rules: list[dict[str, Any]]) -> None:
    ns = cluster.namespace
    cluster.env.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": account}, "rules": rules})
    cluster.env.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]})


def test_a_field_conflict_plans_the_change_and_other_409s_are_errors(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    ns = cluster.namespace
    sync(cluster, [deployment(ns, "web", replicas=2)])
    cluster.env.apply(f"/apis/apps/v1/namespaces/{ns}/deployments/web", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 5}}, "autoscaler", force=True)
    wanted = [resource("web", deployment(ns, "web", replicas=3))]
    backend = cluster.backend()
    changes = plan_changes(backend.read_live(wanted, {}), wanted)
    # The plan shows the intended change; the log names the field and its manager.
    assert [c.action for c in changes] == [Action.UPDATE]
    assert "-  replicas: 5\n+  replicas: 3" in changes[0].diff
    assert ".spec.replicas (owned by autoscaler)" in caplog.text

    # A 409 that is no field conflict (an out-of-date resourceVersion) makes its
    # app unplannable: the plan cannot know what the server would make of it.
    sync(cluster, [configmap(ns, "cfg", {"k": "1"})], app="cfg")
    stale = configmap(ns, "cfg", {"k": "2"})
    stale["metadata"]["resourceVersion"] = "1"
    view = backend.read_live([resource("cfg", stale, line=7)], {})
    assert view.errors["cfg"].startswith("apps/cfg/x.yaml:7: ")
    assert "409" in view.errors["cfg"] and "modified" in view.errors["cfg"]


def test_an_object_the_server_refuses_fails_its_app_only(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    first = [resource("web", deployment(ns, "web")), resource("api", deployment(ns, "api"))]
    created = plan.plan(_state(cluster, first), {cluster.target: backend.read_live(first, {})})
    for app_plan in created.waves[0].apps:
        backend.apply(make_app(app_plan.app, []), app_plan.changes)
    # A negative replica count: the server refuses the dry-run (422).
    broken = deployment(ns, "web")
    broken["spec"]["replicas"] = -1
    newer = deployment(ns, "api", image="nginx:1.28")
    resources = [resource("web", broken, line=3), resource("api", newer, line=9)]
    view = backend.read_live(resources, {})
    assert list(view.errors) == ["web"]
    assert view.errors["web"].startswith("apps/web/x.yaml:3: ")
    assert "422" in view.errors["web"] and "spec.replicas" in view.errors["web"]
    planned = plan.plan(_state(cluster, resources), {cluster.target: view})
    # The other app on the target still plans its change.
    by_app = {a.app: a for w in planned.waves for a in w.apps}
    assert by_app["web"].error == view.errors["web"] and by_app["web"].changes == ()
    assert [c.id.name for c in by_app["api"].changes] == ["api"]
    assert planned.errors() == [("web", view.errors["web"])]


def test_an_immutable_field_change_is_planned_and_refused_at_apply(cluster: Cluster) -> None:
    """Whether an immutable change may be made (replace) is the app's to say, which
    only the apply knows; so it plans as an update, and the apply refuses it before
    any write of the app unless the app may replace it (test_sync_options.py)."""
    ns = cluster.namespace
    backend = cluster.backend()
    first = [resource("web", deployment(ns, "web"))]
    backend.apply(make_app("web", first), plan_changes(backend.read_live(first, {}), first))
    moved = deployment(ns, "web")
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "front"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    resources = [resource("web", moved, line=3)]
    view = backend.read_live(resources, {})
    assert view.errors == {}
    changes = plan_changes(view, resources)
    assert [c.action for c in changes] == [Action.UPDATE]
    with pytest.raises(ApiError, match=r"^apps/web/x\.yaml:3: .*field is immutable"):
        backend.apply(make_app("web", resources), changes)


def _state(cluster: Cluster, resources: list[Any]) -> DesiredState:
    """A state repo of the test's one target and one app per resource's app."""
    here = Location(file="reconciler.yaml", line=1)
    apps: dict[str, list[Any]] = {}
    for r in resources:
        apps.setdefault(r.app, []).append(r)
    return DesiredState(
        revision="test",
        targets={cluster.target: Target(name=cluster.target, backend=BackendKind.KUBERNETES,
                                        options={}, location=here)},
        apps={name: make_app(name, rs, target=cluster.target) for name, rs in apps.items()})


def test_a_key_removed_from_a_secrets_string_data_is_removed_live(cluster: Cluster) -> None:
    ns = cluster.namespace
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
              "stringData": {"user": "app", "password": "first"}}
    sync(cluster, [secret])
    changes, result = sync(cluster, [{**secret, "stringData": {"user": "app"}}])
    assert [c.action for c in changes] == [Action.UPDATE] and result.applied == 1
    live = cluster.env.get(f"/api/v1/namespaces/{ns}/secrets/db")
    assert live is not None and set(live["data"]) == {"user"}
    cluster.proxy.reset_counts()
    again, _ = sync(cluster, [{**secret, "stringData": {"user": "app"}}])
    assert again == [] and cluster.proxy.counts()["PATCH dryRun"] == 0
    assert cluster.proxy.writes() == []
