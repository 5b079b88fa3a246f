"""What the web needs of a running daemon, as types: the daemon<->web seam.

`reconciler.web.server.start(daemon, listen)` takes any `DaemonView`; the
daemon (`reconciler.daemon.service.Daemon`) is one, which mypy checks where it
calls `start`, and a test checks at run time (`runtime_checkable`). The web
never imports the daemon's modules for this: each protocol names only the
members the page, the API, the metrics and the webhooks read.

Invariants: every member is read-only here (properties), so the daemon's
plain attributes and frozen config values satisfy them, and nothing in the
web can assign to the daemon through the seam. The one call that acts is
`on_webhook`, which only queues a fetch or a plan scan and never blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from reconciler.engine import Engine
from reconciler.events import EventBus
from reconciler.history import History
from reconciler.webhooks import Trigger


class WebhookSecrets(Protocol):
    """Names of the environment variables holding each forge's webhook secret."""

    @property
    def github_secret_env(self) -> str | None: ...
    @property
    def gitlab_secret_env(self) -> str | None: ...
    @property
    def gitea_secret_env(self) -> str | None: ...


class HttpLimits(Protocol):
    @property
    def request_deadline(self) -> float: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_streams(self) -> int: ...


class DaemonSettings(Protocol):
    """The part of the daemon's configuration the web shows or obeys."""

    @property
    def branch(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def webhooks(self) -> WebhookSecrets: ...
    @property
    def http(self) -> HttpLimits: ...


class DriftView(Protocol):
    """The newest drift check over all targets."""

    @property
    def checked(self) -> float: ...
    @property
    def resources(self) -> Sequence[str]: ...
    """`target:host/id (action)` per drifted resource."""


class WorkerFacts(Protocol):
    @property
    def head(self) -> str | None: ...
    @property
    def waiting(self) -> Mapping[str, str]: ...
    """Target -> why a sync window holds its deploy back."""
    @property
    def last_drift(self) -> DriftView | None: ...


class WorkerView(Protocol):
    @property
    def state(self) -> WorkerFacts: ...


class LeaderView(Protocol):
    """This replica's view of the leader Lease."""

    @property
    def identity(self) -> str: ...
    @property
    def lease(self) -> str: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def holder(self) -> str | None: ...
    @property
    def transitions(self) -> int: ...
    @property
    def observed(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...


class SnapshotView(Protocol):
    @property
    def ready(self) -> bool: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def leader(self) -> LeaderView | None: ...
    """None when leader election is off."""
    @property
    def shards(self) -> Sequence[LeaderView]: ...
    """With shards: one view per shard, by index; empty without shards."""


@runtime_checkable
class DaemonView(Protocol):
    """A running daemon, as the web reads it."""

    @property
    def engine(self) -> Engine: ...
    @property
    def config(self) -> DaemonSettings: ...
    @property
    def history(self) -> History: ...
    @property
    def events(self) -> EventBus: ...
    @property
    def worker(self) -> WorkerView: ...

    def snapshot(self) -> SnapshotView: ...

    def unready_reason(self) -> str | None: ...

    def on_webhook(self, trigger: Trigger) -> None:
        """Hand over a verified delivery; queues only, never blocks."""
        ...
