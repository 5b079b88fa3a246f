"""A Kubernetes target's options: one typed value, parsed once by one schema.

The state-repo loader calls `parse_options` on the target's mapping in
reconciler.yaml (problems are reported there with file:line), and the target
carries the resulting `Options` to the backend, which uses it as it is. A
Target built in code with a plain mapping goes through the same schema on open
(`options_of`), so no value can mean one thing to `validate` and another to
`sync`. Importing this module costs nothing: the Kubernetes client is not
loaded here.

Adding an option: a field on `Options` (with its default) and one entry in
`_READERS` naming the getter that checks its value; both sides see it at once,
and tests/load/test_option_parity.py asks for samples of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.load.schema import (
    Problems,
    check_keys,
    get_bool,
    get_duration,
    get_enum,
    get_str,
    get_str_list,
    typed_options,
)
from reconciler.load.yamlio import YamlMap
from reconciler.model import Target

POLICIES = ("Background", "Foreground", "Orphan")


@dataclass(frozen=True, kw_only=True)
class Options:
    kubeconfig: str | None = None
    """None: ~/.kube/config (or $KUBECONFIG, as the client reads it)."""
    context: str | None = None
    in_cluster: bool = False
    namespace: str = "default"
    """For namespaced objects whose manifest names none."""
    force_conflicts: bool = False
    propagation_policy: str = "Background"
    crd_timeout: float = 60.0
    delete_timeout: float = 60.0
    namespaces: tuple[str, ...] = ()
    """When set, the only namespaces read and written: namespace-scoped credentials
    (a tenant's) cannot list cluster-wide."""
    watch: bool = True
    """In the daemon, live state comes from a watch-fed cache (cache.py)."""


_Reader = Callable[[Problems, YamlMap, str, str], Any]


def _text(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_str(p, m, key, what, required=True)


def _policy(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_enum(p, m, key, what, POLICIES)


def _names(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    value = get_str_list(p, m, key, what)
    if value is not None and not value:
        p.add(m.line_of(key), f"{what}: {key!r} must not be empty")
        return None
    return tuple(value) if value is not None else None


# Each option's key, as in reconciler.yaml and on `Options`, and its getter.
_READERS: dict[str, _Reader] = {
    "kubeconfig": _text, "context": _text, "in_cluster": get_bool, "namespace": _text,
    "force_conflicts": get_bool, "propagation_policy": _policy, "crd_timeout": get_duration,
    "delete_timeout": get_duration, "namespaces": _names, "watch": get_bool,
}
KEYS = tuple(_READERS)


def parse_options(p: Problems, m: YamlMap, what: str) -> Options | None:
    """The typed options of the target mapping `m`, or None after reporting into `p`."""
    before = len(p.items)
    check_keys(p, m, ("backend", *KEYS), what)
    values: dict[str, Any] = {}
    for key, read in _READERS.items():
        if key in m:
            value = read(p, m, key, what)
            if value is not None:
                values[key] = value
    if values.get("in_cluster") and "kubeconfig" in values:
        p.add(m.line_of("in_cluster"), f"{what}: 'in_cluster' and 'kubeconfig' exclude each other")
    return Options(**values) if len(p.items) == before else None


def options_of(target: Target) -> Options:
    """The target's Options: as the loader parsed them, or parsed now from a mapping."""
    return typed_options(target, Options, parse_options)
