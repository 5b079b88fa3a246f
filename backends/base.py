"""The one narrow seam between the engine and every backend.

A backend reads live state in bulk, applies and deletes changes, and reports
health. It keeps no state between syncs beyond connections and, in a
long-running process, what it keeps in the context's `Keeper` (the Kubernetes
backend's watch-fed cache): what it created is known from ownership labels
(Kubernetes) or from the inventory the engine passes in (VM, YARN). `plan`
never calls a backend; it compares the `LiveView` a backend returned, so
planning stays pure.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

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
    # app that was being applied fails (apply error, failed health gate, or its
    # early prune with `prune_first`), so a backend can run failure hooks
    # (Kubernetes SyncFail); it returns notes.


class Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=Closable)


class Keeper:
    """What backends keep between syncs in a long-running process, one item per
    name; thread-safe. `close()` closes every item; the process calls it once."""

    def __init__(self) -> None:
        self._items: dict[Hashable, tuple[Hashable, Any]] = {}
        self._lock = threading.Lock()

    def get(self, name: Hashable, identity: Hashable, make: Callable[[], T]) -> T:
        """The item kept under `name`, made by `make()` the first time, and made
        anew (the old one closed) when `identity` differs from the one it was
        made for (the target now names another cluster or other credentials)."""
        with self._lock:
            found = self._items.get(name)
            if found is not None and found[0] == identity:
                kept: T = found[1]
                return kept
            if found is not None:
                found[1].close()
            made = make()
            self._items[name] = (identity, made)
            return made

    def close(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for _, item in items:
            item.close()


@dataclass(frozen=True, kw_only=True)
class BackendContext:
    """What a backend may need beyond its target: where to keep files, the
    state root's raw files (for VM File `source`), the repo revision, and in a
    long-running process where to keep state between syncs."""

    data_dir: Path
    revision: str = ""
    keeper: Keeper | None = None
    """None in one-shot commands: nothing outlives the sync."""


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
