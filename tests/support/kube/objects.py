"""The vocabulary of the test API server: kinds, errors, field paths, selectors,
field managers. Pure functions; the HTTP server and the store build on them."""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
FieldPath = tuple[str, ...]
_UNTRACKED = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTINS = [
    Kind("", "v1", "Namespace", "namespaces", False),
    Kind("", "v1", "ConfigMap", "configmaps", True),
    Kind("", "v1", "Secret", "secrets", True),
    Kind("", "v1", "Service", "services", True),
    Kind("", "v1", "Pod", "pods", True),
    Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True),
    Kind("apps", "v1", "Deployment", "deployments", True),
    Kind("apps", "v1", "StatefulSet", "statefulsets", True),
    Kind("apps", "v1", "DaemonSet", "daemonsets", True),
    Kind("batch", "v1", "Job", "jobs", True),
    Kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
         "customresourcedefinitions", False),
]


class HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status_object(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# --- field paths ----------------------------------------------------------------


def leaf_paths(obj: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    if isinstance(obj, dict) and obj:
        out: set[FieldPath] = set()
        for key, value in obj.items():
            out |= leaf_paths(value, (*prefix, key))
        return out
    return {prefix} - _UNTRACKED


def get_path(obj: Any, path: FieldPath) -> Any:
    for token in path:
        if not isinstance(obj, dict) or token not in obj:
            return None
        obj = obj[token]
    return obj


def set_path(obj: Obj, path: FieldPath, value: Any) -> None:
    for token in path[:-1]:
        if not isinstance(obj.get(token), dict):
            obj[token] = {}
        obj = obj[token]
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj: Obj, path: FieldPath) -> None:
    parent = get_path(obj, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def overlaps(a: FieldPath, b: FieldPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def to_fields_v1(paths: set[FieldPath]) -> Obj:
    tree: Obj = {}
    for path in paths:
        node = tree
        for token in path:
            node = node.setdefault(f"f:{token}", {})
    return tree


def from_fields_v1(tree: Obj, prefix: FieldPath = ()) -> set[FieldPath]:
    if not tree:
        return {prefix}
    out: set[FieldPath] = set()
    for key, value in tree.items():
        out |= from_fields_v1(value, (*prefix, key[2:]))
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if term.startswith("!"):
            ok = term[1:] not in labels
        elif "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            ok = labels.get(key) == value
        else:
            ok = term in labels
        if not ok:
            return False
    return True


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_managers(obj: Obj | None) -> dict[tuple[str, str], set[FieldPath]]:
    out: dict[tuple[str, str], set[FieldPath]] = {}
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or ():
        key = (entry["manager"], entry["operation"])
        out[key] = from_fields_v1(entry.get("fieldsV1") or {}) - {()}
    return out


def write_managers(obj: Obj, managers: dict[tuple[str, str], set[FieldPath]]) -> None:
    obj.setdefault("metadata", {})["managedFields"] = [
        {"manager": m, "operation": op, "apiVersion": obj.get("apiVersion", ""), "time": now(),
         "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
        for (m, op), paths in sorted(managers.items()) if paths
    ]

