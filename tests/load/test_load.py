"""What a valid state repo loads into: defaults, options, identities, bodies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backends.kubernetes.options import Options as K8sOptions
from backends.vm.options import VmOptions
from backends.yarn.options import Options as YarnOptions
from reconciler.load.graph import find_cycles
from reconciler.model import (
    BatchSize,
    CheckKind,
    DesiredState,
    ResourceId,
    RollbackPolicy,
)

Loaded = Callable[..., DesiredState]


def test_app_defaults_and_overrides(loaded: Loaded) -> None:
    desired = loaded({
        "apps/a/app.yaml": "target: fleet\n",
        "apps/b/app.yaml": ("target: fleet\nwave: 3\nprune: false\nrollback: none\n"
                            "timeout: 5m\nrollout: {batch: 25%, max_failures: 1}\n"
                            "health:\n  - tcp: {port: 22}\n    timeout: 1h30m\n"
                            "    interval: 500ms\n  - command: pgrep web\n"),
    })
    a, b = desired.apps["a"], desired.apps["b"]
    assert (a.wave, a.prune, a.rollback, a.timeout) == (0, True, RollbackPolicy.AUTO, 300.0)
    assert (b.wave, b.prune, b.rollback, b.timeout) == (3, False, RollbackPolicy.NONE, 300.0 * 1)
    assert b.rollout.batch == BatchSize(percent=25) and b.rollout.max_failures == 1
    tcp, command = b.health
    assert (tcp.kind, tcp.spec, tcp.timeout, tcp.interval) == (
        CheckKind.TCP, {"port": 22}, 5400.0, 0.5)
    assert (command.kind, command.spec, command.retries) == (
        CheckKind.COMMAND, {"run": "pgrep web"}, 3)
    assert b.location.file == "apps/b/app.yaml"


def test_target_options_are_typed(loaded: Loaded) -> None:
    desired = loaded({})
    assert desired.targets["fleet"].options == VmOptions(
        hosts=("web-1", "web-2:2222"), identity_file="/secrets/id",
        known_hosts="/secrets/known_hosts")
    assert desired.targets["laptop"].options == VmOptions(
        transport="local", hosts=("localhost",), root="./.demo-root")
    assert desired.targets["prod"].options == K8sOptions(kubeconfig="/secrets/kubeconfig")
    assert desired.targets["analytics"].options == YarnOptions(
        url="http://rm.example.com:8088", token_env="YARN_TOKEN")
    assert desired.prune_default is True


def test_resource_identities_per_backend(loaded: Loaded) -> None:
    desired = loaded({
        "apps/k/app.yaml": "target: prod\n",
        "apps/k/all.yaml": ("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\n"
                            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
                            "---\napiVersion: example.com/v1\nkind: Secret\n"
                            "metadata: {name: s}\n"),
        "apps/v/app.yaml": "target: laptop\n",
        "apps/v/all.yaml": ("kind: File\npath: /etc//x/./y.conf\nmode: 0644\ncontent: a\n"
                            "secret: true\n---\nkind: Symlink\npath: /l\ntarget: /etc\n"
                            "---\nkind: Command\nname: c\nrun: 'true'\ncreates: /a/../b\n"),
        "apps/y/app.yaml": "target: analytics\n",
        "apps/y/svc.yaml": ("name: sleeper\nversion: '1'\ncomponents:\n  - name: s\n"
                            "    number_of_containers: 1\n    launch_command: sleep 60\n"
                            "    resource: {cpus: 1, memory: '256'}\n"),
    })
    k = desired.apps["k"].resources
    assert [(r.id, r.secret) for r in k] == [
        (ResourceId(kind="Secret", namespace="n", name="s"), True),
        (ResourceId(group="apps", kind="Deployment", name="d"), False),
        (ResourceId(group="example.com", kind="Secret", name="s"), False),
    ]
    file, link, command = desired.apps["v"].resources
    assert file.id == ResourceId(kind="File", name="/etc/x/y.conf") and file.secret
    assert file.body["mode"] == "0644" and file.body["path"] == "/etc/x/y.conf"
    assert link.id == ResourceId(kind="Symlink", name="/l")
    assert command.body["creates"] == "/b"
    (service,) = desired.apps["y"].resources
    assert service.id == ResourceId(kind="Service", name="sleeper")
    assert service.location.file == "apps/y/svc.yaml" and service.location.line == 1


def test_find_cycles_reports_each_cycle_once() -> None:
    edges = {"a": ("b",), "b": ("a", "c"), "c": (), "x": ("y",), "y": ("z",), "z": ("x",)}
    assert find_cycles(edges) == [("a", "b", "a"), ("x", "y", "z", "x")]
    chain = {f"n{i}": (f"n{i + 1}",) for i in range(5000)}
    assert find_cycles(chain) == []


def test_valid_tree_in_a_subfolder_loads(state: Callable[..., Path]) -> None:
    from reconciler.load import load
    from reconciler.tree import DirectoryTree

    root = state({"apps/a/app.yaml": "target: laptop\n"})
    assert list(load(DirectoryTree(root)).apps) == ["a"]


def test_kubernetes_list_items_become_resources_at_their_own_lines(loaded: Loaded) -> None:
    desired = loaded({
        "apps/k/app.yaml": "target: prod\n",
        "apps/k/list.yaml": ("apiVersion: v1\nkind: List\nitems:\n"
                             "  - apiVersion: v1\n    kind: Secret\n"
                             "    metadata: {name: s, namespace: n}\n"
                             "  - apiVersion: apps/v1\n    kind: Deployment\n"
                             "    metadata: {name: d}\n"
                             "---\napiVersion: v1\nkind: ConfigMapList\nitems: []\n"),
    })
    secret, deployment = desired.apps["k"].resources
    assert (secret.id, secret.secret, secret.location.line) == (
        ResourceId(kind="Secret", namespace="n", name="s"), True, 4)
    assert (deployment.id, deployment.location.line) == (
        ResourceId(group="apps", kind="Deployment", name="d"), 7)
    assert "items" not in deployment.body and deployment.body["kind"] == "Deployment"


def test_a_full_yarn_service_spec_is_valid(loaded: Loaded) -> None:
    spec = """\
name: hbase-app-1
version: "2.0.0"
description: an HBase cluster
lifetime: 3600
queue: default
state: STARTED
artifact: {id: "library/hbase:2", type: DOCKER}
resource: {cpus: 1, memory: "2048", additional: {yarn.io/gpu: {value: 1, unit: ""}}}
configuration:
  properties: {docker.network: host, retries: 3}
  env: {HBASE_LOG_DIR: "<LOG_DIR>"}
  files: [{type: XML, dest_file: /etc/hadoop/conf/core-site.xml, properties: {a: b}}]
kerberos_principal: {principal_name: hbase/_HOST@EXAMPLE.COM, keytab: "file:///k"}
quicklinks: {UI: "http://${HBASEMASTER_HOST}:16010/"}
components:
  - name: hbasemaster
    number_of_containers: 1
    launch_command: /usr/hdp/current/hbase-master/bin/hbase master start
    readiness_check: {type: HTTP, properties: {url: "http://${THIS_HOST}:16010"}}
    placement_policy:
      constraints: [{type: ANTI_AFFINITY, scope: NODE, target_tags: [hbasemaster]}]
  - name: regionserver
    number_of_containers: 3
    dependencies: [hbasemaster]
    resource: {cpus: 2, memory: 4096}
    restart_policy: ON_FAILURE
    run_privileged_container: false
    quicklinks: [UI]
"""
    desired = loaded({"apps/y/app.yaml": "target: analytics\n", "apps/y/hbase.yaml": spec})
    (service,) = desired.apps["y"].resources
    assert service.id == ResourceId(kind="Service", name="hbase-app-1")


def test_octal_file_modes_keep_their_meaning(loaded: Loaded) -> None:
    desired = loaded({
        "apps/v/app.yaml": "target: laptop\n",
        "apps/v/all.yaml": ("kind: File\npath: /a\ncontent: a\nmode: 0o640\n---\n"
                            "kind: Directory\npath: /d\nmode: 755\n"),
    })
    file, folder = desired.apps["v"].resources
    assert (file.body["mode"], folder.body["mode"]) == ("0640", "0755")


def test_an_unused_target_is_kept_for_prune(loaded: Loaded) -> None:
    desired = loaded({"apps/a/app.yaml": "target: laptop\n"})
    assert {"laptop", "fleet", "prod", "analytics"} <= set(desired.targets)
