"""Apps whose manifests a tool renders: Kustomize folders and Helm charts.

An app folder holding a kustomization file is rendered with `kustomize build`;
an app whose app.yaml has a `helm` key is rendered with `helm template`. The
rendering itself is I/O and happens before loading (`reconciler.render`);
this module holds only what both sides agree on: how such an app is
recognised, how its `helm` key is parsed, and the path under which its
rendered manifests appear in the tree the loader reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reconciler.load.schema import Problems, as_map, check_keys, get_str, get_str_list
from reconciler.load.vm import relative_parts
from reconciler.load.yamlio import shown

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
"""The names `kustomize build` looks for in a folder, in its own order."""

KUSTOMIZE_OUTPUT = "(kustomize build).yaml"
HELM_OUTPUT = "(helm template).yaml"
"""The file name, inside the app folder, of the rendered manifests: no real file
has it, and errors in rendered objects point at its lines (the lines of the
tool's output)."""

_HELM_KEYS = ("chart", "values", "release", "namespace")
# Helm's own rule for release names (DNS-1123 label, at most 53 characters).
_RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True, kw_only=True)
class HelmSpec:
    chart: str
    """The chart folder, relative to the state root, normalised."""
    values: tuple[str, ...] = ()
    """Values files relative to the state root (normalised), in the order given."""
    release: str
    namespace: str = ""
    """Empty: the namespace of the app's target."""


def kustomization_in(files: dict[str, Any], folder: str) -> str | None:
    """The path of the kustomization file directly in `folder`, if any; `files`
    maps state-root paths to anything."""
    for name in KUSTOMIZATION_FILES:
        path = f"{folder}/{name}"
        if path in files:
            return path
    return None


def parse_helm(p: Problems, value: Any, line: int, app: str) -> HelmSpec | None:
    """The `helm` key of apps/<app>/app.yaml; problems go to `p`."""
    m = as_map(p, value, line, "helm")
    if m is None:
        return None
    check_keys(p, m, _HELM_KEYS, "helm", required=("chart",))
    chart = get_str(p, m, "chart", "helm")
    if chart is not None:
        chart = _inside(p, m.line_of("chart"), chart, "", "helm: chart")
    values: list[str] = []
    listed = get_str_list(p, m, "values", "helm")
    for index, item in enumerate(listed or ()):
        path = _inside(p, listed.line_of(index) if listed else line, item, f"apps/{app}",
                       "helm: values file")
        if path is not None:
            values.append(path)
    ok = chart is not None and len(values) == len(listed or ()) \
        and (listed is not None or m.get("values") is None)
    release = get_str(p, m, "release", "helm")
    if release is None and m.get("release") is None:
        release = app
        if not _valid_release(release):
            p.add(m.line, f"helm: 'release' is required, since the app name {shown(app)} is "
                          "not a valid release name")
            ok = False
    elif release is not None and not _valid_release(release):
        p.add(m.line_of("release"), f"helm: release {shown(release)} must be lower-case "
                                    "letters, digits and '-', at most 53 characters")
        ok = False
    ok = ok and release is not None
    namespace = get_str(p, m, "namespace", "helm")
    if namespace is not None and (len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace)):
        p.add(m.line_of("namespace"), f"helm: namespace {shown(namespace)} is not a valid "
                                      "namespace name")
        ok = False
    ok = ok and (namespace is not None or m.get("namespace") is None)
    if not ok or chart is None or release is None:
        return None
    return HelmSpec(chart=chart, values=tuple(values), release=release,
                    namespace=namespace or "")


def _valid_release(name: str) -> bool:
    return len(name) <= 53 and _RELEASE.fullmatch(name) is not None


def _inside(p: Problems, line: int, path: str, base: str, what: str) -> str | None:
    """`path` joined to `base` and normalised, or None (reported) when it is
    absolute or climbs out of the state root."""
    parts = relative_parts(f"{base}/{path}" if base else path)
    if path.startswith("/") or not parts:
        p.add(line, f"{what} {shown(path)} must be a path inside the state repository"
                    + (" (relative to the app folder)" if base else ""))
        return None
    return "/".join(parts)
