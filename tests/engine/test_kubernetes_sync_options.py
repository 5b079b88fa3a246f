"""Kubernetes sync options through the Engine: a real git repo, the real control plane."""

from __future__ import annotations

from reconciler.engine import Engine
from tests.engine import support_targets as st
from tests.support.kube_env import KubeTest

repo = st.kube_web_repo
engine = st.engine_of_repo


def test_a_new_selector_fails_clearly_without_replace_and_deploys_with_it(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    repo.write("apps/web/deploy.yaml", st.deployment("web", "nginx:1.27", kube.namespace))
    repo.commit("web")
    assert engine.sync().result == "success"
    first = st.live_object(kube, "deployments", "web", group="apps")
    assert first is not None
    text = st.deployment("web", "nginx:1.28", kube.namespace).replace(
        "matchLabels: {app: web}", "matchLabels: {app: web, tier: front}").replace(
        "labels: {app: web}", "labels: {app: web, tier: front}")
    repo.write("apps/web/deploy.yaml", text)
    repo.commit("web: new selector")
    kube.proxy.reset_counts()
    refused = engine.sync()
    assert refused.result == "failure", refused.message
    assert "apps/web/deploy.yaml:1: " in refused.message
    assert "spec.selector" in refused.message and "field is immutable" in refused.message
    assert "set `replace: true`" in refused.message
    assert kube.proxy.writes() == []

    repo.app("web", "prod", extra="timeout: 60s\nkubernetes: {replace: true}\n")
    repo.commit("web: may be replaced")
    replaced = engine.sync()
    assert replaced.result == "success", replaced.message
    after = st.live_object(kube, "deployments", "web", group="apps")
    assert after is not None and after["metadata"]["uid"] != first["metadata"]["uid"]
    assert after["spec"]["selector"]["matchLabels"] == {"app": "web", "tier": "front"}
    assert st.image_of(kube, "web") == "nginx:1.28"


def test_a_tenant_target_cannot_touch_another_namespace(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    home = kube.namespace
    other = kube.env.namespace("other")
    try:
        kube.env.create(f"/api/v1/namespaces/{home}/serviceaccounts",
                        {"metadata": {"name": "deployer"}})
        kube.env.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{home}/rolebindings", {
            "metadata": {"name": "deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": home}]})
        spec = repo.targets["prod"]
        tenant = f"impersonate: {{service_account: {home}/deployer}}"
        repo.targets["prod"] = spec.replace(f"namespaces: [{home}]",
                                            f"namespaces: [{home}], {tenant}")
        repo.write("apps/web/config.yaml", st.configmap("web", {"k": "v"}, home))
        repo.commit("web at home")
        first = engine.sync()
        assert first.result == "success", first.message
        assert st.live_object(kube, "configmaps", "web") is not None

        # The target is told of a second namespace, where its account has no rights.
        repo.targets["prod"] = spec.replace(f"namespaces: [{home}]",
                                            f"namespaces: [{home}, {other}], {tenant}")
        repo.write("apps/web/elsewhere.yaml", st.configmap("web", {"k": "v"}, other))
        repo.commit("web reaches into another namespace")
        kube.proxy.reset_counts()
        result = engine.sync()
        assert result.result == "failure", result.message
        assert f"impersonating service account {home}/deployer" in result.message
        assert "403" in result.message and f'in the namespace "{other}"' in result.message
        assert kube.proxy.writes() == []
        assert kube.env.get(f"/api/v1/namespaces/{other}/configmaps/web") is None
    finally:
        kube.env.drop_namespace(other)


def test_create_namespace_and_exclude_from_the_state_repo(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    home = kube.namespace
    made = f"{home}-made"
    try:
        spec = repo.targets["prod"]
        repo.targets["prod"] = spec.replace(f"namespaces: [{home}]",
                                            f"namespaces: [{home}, {made}], exclude: [Secret]")
        repo.app("web", "prod", extra="kubernetes: {create_namespace: true}\n")
        repo.write("apps/web/config.yaml", st.configmap("web", {"k": "v"}, made))
        repo.commit("web in a namespace nobody made")
        result = engine.sync()
        assert result.result == "success", result.message
        namespace = kube.env.get(f"/api/v1/namespaces/{made}")
        assert namespace is not None
        assert kube.env.get(f"/api/v1/namespaces/{made}/configmaps/web") is not None

        repo.write("apps/web/secret.yaml", "apiVersion: v1\nkind: Secret\n"
                   f"metadata: {{name: token, namespace: {made}}}\nstringData: {{k: v}}\n")
        repo.commit("web with a Secret, a kind the target excludes")
        kube.proxy.reset_counts()
        refused = engine.sync()
        assert refused.result == "failure", refused.message
        assert "apps/web/secret.yaml:1: Secret/" in refused.message
        assert "excluded on target prod (exclude: Secret)" in refused.message
        assert kube.proxy.writes() == []
        assert not [p for _, p, _ in kube.proxy.requests if "/secrets" in p]
    finally:
        kube.env.drop_namespace(made)
