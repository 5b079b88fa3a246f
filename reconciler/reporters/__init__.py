"""Commit-status reporters: how the outside world learns what a deploy did.

A reporter turns one `CommitStatus` into a mark on a commit: a git note
(`gitnotes`, the embedded default), or a commit status on GitHub, GitLab or
Gitea (added by their own modules). The daemon calls every configured reporter
for every status; a reporter that raises is logged and counted by the caller,
and never stops a deploy.

Invariants:
- A status is a frozen value whose description fits GitHub's 140 characters
  (`CommitStatus.make` shortens it) and never carries a secret: callers build
  descriptions from the engine's own messages.
- Contexts and states are the closed vocabularies of DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

MAX_DESCRIPTION = 140


class Context(str, Enum):
    DEPLOY = "reconciler/deploy"
    PLAN = "reconciler/plan"


class State(str, Enum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class CommitStatus:
    sha: str
    context: Context
    state: State
    description: str
    target_url: str | None = None

    @classmethod
    def make(cls, *, sha: str, context: Context, state: State, description: str,
             target_url: str | None = None) -> CommitStatus:
        """A status with the description on one line and cut to 140 characters."""
        return cls(sha=sha, context=context, state=state,
                   description=shorten(description), target_url=target_url)


def shorten(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """One line of at most `limit` characters, ending in an ellipsis when cut."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class Reporter(Protocol):
    """Posts commit statuses somewhere. May raise; the caller contains failures."""

    name: str

    def report(self, status: CommitStatus) -> None: ...
