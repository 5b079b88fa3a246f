"""The one narrow seam between the engine and every backend.

A backend reads live state in bulk, applies and deletes changes, and reports
health. It keeps no state between syncs beyond connections: what it created is
known from ownership labels (Kubernetes) or from the inventory the engine passes
in (VM, YARN). `plan` never calls a backend; it compares the `LiveView` a
backend returned, so planning stays pure.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.model import (
    App,
    BackendKind,
    Change,
    HealthStatus,
    HostKey,
    LiveView,
    Resource,
    Target,
)

Inventory = Mapping[HostKey, str]
"""What this tool applied earlier on a target: (host, id) -> owning app."""


@dataclass(frozen=True, kw_only=True)
class HealthReport:
    status: HealthStatus
    message: str = ""
    hosts: Mapping[str, HealthStatus] = field(default_factory=dict)
    """Per-host status where the backend has hosts; empty otherwise."""


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    applied: int = 0
    """Writes actually made (files written, objects patched, services restarted)."""
    restarted: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()


class Backend(Protocol):
    """What the rollout engine needs of any backend. Implementations are not shared
    between threads for the same host; the engine serialises per host."""

    target: Target

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        """Read, in bulk, the live state of `resources` and of everything in `inventory`."""
        ...

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        """Make create/update/delete `changes` of one app (one host batch) true."""
        ...

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        """One health probe of `app` on `hosts`; the engine retries until its deadline."""
        ...

    def close(self) -> None: ...

    # Optional: `sync_failed(app, reason) -> tuple[str, ...]`, called once when an
    # app that was being applied fails (apply error or failed health gate), so a
    # backend can run failure hooks (Kubernetes SyncFail); it returns notes.


@dataclass(frozen=True, kw_only=True)
class BackendContext:
    """What a backend may need beyond its target: where to keep files, the
    state root's raw files (for VM File `source`), and the repo revision."""

    data_dir: Path
    revision: str = ""


_MODULES = {
    BackendKind.VM: "backends.vm",
    BackendKind.KUBERNETES: "backends.kubernetes",
    BackendKind.YARN: "backends.yarn",
}


def open_backend(target: Target, context: BackendContext) -> Backend:
    """Import the target's backend package on demand and open it.

    Each backend package exposes `open(target, context) -> Backend`.
    """
    module = importlib.import_module(_MODULES[target.backend])
    backend: Backend = module.open(target, context)
    return backend
