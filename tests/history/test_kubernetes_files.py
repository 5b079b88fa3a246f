"""deploy/kubernetes/postgresql: the component that puts the history in PostgreSQL
agrees with the base it patches and with the config parser."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from reconciler.daemon.config import missing_secrets, parse_config

KUBE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def test_the_component_is_the_base_config_plus_a_postgresql_history() -> None:
    component = load(KUBE / "postgresql/kustomization.yaml")
    assert component["kind"] == "Component"
    assert {p["path"] for p in component["patches"]} == {"configmap.yaml", "deployment.yaml"}
    base = parse_config(load(KUBE / "configmap.yaml")["data"]["config.yaml"])
    patched = parse_config(load(KUBE / "postgresql/configmap.yaml")["data"]["config.yaml"])
    # Nothing else differs: the patch replaces the whole file, so it must not drift.
    assert replace(patched, history=base.history) == base
    assert patched.history.url is not None and patched.history.url.startswith("postgresql://")
    assert urlsplit(patched.history.url).password is None
    assert patched.history.password_env is not None


def test_the_password_variable_comes_from_the_secret_by_reference() -> None:
    config = parse_config(load(KUBE / "postgresql/configmap.yaml")["data"]["config.yaml"])
    base = load(KUBE / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    patch = load(KUBE / "postgresql/deployment.yaml")["spec"]["template"]["spec"]
    [container] = patch["containers"]
    assert container["name"] == base["name"]
    env = {e["name"]: e for e in base["env"] + container["env"]}
    assert missing_secrets(config, {name: "set" for name in env}) == []
    ref = env[str(config.history.password_env)]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "reconciler-secrets", "key": "postgres-password"}
