"""What the history hands back: plain frozen records, the same from every store."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.events import Event
from reconciler.model import ResourceId


@dataclass(frozen=True, kw_only=True)
class InventoryEntry:
    target: str
    host: str
    id: ResourceId
    app: str
    wave: int = 0
    revision: str = ""
    state: str = "applied"
    """intent (about to be applied), applied, healthy (the gate passed), deleting."""


@dataclass(frozen=True, kw_only=True)
class AppResult:
    app: str
    target: str
    wave: int | None
    hosts: tuple[str, ...]
    status: str
    error: str
    started: float | None
    finished: float | None
    rollback: str


@dataclass(frozen=True, kw_only=True)
class DeployRecord:
    id: int
    revision: str
    trigger: str
    started: float
    finished: float | None
    result: str
    """running, success, failure, error or interrupted."""
    message: str
    rolled_back: bool
    summary: dict[str, int]
    apps: tuple[AppResult, ...] = ()
    events: tuple[Event, ...] = ()
    targets: tuple[str, ...] = ()
    """The targets the deploy covered (empty for deploys recorded before schema 5)."""


@dataclass(frozen=True, kw_only=True)
class DriftedResource:
    """One resource a drift check found different: where, which, and what to do."""

    host: str
    resource: str
    """The ResourceId's spelling (`File:/etc/app.conf`, `apps/Deployment/ns/web`)."""
    action: str
    """create, update or delete: what a sync would do to it."""


@dataclass(frozen=True, kw_only=True)
class DriftCheck:
    target: str
    checked_at: float
    revision: str
    drifted: int
    """How many resources differ (all of them, even when `resources` is cut)."""
    resources: tuple[DriftedResource, ...] = ()
    healed: bool = False


@dataclass(frozen=True, kw_only=True)
class RelayedRequest:
    """A webhook one replica received, for the replicas holding the shards."""

    id: int
    kind: str
    """"sync" (the tracked branch moved) or "plan" (a pull-request head, `ref`)."""
    ref: str
    reason: str
    sender: str
    """The identity of the replica that received it."""


@dataclass(frozen=True, kw_only=True)
class Replica:
    """A daemon replica that said it is alive (`History.heartbeat`)."""

    identity: str
    seen: float
    address: str
    """Where it answers HTTP ("" when it does not)."""
    shards: tuple[int, ...] = ()
    """The shards it held when it last said so."""
