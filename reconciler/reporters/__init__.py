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

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from reconciler.reporters.gitnotes import NoteStore
    from reconciler.reporters.http import Client

MAX_DESCRIPTION = 140
TYPES = ("gitnotes", "github", "gitlab", "gitea")
"""The reporter types `build` makes (and the daemon config accepts); `forgejo`
is also accepted by `build`, as another name of `gitea`."""


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

    # Read-only, so frozen dataclasses (the forge reporters) satisfy the protocol too.
    @property
    def name(self) -> str: ...

    def report(self, status: CommitStatus) -> None: ...


class ReporterEntry(Protocol):
    """A `reporters:` entry as the daemon config parsed it (`daemon.config.ReporterConfig`)."""

    @property
    def type(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


def build(
    entry: Mapping[str, Any] | ReporterEntry,
    *,
    store: NoteStore | None = None,
    local: bool = False,
    client: Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> Reporter:
    """A reporter from one `reporters:` entry: the one factory the daemon and
    `reconciler plan --post-status` share.

    `entry` is a mapping (`{type: github, api_url, repo, token_env}`) or a parsed
    config entry (type + options). `store` (the mirror) is needed by gitnotes;
    `local` says the state repository is on this machine, where gitnotes pushes
    its notes unless the entry says `push: false` (the user's own clone is where
    `git log --notes=reconciler` is looked for; a remote needs write access, so
    pushing there is asked for). `client` and `environ` let tests and the CLI
    choose the HTTP retry policy and where tokens come from. Raises ConfigError.
    """
    from reconciler.errors import ConfigError

    if isinstance(entry, Mapping):
        kind, options = str(entry.get("type", "")), dict(entry)
    else:
        kind, options = str(entry.type), {"type": entry.type, **entry.options}
    if kind == "gitnotes":
        from reconciler.reporters.gitnotes import GitNotesReporter

        if store is None:
            raise ConfigError("reporter gitnotes needs the repository mirror")
        push = options.get("push")
        return GitNotesReporter(store, push=local if push is None else bool(push))
    if kind == "github":
        from reconciler.reporters import github

        return github.from_entry(options, client=client, environ=environ)
    if kind == "gitlab":
        from reconciler.reporters import gitlab

        return gitlab.from_entry(options, client=client, environ=environ)
    if kind in ("gitea", "forgejo"):
        from reconciler.reporters import gitea

        return gitea.from_entry(options, client=client, environ=environ)
    raise ConfigError(f"unknown reporter type {kind!r} ({', '.join(TYPES)})")
