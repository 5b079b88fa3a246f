"""The closed vocabularies of what a deploy, an app, a rollback and a step ended as.

gitops-engine keeps a sync's phase and each resource's result code as types
(`OperationPhase`, `ResultCode`); these are ours. Every module that decides or
reads an outcome names a member here, so a misspelt state is a type error
(mypy --strict) instead of a comparison that is silently never true.

Invariants:
- Each member's value is the string the history stores, the API serves, and
  the events carry: these are `StrEnum`s, so a member equals, hashes, formats
  and serialises (json, sqlite3, psycopg) exactly as its value. Changing a value
  changes the history schema and the API; add members, never rename them.
- Values read back from the history are plain strings; they compare equal to
  the members, so readers compare with members and never with literals.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from reconciler.model import HealthStatus


class DeployResult(StrEnum):
    """A deploy's phase: running while it runs, then how it ended."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    """Applied and unhealthy, or a backend failed: not retried until the next commit."""
    ERROR = "error"
    """The commit is invalid (or its signature does not verify): nothing was applied."""
    INTERRUPTED = "interrupted"
    """A stop request or an interrupt cut it short: the next sync resumes from live state."""


class AppStatus(StrEnum):
    """How one app of a rollout (or a wave, folded) ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    HALTED = "halted"
    """Not finished because another app failed."""
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    """A stop request left it unstarted or part done."""


class RollbackStatus(StrEnum):
    """How the rollback of one app ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"
    """Back on every host but the unreachable ones."""
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


class StepStatus(StrEnum):
    """A step in flight or done: a wave, batch or rollback starting, a batch or prune ending."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"


class InventoryState(StrEnum):
    """Where a host's object stands in the inventory (see reconciler.rollout.runner)."""

    INTENT = "intent"
    """About to be created or updated; the backend may or may not have it."""
    DELETING = "deleting"
    APPLIED = "applied"
    """The backend has it; its health gate has not passed (yet)."""
    HEALTHY = "healthy"


UNVERIFIED = frozenset({InventoryState.INTENT, InventoryState.APPLIED})
"""Inventory states whose hosts the next sync gates again."""

EventStatus = (DeployResult | AppStatus | RollbackStatus | StepStatus | HealthStatus
               | Literal[""])
"""What an `Event` carries: the outcome its kind reports, a health status for a
health check, or nothing."""
