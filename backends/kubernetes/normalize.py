"""Pure functions that turn manifests and live objects into comparable forms.

The plan compares `LiveView.desired` with `LiveResource.state` for equality, so
both sides must be produced by the same function (`comparable`) and must hide
what the server owns: bookkeeping metadata, status, and — because the desired
side is the server's own dry-run answer whenever the object may change — the
fields the server defaults.

Invariants:
- No function here does I/O or mutates its input.
- A Secret's `data`/`stringData` values never survive `comparable`: each becomes
  "<redacted sha256:...>", a keyed hash that changes when the value changes but
  cannot be reversed or looked up in a dictionary (the key is per process).
- `kubectl.kubernetes.io/last-applied-configuration` is dropped: it may hold a
  Secret in clear text.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "reconciler"
APP_LABEL = "reconciler.io/app"
TARGET_ANNOTATION = "reconciler.io/target"
IGNORE_ANNOTATION = "reconciler.io/ignore-differences"
OWNED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{APP_LABEL}"

_VOLATILE_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_VOLATILE_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
)
# Per process, so a marker is stable within one plan but useless as a lookup key.
_REDACTION_KEY = os.urandom(32)


def redaction_marker(value: str) -> str:
    digest = hmac.new(_REDACTION_KEY, value.encode(), hashlib.sha256).hexdigest()
    return f"<redacted sha256:{digest[:16]}>"


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion", "")) == "v1"


def with_ownership(
    manifest: Mapping[str, Any], *, app: str, target: str, namespace: str
) -> dict[str, Any]:
    """The manifest as it is applied: ownership labels, target annotation, namespace.

    `namespace` is "" for cluster-scoped kinds (any namespace in the manifest is
    then dropped, as the API server would ignore it).
    """
    body = copy.deepcopy(dict(manifest))
    metadata = dict(body.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    labels[APP_LABEL] = app
    annotations = dict(metadata.get("annotations") or {})
    annotations[TARGET_ANNOTATION] = target
    metadata["labels"] = labels
    metadata["annotations"] = annotations
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    body["metadata"] = metadata
    return body


def owner_app(obj: Mapping[str, Any], target: str) -> str | None:
    """The owning app when the object carries our labels for this target, else None."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not labels.get(APP_LABEL):
        return None
    if annotations.get(TARGET_ANNOTATION) != target:
        return None
    return str(labels[APP_LABEL])


def fold_string_data(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Secret's stringData moved into data (base64), as the API server stores it."""
    if not is_secret(obj) or not obj.get("stringData"):
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for key, value in (out.pop("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    out["data"] = data
    return out


def ignore_pointers(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """JSON pointers from the ignore-differences annotation: a JSON list or one per line/comma."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(IGNORE_ANNOTATION)
    if not raw:
        return ()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = [p for chunk in str(raw).splitlines() for p in chunk.split(",")]
    if not isinstance(parsed, list):
        return ()
    return tuple(p.strip() for p in (str(x) for x in parsed) if p.strip().startswith("/"))


def comparable(
    obj: Mapping[str, Any], *, ignore: Sequence[str] = ()
) -> dict[str, Any]:
    """The comparable form: no status, no server bookkeeping, secrets redacted."""
    out = copy.deepcopy(dict(fold_string_data(obj)))
    out.pop("status", None)
    metadata = dict(out.get("metadata") or {})
    for key in _VOLATILE_METADATA:
        metadata.pop(key, None)
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in _VOLATILE_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if not metadata.get("labels"):
        metadata.pop("labels", None)
    out["metadata"] = metadata
    if is_secret(out) and out.get("data"):
        out["data"] = {k: redaction_marker(str(v)) for k, v in out["data"].items()}
    for pointer in ignore:
        _remove_pointer(out, pointer)
    return out


def _remove_pointer(obj: dict[str, Any], pointer: str) -> None:
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    node: Any = obj
    for token in tokens[:-1]:
        node = _child(node, token)
        if node is None:
            return
    if not tokens:
        return
    last = tokens[-1]
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


def contains(live: Any, wanted: Any) -> bool:
    """True when every field `wanted` sets has the same value in `live`.

    Lists must have the same length and match item by item, so server defaults
    inside list items (a container's imagePullPolicy) do not count as a change.
    """
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and contains(live[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(contains(a, b) for a, b in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)


def owned_paths(managed_fields: Sequence[Mapping[str, Any]], manager: str) -> set[tuple[str, ...]]:
    """Paths (maps only, lists as leaves) that `manager` owns through Apply."""
    paths: set[tuple[str, ...]] = set()
    for entry in managed_fields:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            _collect(entry.get("fieldsV1") or {}, (), paths)
    return paths


def _collect(fields: Mapping[str, Any], prefix: tuple[str, ...], out: set[tuple[str, ...]]) -> None:
    children = [k for k in fields if k.startswith("f:")]
    if not children or any(not k.startswith(("f:", ".")) for k in fields):
        # A leaf, or a list (k:/v:/i: entries): compare it as a whole.
        if prefix:
            out.add(prefix)
        return
    for key in children:
        _collect(fields[key] or {}, (*prefix, key[2:]), out)


def has_path(obj: Any, path: tuple[str, ...]) -> bool:
    node = obj
    for token in path:
        if not isinstance(node, Mapping) or token not in node:
            return False
        node = node[token]
    return True


def may_differ(manifest: Mapping[str, Any], live: Mapping[str, Any], manager: str) -> bool:
    """The cheap test before a dry-run: would applying `manifest` change `live`?

    False only when every field the manifest sets already has its value, and no
    field this manager applied before has left the manifest (apply would remove it).
    """
    wanted = fold_string_data(manifest)
    if not contains(live, {k: v for k, v in wanted.items() if k != "status"}):
        return True
    managed = (live.get("metadata") or {}).get("managedFields") or ()
    return any(not has_path(wanted, path) for path in owned_paths(managed, manager))
