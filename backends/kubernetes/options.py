"""A Kubernetes target's settings, and an app's overrides of them.

reconciler.yaml has type-checked every key (reconciler/load/targets.py and
k8s_options.py); what is checked here is only what a hand-built Target (a
test, a library caller) could still get wrong. An app's `kubernetes:` block
(`App.options`) overrides the target's keys of the same name for that app;
its health rules come before the target's, so an app may redefine a kind.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reconciler.errors import ApiError
from reconciler.model import Change, HealthExpr, ResourceId

POLICIES = ("Background", "Foreground", "Orphan")

SYNC_OPTIONS_ANNOTATION = "argocd.argoproj.io/sync-options"
"""Per-object options as Argo CD spells them: `Replace=true`, `Force=true`
(take over conflicting fields), comma-separated."""


@dataclass(frozen=True, kw_only=True)
class Options:
    namespace: str = "default"
    force_conflicts: bool = False
    propagation_policy: str = "Background"
    crd_timeout: float = 60.0
    delete_timeout: float = 60.0
    namespaces: tuple[str, ...] = ()
    """When set, the only namespaces read and written: namespace-scoped credentials
    (a tenant's) cannot list cluster-wide."""
    create_namespace: bool = False
    """Create a missing namespace that the app's objects name (not owned, never pruned)."""
    replace: bool = False
    """Delete and re-create an object whose update the server refuses as immutable."""
    exclude: tuple[str, ...] = ()
    """Globs over kind names (`Event`, `*.cilium.io`): never read, applied or pruned."""
    health_exprs: tuple[HealthExpr, ...] = ()
    impersonate: str = ""
    """"<namespace>/<name>" of the service account whose rights every call has."""

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Options:
        policy = str(options.get("propagation_policy", "Background"))
        if policy not in POLICIES:
            raise ApiError(f"propagation_policy must be one of {', '.join(POLICIES)}, "
                           f"not {policy!r}")
        return cls(
            namespace=str(options.get("namespace") or "default"),
            force_conflicts=bool(options.get("force_conflicts", False)),
            propagation_policy=policy,
            crd_timeout=float(options.get("crd_timeout", 60.0)),
            delete_timeout=float(options.get("delete_timeout", 60.0)),
            namespaces=tuple(str(n) for n in options.get("namespaces") or ()),
            create_namespace=bool(options.get("create_namespace", False)),
            replace=bool(options.get("replace", False)),
            exclude=tuple(str(g) for g in options.get("exclude") or ()),
            health_exprs=tuple(options.get("health_exprs") or ()),
            impersonate=str(options.get("impersonate") or ""),
        )

    def for_app(self, app_options: Mapping[str, Any]) -> Options:
        """These options with an app's `kubernetes:` block laid over them."""
        if not app_options:
            return self
        policy = str(app_options.get("propagation_policy", self.propagation_policy))
        if policy not in POLICIES:
            raise ApiError(f"propagation_policy must be one of {', '.join(POLICIES)}, "
                           f"not {policy!r}")
        return replace(
            self,
            force_conflicts=bool(app_options.get("force_conflicts", self.force_conflicts)),
            propagation_policy=policy,
            create_namespace=bool(app_options.get("create_namespace", self.create_namespace)),
            replace=bool(app_options.get("replace", self.replace)),
            health_exprs=(*tuple(app_options.get("health_exprs") or ()), *self.health_exprs),
        )

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
