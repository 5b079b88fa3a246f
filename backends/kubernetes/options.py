"""A Kubernetes target's options, and an app's overrides of them: typed values,
each parsed once by one schema.

The state-repo loader calls `parse_options` on the target's mapping in
reconciler.yaml and `parse_app_options` on an app.yaml's `kubernetes:` block
(problems are reported there with file:line; a CEL health rule is compiled
then, so a bad expression is a validation error at its line), and the target
and the app carry the resulting `Options` and `AppOptions` to the backend,
which uses them as they are (`Options.for_app` lays an app's block over its
target's options). A Target or App built in code with a plain mapping goes
through the same schema on use (`options_of`, `app_options_of`), so no value
can mean one thing to `validate` and another to `sync`. Importing this module
costs nothing: neither the Kubernetes client nor the CEL binding is loaded here.

Adding an option: a field on `Options` (with its default) and one entry in
`_READERS` naming the getter that checks its value (and in `_APP_READERS`, with
a field on `AppOptions`, if an app may override it); both sides see it at once,
and tests/load/test_option_parity.py asks for samples of it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from reconciler.errors import ApiError, BackendError
from reconciler.load.schema import (
    Problems,
    as_map,
    check_keys,
    describe,
    get_bool,
    get_duration,
    get_enum,
    get_str,
    get_str_list,
    typed_options,
)
from reconciler.load.yamlio import YamlMap, YamlSeq, from_plain, shown
from reconciler.model import App, Change, HealthExpr, Location, ResourceId, Target

POLICIES = ("Background", "Foreground", "Orphan")

SYNC_OPTIONS_ANNOTATION = "argocd.argoproj.io/sync-options"
"""Per-object options as Argo CD spells them: `Replace=true`, `Force=true`
(take over conflicting fields), comma-separated."""


@dataclass(frozen=True, kw_only=True)
class AppOptions:
    """An app's `kubernetes:` block: None (or no rules) keeps the target's value."""

    force_conflicts: bool | None = None
    propagation_policy: str | None = None
    create_namespace: bool | None = None
    replace: bool | None = None
    health_exprs: tuple[HealthExpr, ...] = ()
    """Come before the target's rules, so an app may redefine a kind."""


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
    create_namespace: bool = False
    """Create a missing namespace that the app's objects name (not owned, never pruned)."""
    replace: bool = False
    """Delete and re-create an object whose update the server refuses as immutable."""
    exclude: tuple[str, ...] = ()
    """Globs over kind names (`Event`, `*.cilium.io`): never read, applied or pruned."""
    health_exprs: tuple[HealthExpr, ...] = ()
    impersonate: str = ""
    """"<namespace>/<name>" of the service account whose rights every call has."""

    def for_app(self, app: AppOptions | None) -> Options:
        """These options with an app's `kubernetes:` block laid over them."""
        if app is None:
            return self
        given = {f.name: getattr(app, f.name) for f in fields(app)
                 if f.name != "health_exprs" and getattr(app, f.name) is not None}
        return replace(self, **given, health_exprs=(*app.health_exprs, *self.health_exprs))

    @property
    def impersonated_user(self) -> str:
        namespace, _, name = self.impersonate.partition("/")
        return f"system:serviceaccount:{namespace}:{name}" if self.impersonate else ""

    def excluded(self, group: str, kind: str) -> str:
        """The `exclude` glob that matches this kind, or ""."""
        name = f"{kind}.{group}" if group else kind
        return next((g for g in self.exclude if fnmatch.fnmatchcase(name, g)), "")

    def excluded_id(self, rid: ResourceId) -> str:
        return self.excluded(rid.group, rid.kind)


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


_EXPR_KEYS = ("apiVersion", "kind", "current", "inProgress", "failed")
_API_VERSION = re.compile(r"([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?")
_KIND_GLOB = re.compile(r"[A-Za-z0-9*?\[\]]+(\.[a-z0-9*?.\-\[\]]+)?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


def cel_problem(expression: str) -> str:
    """Why a CEL expression does not compile, or "" when it does."""
    import cel  # only a target or app with health rules pays for the binding

    try:
        cel.compile(expression)
    except ValueError as exc:
        text = str(exc)
        found = _CEL_POSITION.search(text)
        if found:
            return f"line {found[1]}, column {found[2]} of the expression: {found[3]}"
        return text.splitlines()[0] if text else "ValueError"
    except Exception as exc:  # the binding raises other types for some inputs
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return ""


def _health_exprs(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    """Flux's `healthCheckExprs` shape, each expression compiled now."""
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


def _exclude(p: Problems, m: YamlMap, key: str, what: str) -> Any:
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


def _impersonate(p: Problems, m: YamlMap, key: str, what: str) -> Any:
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


# The keys an app's `kubernetes:` block may set, as on `AppOptions`, and their getters.
_APP_READERS: dict[str, _Reader] = {
    "create_namespace": get_bool, "replace": get_bool, "force_conflicts": get_bool,
    "propagation_policy": _policy, "health_exprs": _health_exprs,
}
APP_KEYS = tuple(_APP_READERS)

# Each option's key, as in reconciler.yaml and on `Options`, and its getter.
_READERS: dict[str, _Reader] = {
    "kubeconfig": _text, "context": _text, "in_cluster": get_bool, "namespace": _text,
    "force_conflicts": get_bool, "propagation_policy": _policy, "crd_timeout": get_duration,
    "delete_timeout": get_duration, "namespaces": _names, "watch": get_bool,
    "create_namespace": get_bool, "replace": get_bool, "exclude": _exclude,
    "health_exprs": _health_exprs, "impersonate": _impersonate,
}
KEYS = tuple(_READERS)


def _read(p: Problems, m: YamlMap, readers: Mapping[str, _Reader], what: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, read in readers.items():
        if key in m:
            value = read(p, m, key, what)
            if value is not None:
                values[key] = value
    return values


def parse_options(p: Problems, m: YamlMap, what: str) -> Options | None:
    """The typed options of the target mapping `m`, or None after reporting into `p`."""
    before = len(p.items)
    check_keys(p, m, ("backend", *KEYS), what)
    values = _read(p, m, _READERS, what)
    if values.get("in_cluster") and "kubeconfig" in values:
        p.add(m.line_of("in_cluster"), f"{what}: 'in_cluster' and 'kubeconfig' exclude each other")
    return Options(**values) if len(p.items) == before else None


def parse_app_options(p: Problems, m: YamlMap, what: str) -> AppOptions | None:
    """The typed `kubernetes:` block `m` of an app.yaml, or None after reporting into `p`."""
    before = len(p.items)
    check_keys(p, m, APP_KEYS, what)
    values = _read(p, m, _APP_READERS, what)
    return AppOptions(**values) if len(p.items) == before else None


def options_of(target: Target) -> Options:
    """The target's Options: as the loader parsed them, or parsed now from a mapping."""
    return typed_options(target, Options, parse_options)


def app_options_of(app: App) -> AppOptions | None:
    """The app's `kubernetes:` block: as the loader parsed it, or parsed now from a
    mapping (an App built in code); None when it has none."""
    if app.options is None or isinstance(app.options, AppOptions):
        return app.options
    if not isinstance(app.options, Mapping):
        raise BackendError(f"app {app.name}: options must be a mapping or AppOptions")
    p = Problems(app.location.file)
    parsed = parse_app_options(p, from_plain(app.options, app.location.line),
                               f"app {app.name!r}: kubernetes")
    if parsed is None:
        raise BackendError("; ".join(str(problem) for problem in p.items))
    return parsed


def sync_options(body: Mapping[str, Any]) -> frozenset[str]:
    """The object's `argocd.argoproj.io/sync-options` flags, e.g. {"Replace=true"}."""
    raw = ((body.get("metadata") or {}).get("annotations") or {}).get(SYNC_OPTIONS_ANNOTATION)
    if not isinstance(raw, str):
        return frozenset()
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def wants_replace(options: Options, body: Mapping[str, Any]) -> bool:
    flags = sync_options(body)
    if "Replace=false" in flags:
        return False
    return options.replace or "Replace=true" in flags


def wants_force(options: Options, body: Mapping[str, Any]) -> bool:
    return options.force_conflicts or "Force=true" in sync_options(body)


def is_immutable(exc: ApiError) -> bool:
    """The server refused an update because it would change an immutable field."""
    return exc.status == 422 and "field is immutable" in str(exc)


def refuse_immutable(upserts: Sequence[Change], immutable: Mapping[ResourceId, str],
                     options: Options) -> None:
    """Before any write: an immutable change the app may not replace fails it whole.
    `immutable` holds the server's refusal of each such planned update."""
    for change in upserts:
        refused = immutable.get(change.id)
        if refused and change.resource is not None and not wants_replace(
                options, change.resource.body):
            raise ApiError(
                f"{change.resource.location}: {change.id} cannot be changed in place: "
                f"{refused}. Nothing of the app was applied. To delete and re-create it, "
                "set `replace: true` (on the target, or in app.yaml under `kubernetes:`) "
                f"or annotate it {SYNC_OPTIONS_ANNOTATION}: Replace=true",
                status=422, reason="Invalid")
