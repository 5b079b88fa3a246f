"""Pure normalising: comparable forms, secret redaction, ignore-differences, the cheap check."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backends.kubernetes.normalize import (
    comparable,
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
    assert not may_differ(manifest, live, "reconciler"), "an owned list counts as a whole"
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
