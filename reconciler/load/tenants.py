"""Tenants: which targets, namespaces and kinds the apps of some folders may use.

Why: one state repository often serves several teams, and a team's app must
not deploy to another team's cluster or namespace, nor create cluster-wide
objects it was not granted. As Argo CD's AppProject does, a tenant in
reconciler.yaml names the app folders it holds (`apps: [shop-*]` means the
folders apps/shop-*/) and what they may use:

- `targets` (required): the targets those apps may name;
- `namespaces` (Kubernetes, optional): globs every namespaced object's
  namespace must match, its own or the target's default `namespace` when the
  manifest names none; a `Namespace` object's name must match too. Objects of
  the well-known cluster-scoped kinds are not namespace-checked: grant or deny
  them with `kinds`;
- `kinds` (Kubernetes, optional): the only kinds allowed, each `Kind` (any
  group) or `group/Kind` (`core/ConfigMap` for the core group), globs allowed.

An app no tenant names is not restricted (Argo CD's `default` project); an
app two tenants name is an error. Every violation is a validation problem at
the line that makes it (the app's `target`, the manifest's namespace or kind).
Pure: parsed values in, problems out.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import Problem
from reconciler.load.resources import ParsedResource
from reconciler.load.schema import Problems, as_map, check_keys, get_str_list, suggest
from reconciler.load.yamlio import YamlMap, shown
from reconciler.model import BackendKind, Location, Target

_KEYS = ("apps", "targets", "namespaces", "kinds")
_KIND = re.compile(r"([a-z0-9.*?-]+/)?[A-Za-z0-9*?]+")
# Kinds the API server keeps outside namespaces; an object of a kind not listed
# here (a custom resource, say) counts as namespaced when it names no namespace.
CLUSTER_KINDS = frozenset({
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "VolumeAttachment"), ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"), ("node.k8s.io", "RuntimeClass"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
})


@dataclass(frozen=True, kw_only=True)
class Tenant:
    name: str
    apps: tuple[str, ...]
    """Globs of app folder names (apps/<name>/)."""
    targets: tuple[str, ...]
    namespaces: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    location: Location

    def holds(self, app: str) -> bool:
        return any(fnmatch.fnmatchcase(app, pattern) for pattern in self.apps)


def parse_tenants(p: Problems, root: YamlMap, declared: Iterable[str]) -> tuple[Tenant, ...]:
    """The `tenants` mapping of reconciler.yaml; problems reported into `p`."""
    if root.get("tenants") is None:
        return ()
    m = as_map(p, root["tenants"], root.line_of("tenants"), "tenants")
    if m is None:
        return ()
    known = set(declared)
    found = (_tenant(p, name, spec, m.line_of(name), known) for name, spec in m.items())
    return tuple(t for t in found if t is not None)


def _tenant(p: Problems, name: str, spec: object, line: int, known: set[str]) -> Tenant | None:
    what = f"tenant {name!r}"
    m = as_map(p, spec, line, what)
    if m is None:
        return None
    check_keys(p, m, _KEYS, what, required=("apps", "targets"))
    lists = {key: _list(p, m, key, what) for key in _KEYS}
    for index, target in enumerate(lists["targets"] or ()):
        if target not in known:
            seq = m["targets"]
            p.add(seq.line_of(index), f"{what}: unknown target {shown(target)}"
                                      f"{suggest(target, known)}")
    for index, kind in enumerate(lists["kinds"] or ()):
        if not _KIND.fullmatch(kind):
            p.add(m["kinds"].line_of(index), f"{what}: kind {shown(kind)} is not 'Kind' or "
                                             "'group/Kind' (core/Kind for the core group)")
    apps, targets = lists["apps"], lists["targets"]
    if apps is None or targets is None:
        return None
    return Tenant(name=name, apps=apps, targets=targets, namespaces=lists["namespaces"],
                  kinds=lists["kinds"], location=Location(file=p.file, line=line))


def _list(p: Problems, m: YamlMap, key: str, what: str) -> tuple[str, ...] | None:
    value = get_str_list(p, m, key, what)
    if value is not None and not value:
        p.add(m.line_of(key), f"{what}: {key!r} must not be empty")
        return None
    return tuple(value) if value is not None else None


@dataclass(frozen=True, kw_only=True)
class AppUse:
    """What one app uses, as the loader found it."""

    app: str
    file: str
    """The app's app.yaml."""
    target: str
    target_line: int
    resources: Sequence[ParsedResource] = ()


def check_tenants(tenants: Sequence[Tenant], uses: Iterable[AppUse],
                  targets: Mapping[str, Target]) -> list[Problem]:
    """Every use of a target, namespace or kind that an app's tenant does not allow."""
    problems: list[Problem] = []
    if not tenants:
        return problems
    for use in uses:
        mine = [t for t in tenants if t.holds(use.app)]
        if len(mine) > 1:
            names = " and ".join(repr(t.name) for t in mine)
            problems.append(_problem(use.file, 1, f"app {use.app!r} is in tenants {names}; "
                                                  "an app belongs to one tenant at most"))
        if len(mine) != 1:
            continue
        tenant = mine[0]
        if use.target not in tenant.targets:
            problems.append(_problem(
                use.file, use.target_line,
                f"app {use.app!r} may not use target {use.target!r}: tenant {tenant.name!r} "
                f"({tenant.location}) allows {_listed(tenant.targets)}"))
            continue
        target = targets.get(use.target)
        if target is not None and target.backend is BackendKind.KUBERNETES:
            default = str(getattr(target.options, "namespace", "default"))
            problems.extend(_check_objects(tenant, use, default))
    return problems


def _check_objects(tenant: Tenant, use: AppUse, default: str) -> list[Problem]:
    problems: list[Problem] = []
    for item in use.resources:
        rid, body = item.resource.id, item.resource.body
        where = item.resource.location
        if tenant.kinds is not None and not _kind_allowed(tenant.kinds, rid.group, rid.kind):
            line = body.line_of("kind") if isinstance(body, YamlMap) else where.line
            problems.append(_problem(where.file, line, (
                f"app {use.app!r} may not create kind {_kind_label(rid.group, rid.kind)!r}: "
                f"tenant {tenant.name!r} ({tenant.location}) allows kinds "
                f"{_listed(tenant.kinds)}")))
        if tenant.namespaces is None:
            continue
        namespace, line = _namespace_of(item, default)
        if namespace is None or any(fnmatch.fnmatchcase(namespace, pattern)
                                    for pattern in tenant.namespaces):
            continue
        problems.append(_problem(where.file, line, (
            f"app {use.app!r} may not use namespace {namespace!r}: tenant {tenant.name!r} "
            f"({tenant.location}) allows namespaces {_listed(tenant.namespaces)}")))
    return problems


def _namespace_of(item: ParsedResource, default: str) -> tuple[str | None, int]:
    """The namespace an object lives in (or is, for a Namespace) and its line;
    None for the cluster-scoped kinds."""
    rid, body = item.resource.id, item.resource.body
    line = item.resource.location.line
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    if (rid.group, rid.kind) == ("", "Namespace"):
        named = metadata.line_of("name") if isinstance(metadata, YamlMap) else line
        return rid.name, named
    if (rid.group, rid.kind) in CLUSTER_KINDS:
        return None, line
    if rid.namespace:
        return rid.namespace, (metadata.line_of("namespace")
                               if isinstance(metadata, YamlMap) else line)
    return default, line


def _kind_allowed(patterns: Sequence[str], group: str, kind: str) -> bool:
    for pattern in patterns:
        want_group, slash, want_kind = pattern.rpartition("/")
        if not fnmatch.fnmatchcase(kind, want_kind):
            continue
        if not slash or fnmatch.fnmatchcase(group or "core", want_group):
            return True
    return False


def _kind_label(group: str, kind: str) -> str:
    return f"{group}/{kind}" if group else kind


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values)


def _problem(file: str, line: int, message: str) -> Problem:
    return Problem(location=Location(file=file, line=line), message=message)

