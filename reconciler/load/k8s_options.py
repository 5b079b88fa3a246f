"""The Kubernetes sync options that need more than a type check.

Shared by reconciler.yaml (target keys) and app.yaml (its `kubernetes:` block,
whose keys override the target's for that app):

- `health_exprs`: custom health rules in Flux's `healthCheckExprs` shape. Each
  CEL expression is compiled here, so a syntax error is a validation error at
  the expression's line, never a surprise in the middle of a rollout.
- `exclude`: globs over kind names as plans write them (`Event`, `*.cilium.io`,
  `Lease.coordination.k8s.io`): kinds the target never reads, applies or prunes.
- `impersonate`: `{service_account: <namespace>/<name>}`, whose rights alone
  apply and prune then run with.

Every getter has the `(problems, mapping, key, what)` signature of the target
option table and returns None after reporting a problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import cel

from reconciler.load.schema import (
    Problems,
    as_map,
    check_keys,
    describe,
    get_bool,
    get_enum,
    get_str,
    get_str_list,
)
from reconciler.load.yamlio import YamlMap, YamlSeq, shown
from reconciler.model import HealthExpr, Location

_EXPR_KEYS = ("apiVersion", "kind", "current", "inProgress", "failed")
_API_VERSION = re.compile(r"([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?")
_KIND_GLOB = re.compile(r"[A-Za-z0-9*?\[\]]+(\.[a-z0-9*?.\-\[\]]+)?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


def cel_problem(expression: str) -> str:
    """Why a CEL expression does not compile, or "" when it does."""
    try:
        cel.compile(expression)
    except ValueError as exc:
        text = str(exc)
        found = _CEL_POSITION.search(text)
        if found:
            return f"line {found[1]}, column {found[2]} of the expression: {found[3]}"
        return text.splitlines()[0]
    except Exception as exc:  # the binding raises other types for some inputs
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return ""


def get_health_exprs(p: Problems, m: YamlMap, key: str, what: str) -> tuple[HealthExpr, ...] | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, YamlSeq):
        p.add(m.line_of(key), f"{what}: {key!r} must be a list of rules, not {describe(value)}")
        return None
    rules: list[HealthExpr] = []
    seen: dict[tuple[str, str], int] = {}
    ok = True
    for index, item in enumerate(value):
        rule = _health_expr(p, item, value.line_of(index), f"{what}: {key}[{index}]")
        if rule is None:
            ok = False
            continue
        pair = (rule.api_version, rule.kind)
        if pair in seen:
            p.add(rule.location.line, f"{what}: {key}[{index}]: a rule for {rule.kind} "
                                      f"{rule.api_version} is already at line {seen[pair]}")
            ok = False
        seen.setdefault(pair, rule.location.line)
        rules.append(rule)
    return tuple(rules) if ok else None


def _health_expr(p: Problems, item: Any, line: int, what: str) -> HealthExpr | None:
    r = as_map(p, item, line, what)
    if r is None:
        return None
    check_keys(p, r, _EXPR_KEYS, what, required=("apiVersion", "kind", "current"))
    api_version = get_str(p, r, "apiVersion", what)
    kind = get_str(p, r, "kind", what)
    if api_version is not None and not _API_VERSION.fullmatch(api_version):
        p.add(r.line_of("apiVersion"), f"{what}: apiVersion {shown(api_version)} is not "
                                       "'v1' or '<group>/<version>'")
        api_version = None
    exprs: dict[str, str] = {}
    ok = True
    for name in ("current", "inProgress", "failed"):
        text = get_str(p, r, name, what)
        if text is None:
            ok = ok and name not in r
            continue
        problem = cel_problem(text)
        if problem:
            p.add(r.line_of(name), f"{what}: {name}: CEL expression does not compile: {problem}")
            ok = False
        exprs[name] = text
    if not ok or api_version is None or kind is None or "current" not in exprs:
        return None
    return HealthExpr(api_version=api_version, kind=kind, current=exprs["current"],
                      in_progress=exprs.get("inProgress", ""), failed=exprs.get("failed", ""),
                      location=Location(file=p.file, line=r.line))


def get_exclude(p: Problems, m: YamlMap, key: str, what: str) -> tuple[str, ...] | None:
    globs = get_str_list(p, m, key, what)
    if globs is None:
        return None
    ok = True
    for index, glob in enumerate(globs):
        if not _KIND_GLOB.fullmatch(glob):
            p.add(globs.line_of(index), f"{what}: {key}: {shown(glob)} is not a kind name or "
                                        "glob like 'Event', 'Lease.coordination.k8s.io' or "
                                        "'*.cilium.io'")
            ok = False
    return tuple(globs) if ok else None


def get_impersonate(p: Problems, m: YamlMap, key: str, what: str) -> str | None:
    """`{service_account: ns/name}` -> "ns/name"."""
    if m.get(key) is None:
        return None
    i = as_map(p, m[key], m.line_of(key), f"{what}: {key!r}")
    if i is None:
        return None
    check_keys(p, i, ("service_account",), f"{what}: {key}", required=("service_account",))
    account = get_str(p, i, "service_account", f"{what}: {key}")
    if account is None:
        return None
    namespace, _, name = account.partition("/")
    if not (_NAME.fullmatch(namespace) and _NAME.fullmatch(name)):
        p.add(i.line_of("service_account"), f"{what}: {key}: service_account must be "
                                            f"'<namespace>/<name>', not {shown(account)}")
        return None
    return account


HOOK_ANNOTATIONS = ("argocd.argoproj.io/hook", "reconciler.io/hook")
HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HOOK_PHASES = ("PreSync", "PostSync", "SyncFail")
HOOK_POLICIES = ("BeforeHookCreation", "HookSucceeded", "HookFailed")


def check_hook(p: Problems, metadata: YamlMap) -> None:
    """A manifest's hook annotations (backends/kubernetes/hooks.py runs them)."""
    notes = metadata.get("annotations")
    if not isinstance(notes, YamlMap):
        return
    phases = [key for key in HOOK_ANNOTATIONS if key in notes]
    for key in phases:
        for name in str(notes[key] or "").split(","):
            if name.strip() not in HOOK_PHASES:
                p.add(notes.line_of(key), f"metadata.annotations: {key}: {shown(name.strip())} "
                                          f"is not one of {', '.join(HOOK_PHASES)}")
    _check_helm_hook(p, notes)
    if HOOK_DELETE_POLICY not in notes:
        return
    if not phases:
        p.add(notes.line_of(HOOK_DELETE_POLICY),
              f"metadata.annotations: {HOOK_DELETE_POLICY} is set on an object that is not "
              f"a hook (no {HOOK_ANNOTATIONS[0]} annotation)")
    for name in str(notes[HOOK_DELETE_POLICY] or "").split(","):
        if name.strip() not in HOOK_POLICIES:
            p.add(notes.line_of(HOOK_DELETE_POLICY),
                  f"metadata.annotations: {HOOK_DELETE_POLICY}: {shown(name.strip())} is not "
                  f"one of {', '.join(HOOK_POLICIES)}")


HELM_HOOKS = ("pre-install", "post-install", "pre-upgrade", "post-upgrade", "pre-delete",
              "post-delete", "pre-rollback", "post-rollback", "test", "test-success",
              "test-failure", "crd-install")
HELM_POLICIES = ("before-hook-creation", "hook-succeeded", "hook-failed")


def _check_helm_hook(p: Problems, notes: YamlMap) -> None:
    """Helm's hook annotations, as a rendered chart carries them."""
    for key, allowed in (("helm.sh/hook", HELM_HOOKS),
                         ("helm.sh/hook-delete-policy", HELM_POLICIES)):
        if key not in notes:
            continue
        for name in str(notes[key] or "").split(","):
            if name.strip() not in allowed:
                p.add(notes.line_of(key), f"metadata.annotations: {key}: {shown(name.strip())} "
                                          f"is not one of {', '.join(allowed)}")


def _policy(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_enum(p, m, key, what, ("Background", "Foreground", "Orphan"))


Getter = Callable[[Problems, YamlMap, str, str], Any]

SYNC_OPTIONS: dict[str, Getter] = {
    "create_namespace": get_bool,
    "replace": get_bool,
    "force_conflicts": get_bool,
    "propagation_policy": _policy,
    "health_exprs": get_health_exprs,
}
"""Keys a target and an app's `kubernetes:` block both accept."""

TARGET_OPTIONS: dict[str, Getter] = {
    **SYNC_OPTIONS,
    "exclude": get_exclude,
    "impersonate": get_impersonate,
}
"""Sync option keys only a target accepts."""


def parse_app_options(p: Problems, m: YamlMap, key: str = "kubernetes") -> dict[str, Any]:
    """app.yaml's `kubernetes:` block, type-checked; {} when absent or wrong."""
    if m.get(key) is None:
        return {}
    block = as_map(p, m[key], m.line_of(key), f"app.yaml: {key!r}")
    if block is None:
        return {}
    check_keys(p, block, SYNC_OPTIONS, f"app.yaml: {key}")
    options: dict[str, Any] = {}
    for name, getter in SYNC_OPTIONS.items():
        if name in block:
            value = getter(p, block, name, f"app.yaml: {key}")
            if value is not None:
                options[name] = value
    return options
