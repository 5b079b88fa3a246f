"""The container and Kubernetes files agree with the code they ship."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from reconciler.daemon.config import missing_secrets, parse_config
from reconciler.web import routes

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            name = doc["metadata"]["name"] if "metadata" in doc else path.stem
            out[f"{doc['kind']}/{name}"] = doc
    return out


def test_the_configmap_is_a_valid_daemon_config_served_on_all_interfaces() -> None:
    docs = manifests()
    config = parse_config(docs["ConfigMap/reconciler-config"]["data"]["config.yaml"])
    assert config.listen == "0.0.0.0:8080"
    container = docs["Deployment/reconciler"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: "set" for e in container["env"]}
    assert missing_secrets(config, env) == []  # every variable the config names is provided
    assert all("valueFrom" in e or "value" in e for e in container["env"])
    assert not any(d["kind"] == "Secret" for d in docs.values())  # referenced, never shipped
    probes = (container["livenessProbe"]["httpGet"]["path"],
              container["readinessProbe"]["httpGet"]["path"])
    assert probes == ("/healthz", "/readyz")
    assert all(routes.resolve("GET", p).route.public for p in probes)  # type: ignore[union-attr]


def test_the_pod_runs_as_the_images_user_without_privileges() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pod = manifests()["Deployment/reconciler"]["spec"]["template"]["spec"]
    uid = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert uid is not None and int(uid.group(1)) == pod["securityContext"]["runAsUser"]
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert 'ENTRYPOINT ["reconciler", "run", "--config", "/etc/reconciler/config.yaml"]' \
        in dockerfile
    assert "/healthz" in dockerfile and 'VOLUME ["/var/lib/reconciler"]' in dockerfile


def test_rbac_grants_apply_delete_and_leases_but_not_rbac_itself() -> None:
    docs = manifests()
    rules = docs["ClusterRole/reconciler"]["rules"]
    deployments = next(r for r in rules if "deployments" in r["resources"])
    assert {"list", "patch", "create", "delete"} <= set(deployments["verbs"])
    assert not any(r for r in rules if "rbac.authorization.k8s.io" in r["apiGroups"])
    lease = docs["Role/reconciler-leader-election"]["rules"][0]
    assert lease["apiGroups"] == ["coordination.k8s.io"] and lease["resources"] == ["leases"]
