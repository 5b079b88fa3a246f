"""Every error the reconciler raises on purpose, as one tree.

    ReconcilerError                 one-line message; CLI exit 1 unless said
    ├── ValidationError             the state repo is invalid (exit 2); holds every Problem
    ├── ConfigError                 the daemon's own configuration is invalid
    ├── SourceError                 git: unreachable repo, bad revision, bad credentials
    ├── BackendError                a backend could not read or change live state
    │   ├── TransportError          SSH/local transport: connect, auth, host key, I/O
    │   │   └── HostsUnreachable    a read reached only some hosts (carries what it read)
    │   └── ApiError                an HTTP API (Kubernetes, YARN) answered with an error
    ├── HealthCheckFailed           a health gate did not pass in time
    ├── HistoryError                the history store (SQLite, PostgreSQL) cannot read or write
    └── RolloutError                a rollout halted (after rollback, when configured)

Callers catch the narrowest class they can act on; the CLI maps the tree to
exit codes, and the daemon turns it into commit statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model import LiveView, Location


class ReconcilerError(Exception):
    """Base class: the message is one line a user can act on."""


@dataclass(frozen=True, kw_only=True, order=True)
class Problem:
    """One validation finding, always tied to a file and line."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ValidationError(ReconcilerError):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems)))
        first = str(self.problems[0]) if self.problems else "invalid state repository"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class ConfigError(ReconcilerError):
    pass


class SourceError(ReconcilerError):
    pass


class BackendError(ReconcilerError):
    pass


class HistoryError(ReconcilerError):
    """The history store failed: unreachable, full, or a schema this code does not know.
    Nothing was recorded by the call that raised it."""


class TransportError(BackendError):
    pass


class HostsUnreachable(TransportError):
    """A read of live state could not reach some hosts of a target (`hosts`,
    in fleet order) and read every other one: `view` is the target's live
    view of those others (its `hosts` are the ones reached). A sync fails on
    it as on any TransportError; a rollback returns the hosts it can reach."""

    def __init__(self, message: str, *, hosts: tuple[str, ...], view: LiveView) -> None:
        super().__init__(message)
        self.hosts = hosts
        self.view = view


class ApiError(BackendError):
    """`status` is the HTTP status (0: no answer); `reason` the Kubernetes Status
    object's reason ("Conflict", "AlreadyExists", "Invalid", "Forbidden", ...; ""
    when the answer had none); `conflicts` the (field, manager) pairs of a
    server-side apply field conflict, e.g. ((".spec.replicas", "autoscaler"),),
    and () for every other error, other 409s included. A wrapper that adds
    context (a file:line) passes all three on."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        conflicts: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.conflicts = conflicts


class HealthCheckFailed(ReconcilerError):
    pass


class RolloutError(ReconcilerError):
    pass
