"""Fields inside list items, on the real control plane: server-side apply owns
them per item (`k:{"name":"main"}`), and a field or item removed from Git must
be planned and removed live, while fields other managers set there stay
invisible to the plan."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.model import Action
from tests.backends.kubernetes.conftest import Cluster
from tests.backends.kubernetes.test_backend import deployment, sync

pytestmark = pytest.mark.kubeconfig

Manifest = dict[str, Any]


def rich_deployment(ns: str) -> Manifest:
    """A Deployment whose container sets one of each field the cases remove."""
    manifest = deployment(ns, "web")
    pod = manifest["spec"]["template"]["spec"]
    pod["containers"][0].update({
        "args": ["--port=80", "--verbose"],
        "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}},
        "env": [{"name": "FIRST", "value": "1"}, {"name": "SECOND", "value": "2"}],
        "ports": [{"containerPort": 80}, {"containerPort": 9090, "name": "metrics"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                         {"name": "cache", "mountPath": "/cache", "readOnly": True}],
    })
    pod["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]
    return manifest


def _main(obj: Manifest) -> Manifest:
    container: Manifest = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _drop_second_env(m: Manifest) -> None:
    del _main(m)["env"][1]


def _drop_cache_mount(m: Manifest) -> None:
    del _main(m)["volumeMounts"][1]
    del m["spec"]["template"]["spec"]["volumes"][1]


def _drop_metrics_port(m: Manifest) -> None:
    del _main(m)["ports"][1]


def _names(items: list[Manifest] | None, key: str) -> list[Any]:
    return [i[key] for i in items or ()]


# (case, how the manifest loses it, a removed diff line mentions, the live check)
CASES: list[tuple[str, Callable[[Manifest], None], str, Callable[[Manifest], bool]]] = [
    ("resources", lambda m: _main(m).pop("resources"), "cpu: 500m",
     lambda c: not c.get("resources")),
    ("livenessProbe", lambda m: _main(m).pop("livenessProbe"), "livenessProbe:",
     lambda c: "livenessProbe" not in c),
    ("args", lambda m: _main(m).pop("args"), "--verbose",
     lambda c: "args" not in c),
    ("one env var of two", _drop_second_env, "name: SECOND",
     lambda c: _names(c.get("env"), "name") == ["FIRST"]),
    ("a volumeMount and its volume", _drop_cache_mount, "mountPath: /cache",
     lambda c: _names(c.get("volumeMounts"), "mountPath") == ["/data"]),
    ("one port", _drop_metrics_port, "containerPort: 9090",
     lambda c: _names(c.get("ports"), "containerPort") == [80]),
]


def _path(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/web"


def _assert_noop(cluster: Cluster, manifest: Manifest) -> None:
    cluster.proxy.reset_counts()
    changes, result = sync(cluster, [manifest])
    assert changes == [] and result.applied == 0
    assert cluster.proxy.counts()["PATCH dryRun"] == 0
    assert cluster.proxy.writes() == []


@pytest.mark.parametrize(("case", "drop", "needle", "gone"), CASES, ids=[c[0] for c in CASES])
def test_a_field_removed_inside_a_list_item_is_planned_and_removed_live(
    cluster: Cluster, case: str, drop: Callable[[Manifest], None], needle: str,
    gone: Callable[[Manifest], bool],
) -> None:
    ns = cluster.namespace
    before = rich_deployment(ns)
    sync(cluster, [before])
    live = cluster.env.get(_path(ns))
    assert live is not None and not gone(_main(live)), f"{case} was applied"

    after = copy.deepcopy(before)
    drop(after)
    changes, result = sync(cluster, [after])
    assert [c.action for c in changes] == [Action.UPDATE], case
    removed = [line for line in changes[0].diff.splitlines() if line.startswith("-")]
    assert any(needle in line for line in removed), changes[0].diff
    assert result.applied == 1
    live = cluster.env.get(_path(ns))
    assert live is not None
    assert gone(_main(live)), _main(live)

    _assert_noop(cluster, after)


def _mount_of(live: Manifest, path: str) -> Manifest:
    return next(m for m in _main(live)["volumeMounts"] if m["mountPath"] == path)


# (case, the other manager's container, what it leaves live)
OTHERS: list[tuple[str, Manifest, Callable[[Manifest], bool]]] = [
    ("resources", {"name": "main", "resources": {"limits": {"cpu": "1"}}},
     lambda live: _main(live)["resources"] == {"limits": {"cpu": "1"}}),
    ("readOnly in one of our volumeMounts",
     {"name": "main", "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}]},
     lambda live: _mount_of(live, "/data").get("readOnly") is True),
]


@pytest.mark.parametrize(("case", "container", "kept"), OTHERS, ids=[c[0] for c in OTHERS])
def test_a_field_another_manager_sets_inside_our_list_item_is_no_change(
    cluster: Cluster, case: str, container: Manifest, kept: Callable[[Manifest], bool],
) -> None:
    ns = cluster.namespace
    manifest = rich_deployment(ns)
    del _main(manifest)["resources"]
    sync(cluster, [manifest])
    cluster.env.apply(_path(ns), {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"template": {"spec": {"containers": [container]}}}}, "other-tool")
    live = cluster.env.get(_path(ns))
    assert live is not None and kept(live), f"{case}: the other manager's apply took"
    # Nothing of ours changed: no dry-run is needed, and nothing is written.
    _assert_noop(cluster, manifest)
    live = cluster.env.get(_path(ns))
    assert live is not None and kept(live), f"{case}: the other manager's field stays"


def test_a_secret_applied_with_string_data_plans_no_dry_run(cluster: Cluster) -> None:
    # The same ownership walk: the server records stringData keys under
    # f:stringData while it stores them in data, so the walk reads the manifest
    # as sent, not the folded form the values are compared in.
    ns = cluster.namespace
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"password": "p"}, "data": {"token": "eA=="}}
    sync(cluster, [secret])
    _assert_noop(cluster, secret)
    changes, result = sync(cluster, [{**secret, "stringData": {"password": "q"}}])
    assert [c.action for c in changes] == [Action.UPDATE] and result.applied == 1
    live = cluster.env.get(f"/api/v1/namespaces/{ns}/secrets/creds")
    assert live is not None and live["data"]["password"] == "cQ=="  # base64 of "q"
