"""The shipped example state repository validates and means what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.kubernetes.cel_health import Rules
from backends.kubernetes.options import Options as KubernetesOptions
from backends.vm.options import VmOptions
from reconciler.model import BackendKind, CheckKind, DesiredState, HealthStatus, ResourceId
from reconciler.render import load_rendered
from reconciler.tree import DirectoryTree

EXAMPLE = Path(__file__).resolve().parents[2] / "desired-state-example"

# The example renders Kustomize and Helm apps with the real tools.
pytestmark = pytest.mark.usefixtures("render_tools")


def load(tree: DirectoryTree) -> DesiredState:
    return load_rendered(tree)


def test_example_validates() -> None:
    desired = load(DirectoryTree(EXAMPLE))
    assert set(desired.targets) == {"laptop", "web-fleet", "prod"}
    assert desired.targets["laptop"].options == VmOptions(
        transport="local", hosts=("localhost",), root="./.demo-root")
    assert desired.targets["prod"].backend is BackendKind.KUBERNETES
    waves = {name: app.wave for name, app in desired.apps.items()}
    assert waves == {"config": 0, "web": 1, "shop": 1, "catalog-staging": 1,
                     "catalog-production": 1, "greeter": 2}
    assert desired.apps["web"].depends_on == ("config",)
    assert len(desired.sync_windows) == 1


def test_example_web_app_serves_a_page_with_a_pid_file() -> None:
    web = load(DirectoryTree(EXAMPLE)).apps["web"]
    by_id = {r.id: r for r in web.resources}
    index = by_id[ResourceId(kind="File", name="/srv/web/index.html")]
    assert index.body["content"] == (EXAMPLE / "apps/web/files/index.html").read_bytes()
    service = by_id[ResourceId(kind="Service", name="demo-web")]
    assert "http.server 18080 --bind 127.0.0.1" in service.body["start"]
    assert "server.pid" in service.body["status"]
    assert service.body["restart_on"] == ["/etc/demo/web.conf", "/srv/web/index.html"]
    (check,) = web.health
    assert check.kind is CheckKind.HTTP
    assert check.spec == {"url": "http://127.0.0.1:18080/", "status": 200}


def test_example_kubernetes_manifests() -> None:
    shop = load(DirectoryTree(EXAMPLE)).apps["shop"]
    ids = {str(r.id) for r in shop.resources}
    assert ids == {"Namespace/shop", "ConfigMap/shop/frontend-config",
                   "Deployment.apps/shop/frontend", "Service/shop/frontend",
                   "Job.batch/shop/frontend-smoke-test"}
    hook = next(r for r in shop.resources if r.id.kind == "Job")
    assert hook.body["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"


def test_example_health_rule_for_certificates() -> None:
    options = load(DirectoryTree(EXAMPLE)).targets["prod"].options
    assert isinstance(options, KubernetesOptions)
    (rule,) = options.health_exprs
    assert (rule.api_version, rule.kind) == ("cert-manager.io/v1", "Certificate")
    rules = Rules([rule])

    def cert(*conditions: dict[str, str]) -> dict[str, object]:
        return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "status": {"conditions": list(conditions)}}

    ready = rules.health(cert({"type": "Ready", "status": "True"}))
    issuing = rules.health(cert({"type": "Issuing", "status": "True"},
                                {"type": "Ready", "status": "False", "reason": "Failed"}))
    failed = rules.health(cert({"type": "Ready", "status": "False", "reason": "Failed"}))
    fresh = rules.health({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"})
    assert [h.status if h else None for h in (ready, issuing, failed, fresh)] == [
        HealthStatus.HEALTHY, HealthStatus.PROGRESSING, HealthStatus.DEGRADED,
        HealthStatus.PROGRESSING]


def test_example_kustomize_overlays_patch_one_base_per_namespace() -> None:
    desired = load(DirectoryTree(EXAMPLE))
    for env, replicas, level in (("staging", 1, "debug"), ("production", 3, "info")):
        app = desired.apps[f"catalog-{env}"]
        by_kind = {r.id.kind: r for r in app.resources}
        assert set(by_kind) == {"Namespace", "ConfigMap", "Deployment", "Service"}
        assert {r.id.namespace for r in app.resources if r.id.kind != "Namespace"} == {
            f"catalog-{env}"}
        assert by_kind["Deployment"].body["spec"]["replicas"] == replicas
        config = by_kind["ConfigMap"].body["data"]
        assert config == {"LOG_LEVEL": level, "PAGE_SIZE": "50", "ENVIRONMENT": env}
        # The Deployment refers to the generated ConfigMap by its hashed name.
        container = by_kind["Deployment"].body["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"][0]["configMapRef"]["name"] == by_kind["ConfigMap"].id.name
        assert by_kind["Deployment"].location.file == f"apps/catalog-{env}/(kustomize build).yaml"


def test_example_helm_app_renders_the_chart_with_its_values() -> None:
    greeter = load(DirectoryTree(EXAMPLE)).apps["greeter"]
    by_kind = {r.id.kind: r for r in greeter.resources}
    assert {str(r.id) for r in greeter.resources} == {
        "ConfigMap/shop/greeter-settings", "Deployment.apps/shop/greeter", "Service/shop/greeter"}
    assert by_kind["Deployment"].body["spec"]["replicas"] == 2
    assert by_kind["ConfigMap"].body["data"] == {"GREETING": "Welcome", "LANGUAGE": "en-GB"}
    assert greeter.depends_on == ("shop",)
