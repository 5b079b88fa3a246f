"""Pure normalising: comparable forms, secret redaction, ignore-differences, the cheap check."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.kubernetes.normalize import (
    _applied_elsewhere,
    comparable,
    contains,
    ignore_pointers,
    keep_ignored,
    may_differ,
    owner_app,
    with_ownership,
)


def test_comparable_drops_server_bookkeeping() -> None:
    live: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap", "status": {"x": 1}, "data": {"a": "1"},
            "metadata": {"name": "c", "uid": "u", "resourceVersion": "9", "generation": 3,
                         "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}
    assert comparable(live) == {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
                                "metadata": {"name": "c"}}
    assert live["metadata"]["uid"] == "u", "the input is not mutated"


@given(st.text(min_size=1, max_size=40))
def test_secret_values_are_redacted_consistently(value: str) -> None:
    encoded = base64.b64encode(value.encode()).decode()
    from_data = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                 "data": {"k": encoded}}
    from_string = {**from_data, "data": {}, "stringData": {"k": value}}
    a, b = comparable(from_data), comparable(from_string)
    assert a == b and a["data"]["k"].startswith("<redacted sha256:")
    assert encoded not in json.dumps(a) and "stringData" not in b
    other = comparable({**from_data, "data": {"k": encoded + "QQ=="}})
    assert other["data"]["k"] != a["data"]["k"]


def test_ignore_differences_pointers() -> None:
    annotated: dict[str, Any] = {"metadata": {"annotations": {
        "reconciler.io/ignore-differences": '["/spec/replicas", "/metadata/labels/a~1b"]'}},
        "spec": {"replicas": 3, "paused": False}}
    annotated["metadata"]["labels"] = {"a/b": "x", "c": "y"}
    pointers = ignore_pointers(annotated)
    assert pointers == ("/spec/replicas", "/metadata/labels/a~1b")
    out = comparable(annotated, ignore=pointers)
    assert out["spec"] == {"paused": False} and out["metadata"]["labels"] == {"c": "y"}
    assert annotated["spec"]["replicas"] == 3 and "a/b" in annotated["metadata"]["labels"], (
        "removing ignored fields copies their parents instead of mutating the input")
    assert comparable({"spec": {"items": [1, 2, 3]}}, ignore=["/spec/items/1", "/x/y"]) == {
        "spec": {"items": [1, 3]}, "metadata": {}}
    lines = {"metadata": {"annotations": {"reconciler.io/ignore-differences": "/a\n/b, /c"}}}
    assert ignore_pointers(lines) == ("/a", "/b", "/c")


def test_ownership_labels_and_owner() -> None:
    body = with_ownership({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                          app="web", target="prod", namespace="ns")
    assert owner_app(body, "prod") == "web"
    assert owner_app(body, "staging") is None
    assert owner_app({"metadata": {"labels": {"reconciler.io/app": "web"}}}, "prod") is None


def test_may_differ_ignores_server_defaults_but_sees_removed_fields() -> None:
    manifest = {"spec": {"containers": [{"name": "m", "image": "a"}]}}
    container = {"name": "m", "image": "a", "imagePullPolicy": "Always"}
    live: dict[str, Any] = {"spec": {"containers": [container], "dnsPolicy": "ClusterFirst"},
            "metadata": {"managedFields": [{"manager": "reconciler", "operation": "Apply",
                                            "fieldsV1": {"f:spec": {"f:containers": {}}}}]}}
    assert not may_differ(manifest, live, "reconciler")
    assert may_differ({"spec": {"containers": [{"name": "m", "image": "b"}]}}, live, "reconciler")
    keyed = {'k:{"name":"m"}': {".": {}, "f:image": {}}}
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"] = keyed
    assert not may_differ(manifest, live, "reconciler"), "the owned item is still in Git"
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:paused"] = {}
    assert may_differ(manifest, live, "reconciler"), "apply would remove spec.paused"
    other = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:x": {}}}}]
    assert not may_differ(manifest, {**live, "metadata": {"managedFields": other}}, "reconciler")


def test_keep_ignored_takes_live_values_for_fields_the_manifest_sets() -> None:
    manifest: dict[str, Any] = {"spec": {"replicas": 2, "items": [{"a": 1}], "x": 1}}
    live = {"spec": {"replicas": 7, "items": [{"a": 5}], "y": 3}}
    pointers = ["/spec/replicas", "/spec/items/0/a", "/spec/x", "/spec/y", "/nothing/here"]
    out = keep_ignored(manifest, live, pointers)
    # Live values for what the manifest sets; absent live -> left out; nothing added.
    assert out == {"spec": {"replicas": 7, "items": [{"a": 5}]}}
    assert manifest["spec"] == {"replicas": 2, "items": [{"a": 1}], "x": 1}, "input untouched"


# --- fields inside list items -------------------------------------------------------
# POD_FIELDS is spec.template.spec of metadata.managedFields[].fieldsV1 as
# kube-apiserver v1.36 recorded it for the reconciler's apply of POD: list items
# are owned by key, and the port without a protocol is keyed with the
# defaulted "TCP", though only its containerPort is owned.

POD: dict[str, Any] = {
    "containers": [
        {"name": "main", "image": "nginx:1.27", "args": ["--a", "--b"],
         "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
         "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"},
                   {"containerPort": 9090, "name": "m"}],
         "volumeMounts": [{"name": "data", "mountPath": "/data"},
                          {"name": "cfg", "mountPath": "/cfg", "readOnly": True}]},
        {"name": "side", "image": "busybox", "command": ["sleep", "1d"]},
    ],
    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}],
    "tolerations": [{"key": "a", "operator": "Exists"}],
    "imagePullSecrets": [{"name": "reg"}],
}
POD_FIELDS: dict[str, Any] = {
    "f:containers": {
        'k:{"name":"main"}': {
            ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
            "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}},
                      'k:{"name":"B"}': {".": {}, "f:name": {}, "f:value": {}}},
            "f:livenessProbe": {"f:httpGet": {"f:path": {}, "f:port": {}}},
            "f:ports": {
                'k:{"containerPort":53,"protocol":"UDP"}': {
                    ".": {}, "f:containerPort": {}, "f:protocol": {}},
                'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}},
                'k:{"containerPort":9090,"protocol":"TCP"}': {
                    ".": {}, "f:containerPort": {}, "f:name": {}}},
            "f:resources": {"f:limits": {"f:cpu": {}}, "f:requests": {"f:memory": {}}},
            "f:volumeMounts": {
                'k:{"mountPath":"/cfg"}': {
                    ".": {}, "f:mountPath": {}, "f:name": {}, "f:readOnly": {}},
                'k:{"mountPath":"/data"}': {".": {}, "f:mountPath": {}, "f:name": {}}}},
        'k:{"name":"side"}': {".": {}, "f:command": {}, "f:image": {}, "f:name": {}},
    },
    "f:imagePullSecrets": {'k:{"name":"reg"}': {}},
    "f:tolerations": {},
    "f:volumes": {
        'k:{"name":"cfg"}': {".": {}, "f:configMap": {"f:name": {}}, "f:name": {}},
        'k:{"name":"data"}': {".": {}, "f:emptyDir": {}, "f:name": {}}},
}
CONTAINER_DEFAULTS = {"imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File",
                      "terminationMessagePath": "/dev/termination-log"}


def _deployment(pod: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": ["example.com/f"]},
            "spec": {"template": {"spec": pod}}}


def _served() -> dict[str, Any]:
    """POD's Deployment as the server returns it: defaults filled in, our managedFields."""
    pod = copy.deepcopy(POD)
    for container in pod["containers"]:
        container.update(CONTAINER_DEFAULTS)
        for port in container.get("ports", ()):
            port.setdefault("protocol", "TCP")
    pod["containers"][0]["livenessProbe"].update({"timeoutSeconds": 1, "periodSeconds": 10})
    pod["containers"][1]["resources"] = {}
    pod["volumes"][1]["configMap"]["defaultMode"] = 420
    pod.update({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst"})
    live = _deployment(pod)
    fields = {"f:metadata": {"f:finalizers": {'v:"example.com/f"': {}}},
              "f:spec": {"f:template": {"f:spec": POD_FIELDS}}}
    other = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"main"}': {
        ".": {}, "f:name": {}, "f:resources": {"f:limits": {"f:cpu": {}}}}}}}}}
    live["metadata"]["managedFields"] = [
        {"manager": "reconciler", "operation": "Apply", "fieldsV1": fields},
        {"manager": "other-tool", "operation": "Apply", "fieldsV1": other},
    ]
    return live


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    main: dict[str, Any] = pod["containers"][0]
    return main


REMOVALS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a container's resources": lambda pod: _main(pod).pop("resources"),
    "a livenessProbe": lambda pod: _main(pod).pop("livenessProbe"),
    "a field of the probe": lambda pod: _main(pod)["livenessProbe"]["httpGet"].pop("path"),
    "args": lambda pod: _main(pod).pop("args"),
    "the second container's command": lambda pod: pod["containers"][1].pop("command"),
    "a field of one volumeMount": lambda pod: _main(pod)["volumeMounts"][1].pop("readOnly"),
    "a field of one port": lambda pod: _main(pod)["ports"][2].pop("name"),
    "a field of one volume": lambda pod: pod["volumes"][1]["configMap"].pop("name"),
    "one env var": lambda pod: _main(pod)["env"].pop(1),
    "one port": lambda pod: _main(pod)["ports"].pop(0),
    "an atomic list": lambda pod: pod.pop("tolerations"),
    "a keyed item owned without fields": lambda pod: pod.pop("imagePullSecrets"),
}


def test_may_differ_is_false_for_server_defaults_inside_list_items() -> None:
    assert not may_differ(_deployment(POD), _served(), "reconciler")


@pytest.mark.parametrize("removal", REMOVALS, ids=list(REMOVALS))
def test_may_differ_sees_what_left_a_list_item(removal: str) -> None:
    pod = copy.deepcopy(POD)
    REMOVALS[removal](pod)
    assert may_differ(_deployment(pod), _served(), "reconciler"), removal


def test_may_differ_sees_a_removed_set_member() -> None:
    manifest = _deployment(POD)
    manifest["metadata"] = {"name": "web"}
    assert may_differ(manifest, _served(), "reconciler"), "the finalizer v: entry"


def test_may_differ_ignores_what_another_manager_set_inside_our_items() -> None:
    # other-tool owns main's resources.limits.cpu (in _served); the manifest
    # never set resources, and the live value differs from nothing of ours.
    pod = copy.deepcopy(POD)
    del _main(pod)["resources"]
    live = _served()
    fields = live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
    del fields["f:containers"]['k:{"name":"main"}']["f:resources"]
    _main(live["spec"]["template"]["spec"])["resources"] = {"limits": {"cpu": "1"}}
    assert not may_differ(_deployment(pod), live, "reconciler")


def test_list_items_are_found_in_any_order() -> None:
    pod = copy.deepcopy(POD)
    _main(pod)["env"].reverse()
    _main(pod)["ports"].reverse()
    fields = _served()["metadata"]["managedFields"][0]["fieldsV1"]
    assert not _applied_elsewhere(fields, _deployment(pod))


def test_list_keys_and_set_values_match_with_their_json_types() -> None:
    ports = {"f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}}}}
    assert not _applied_elsewhere(ports, {"ports": [{"containerPort": 80}]})
    assert not _applied_elsewhere(ports, {"ports": [{"containerPort": 80, "protocol": "TCP"}]})
    assert _applied_elsewhere(ports, {"ports": [{"containerPort": "80"}]})
    assert _applied_elsewhere(ports, {"ports": [{"containerPort": 80, "protocol": "UDP"}]})
    flags = {"f:flags": {"v:true": {}, 'v:"x"': {}}}
    assert not _applied_elsewhere(flags, {"flags": ["x", True]})
    assert _applied_elsewhere(flags, {"flags": ["x", 1]}), "1 is not true in JSON"
    assert contains({"a": True}, {"a": True}) and contains({"a": 1}, {"a": 1.0})
    assert not contains({"a": 1}, {"a": True}) and not contains({"a": True}, {"a": 1})


def test_positional_items_and_forms_not_understood() -> None:
    assert not _applied_elsewhere({"f:x": {"i:1": {"f:a": {}}}}, {"x": [{}, {"a": 1}]})
    assert _applied_elsewhere({"f:x": {"i:2": {}}}, {"x": [{}, {}]})
    # When in doubt, a dry-run: it costs one call, a missed change costs the change.
    for fields in ({"f:x": {"k:{not json": {}}}, {"f:x": {"k:[1]": {}}},
                   {"f:x": {"q:1": {}}}, {"f:x": {"v:": {}}}, {"f:x": []}):
        assert _applied_elsewhere(fields, {"x": [{"a": 1}]}), fields
    assert _applied_elsewhere({"f:x": {"f:a": {}}}, {"x": [{"a": 1}]}), "a list, not a map"
    assert _applied_elsewhere({"f:x": {'k:{"a":1}': {}}}, {"x": {"a": 1}}), "a map, not a list"


def test_may_differ_walks_a_secret_as_applied() -> None:
    # The server records stringData keys under f:stringData, and stores them in data.
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                              "stringData": {"password": "x"}, "data": {"token": "eA=="}}
    live = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "s", "managedFields": [{
                "manager": "reconciler", "operation": "Apply", "fieldsV1": {
                    "f:data": {"f:token": {}}, "f:stringData": {"f:password": {}}}}]},
            "data": {"token": "eA==", "password": "eA=="}}
    assert not may_differ(secret, live, "reconciler")
    assert may_differ({**secret, "stringData": {}}, live, "reconciler")
