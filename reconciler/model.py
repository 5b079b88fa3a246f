"""The typed vocabulary every layer speaks: desired state, live state, plans.

This module sits at the bottom of the import graph and imports nothing of the
project. Everything here is a frozen, keyword-only dataclass or a string enum,
so values can be shared between threads and cached by content without copies.

Resource bodies are plain mappings parsed from YAML. They are treated as
immutable by convention: no layer mutates a body it did not build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class BackendKind(str, Enum):
    VM = "vm"
    KUBERNETES = "kubernetes"
    YARN = "yarn"


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class RollbackPolicy(str, Enum):
    AUTO = "auto"
    NONE = "none"


class HealthStatus(StrEnum):
    """gitops-engine's health vocabulary; `worse` orders it for aggregation. A StrEnum:
    an event carries it as a status, and it formats as its value."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"
    DEGRADED = "Degraded"


_HEALTH_ORDER = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.SUSPENDED: 1,
    HealthStatus.PROGRESSING: 2,
    HealthStatus.MISSING: 3,
    HealthStatus.UNKNOWN: 4,
    HealthStatus.DEGRADED: 5,
}


def worse(a: HealthStatus, b: HealthStatus) -> HealthStatus:
    """The less healthy of two statuses, so a set of results folds to one."""
    return a if _HEALTH_ORDER[a] >= _HEALTH_ORDER[b] else b


@dataclass(frozen=True, kw_only=True, order=True)
class Location:
    """Where a value came from: a path relative to the state root, 1-based line."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, kw_only=True, order=True)
class ResourceId:
    """Identity without version (cli-utils' ObjMetadata).

    Kubernetes: group, kind, namespace, name. VM: kind and the absolute path
    (or unit/command name) in `name`. YARN: kind "Service" and the service name.
    """

    group: str = ""
    kind: str
    namespace: str = ""
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        if self.namespace:
            return f"{kind}/{self.namespace}/{self.name}"
        if self.name.startswith("/"):
            return f"{kind}:{self.name}"  # a VM path: "File:/etc/app.conf"
        return f"{kind}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class Resource:
    id: ResourceId
    app: str
    body: Mapping[str, Any] = field(repr=False)
    """Never in a repr: it may hold secret values."""
    location: Location
    secret: bool = False
    """True when the body holds secret values: they never reach a diff, log or page."""


@dataclass(frozen=True, kw_only=True)
class BatchSize:
    """Hosts per rollout batch: an absolute count or a percentage of the fleet."""

    count: int | None = None
    percent: int | None = None

    def of(self, total: int) -> int:
        if total <= 0:
            return 0
        if self.count is not None:
            return max(1, min(self.count, total))
        pct = self.percent if self.percent is not None else 100
        return max(1, min(total, (total * pct + 99) // 100))


@dataclass(frozen=True, kw_only=True)
class RolloutSpec:
    batch: BatchSize = field(default_factory=lambda: BatchSize(percent=100))
    max_failures: int = 0


class CheckKind(str, Enum):
    HTTP = "http"
    TCP = "tcp"
    COMMAND = "command"


@dataclass(frozen=True, kw_only=True)
class HealthCheck:
    kind: CheckKind
    spec: Mapping[str, Any]
    """http: {url, status}; tcp: {port, host?}; command: {run}."""
    timeout: float = 60.0
    retries: int = 3
    interval: float = 1.0
    location: Location


@dataclass(frozen=True, kw_only=True)
class HealthExpr:
    """A health rule for one kind as CEL expressions on the live object, in
    Flux's `healthCheckExprs` shape. Each expression sees the object's top-level
    fields (`metadata`, `spec`, `status`, ...) as variables; validated when loaded."""

    api_version: str
    kind: str
    current: str
    in_progress: str = ""
    failed: str = ""
    location: Location


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often, and how soon, a failed deploy of the same commit is tried again
    (Argo CD's `syncPolicy.retry`): at most `limit` more times, waiting
    `backoff * factor**n` seconds (at most `max_backoff`) before the n-th retry."""

    limit: int = 0
    backoff: float = 5.0
    factor: float = 2.0
    max_backoff: float = 180.0

    def delay(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based)."""
        return float(min(self.max_backoff, self.backoff * self.factor ** max(0, attempt - 1)))


@dataclass(frozen=True, kw_only=True)
class Target:
    name: str
    backend: BackendKind
    options: object
    """The backend's typed options (`backends.<name>.options.Options`), as the
    loader parsed them from reconciler.yaml. A Target built in code may give a
    plain mapping instead: the backend parses it on open with the same schema."""
    location: Location


@dataclass(frozen=True, kw_only=True)
class App:
    name: str
    target: str
    wave: int = 0
    depends_on: tuple[str, ...] = ()
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    health: tuple[HealthCheck, ...] = ()
    resources: tuple[Resource, ...] = ()
    prune: bool = True
    prune_first: bool = False
    """Delete what the app no longer declares before its writes, not after every wave."""
    rollback: RollbackPolicy = RollbackPolicy.AUTO
    timeout: float = 300.0
    """Seconds the health gate of one batch may take before the app counts as failed."""
    options: object = None
    """The backend's typed settings of this app (app.yaml `kubernetes:`, as
    `backends.kubernetes.options.AppOptions`), parsed by the loader; None: none.
    An App built in code may give a plain mapping: the backend parses it with
    the same schema. They override the target's options of the same name."""
    location: Location


@dataclass(frozen=True, kw_only=True)
class SyncWindow:
    """A cron schedule and a duration during which deploys to `targets` wait
    (kind "deny") or are the only times allowed (kind "allow")."""

    schedule: str
    duration: float
    kind: str = "deny"
    targets: tuple[str, ...] = ()
    """Empty means every target."""
    location: Location


@dataclass(frozen=True, kw_only=True)
class DesiredState:
    revision: str
    targets: Mapping[str, Target]
    apps: Mapping[str, App]
    sync_windows: tuple[SyncWindow, ...] = ()
    prune_default: bool = True
    """defaults.prune: applies to owned objects whose app no longer exists."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """defaults.retry: whether the daemon tries a failed deploy again."""


# --- live state, as backends report it -------------------------------------

HostKey = tuple[str, ResourceId]
"""A resource on one host. Backends without hosts (Kubernetes, YARN) use ""."""


@dataclass(frozen=True, kw_only=True)
class LiveResource:
    id: ResourceId
    host: str = ""
    state: Mapping[str, Any] = field(repr=False)
    """The comparable form of what is live (backend-normalised)."""
    owner_app: str | None = None
    """The app that created it, from ownership labels or the inventory; None if not ours."""


@dataclass(frozen=True, kw_only=True)
class LiveView:
    """One target's live state, read in bulk, next to the desired forms to compare.

    `desired` maps every (host, id) the target should have to the comparable form
    of the desired resource on that host (placeholders such as {host} resolved,
    server defaults applied where the backend can know them). `live` holds what
    exists, including owned objects that Git no longer names (prune candidates).
    """

    target: str
    hosts: tuple[str, ...] = ("",)
    desired: Mapping[HostKey, Mapping[str, Any]]
    live: Mapping[HostKey, LiveResource]
    errors: Mapping[str, str] = field(default_factory=dict)
    """App -> why it cannot be planned (an object the server rejected, with its
    file:line): that app fails without a write; the target's other apps plan on."""


# --- plans -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Change:
    id: ResourceId
    app: str
    target: str
    action: Action
    host: str = ""
    diff: str = ""
    """Unified diff, secrets redacted."""
    # Comparable forms and the resource may hold secret values: never in a repr.
    desired: Mapping[str, Any] | None = field(default=None, repr=False)
    live: Mapping[str, Any] | None = field(default=None, repr=False)
    resource: Resource | None = field(default=None, repr=False)
    """The desired resource (None for deletes)."""


@dataclass(frozen=True, kw_only=True)
class AppPlan:
    app: str
    target: str
    wave: int
    changes: tuple[Change, ...]
    error: str = ""
    """Set when the app could not be planned: the rollout fails it before any write."""


@dataclass(frozen=True, kw_only=True)
class WavePlan:
    wave: int
    apps: tuple[AppPlan, ...]


@dataclass(frozen=True, kw_only=True)
class Plan:
    revision: str
    waves: tuple[WavePlan, ...]
    prune: tuple[AppPlan, ...] = ()
    """Deletions, already in reverse wave order; they run after every wave."""

    def changes(self) -> list[Change]:
        out = [c for w in self.waves for a in w.apps for c in a.changes]
        out.extend(c for a in self.prune for c in a.changes)
        return out

    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for c in self.changes():
            counts[c.action.value] += 1
        return counts

    @property
    def empty(self) -> bool:
        return not self.changes() and not self.errors()

    def errors(self) -> list[tuple[str, str]]:
        """(app, why) for every app that could not be planned."""
        return [(a.app, a.error) for w in self.waves for a in w.apps if a.error]
