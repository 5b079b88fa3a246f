"""The embedded default reporter: commit statuses as git notes.

Each commit of the tracked branch gets one JSON note under
`refs/notes/reconciler` in the daemon's mirror, readable with
`git log --notes=reconciler` there (or on the remote once pushed). The note
keeps the history of states, newest last, so a reader sees how a deploy went
and not only how it ended:

    {"sha": "<commit>", "statuses": [
        {"context": "reconciler/deploy", "state": "pending",
         "description": "deploying wave 1 of 2", "target_url": null,
         "time": "2025-01-01T12:00:00Z"}, ...]}

Invariants:
- Building the new note is a pure function of the old note and the status
  (`merge_note`); an unreadable old note is replaced, never fatal.
- The list is capped (`MAX_ENTRIES`, oldest dropped) so a long-lived commit
  that drifts and heals for months keeps a small note.
- With `push: true` the notes ref is pushed back after every write (not
  forced: a diverged remote ref is an error the daemon logs and counts). A
  repository on this machine, bare or not (the user's own clone), gets the
  notes written into it directly (`Mirror.push`), so `git log
  --notes=reconciler` there shows every status; the daemon's built-in
  default reporter pushes for such a repository.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.reporters import CommitStatus

NOTES_REF = "refs/notes/reconciler"
MAX_ENTRIES = 200


class NoteStore(Protocol):
    """The part of `reconciler.source.Mirror` this reporter needs."""

    def read_note(self, sha: str, ref: str = ...) -> str | None: ...

    def write_note(self, sha: str, text: str, ref: str = ...) -> None: ...

    def push_notes(self, ref: str = ...) -> None: ...


def entry(status: CommitStatus, now: datetime) -> dict[str, Any]:
    return {
        "context": status.context.value,
        "state": status.state.value,
        "description": status.description,
        "target_url": status.target_url,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def merge_note(existing: str | None, status: CommitStatus, now: datetime) -> str:
    """The note text after appending `status` to the history in `existing`."""
    statuses: list[Any] = []
    if existing:
        try:
            old = json.loads(existing)
        except ValueError:
            old = None
        if isinstance(old, dict) and isinstance(old.get("statuses"), list):
            statuses = [s for s in old["statuses"] if isinstance(s, dict)]
    statuses.append(entry(status, now))
    note = {"sha": status.sha, "statuses": statuses[-MAX_ENTRIES:]}
    return json.dumps(note, indent=1, sort_keys=True) + "\n"


def latest(note: str | None, context: str = "reconciler/deploy") -> dict[str, Any] | None:
    """The newest status of `context` in a note, for readers (page, tests, CLI)."""
    if not note:
        return None
    try:
        statuses = json.loads(note).get("statuses", [])
    except (ValueError, AttributeError):
        return None
    mine = [s for s in statuses if isinstance(s, dict) and s.get("context") == context]
    return mine[-1] if mine else None


class GitNotesReporter:
    name = "gitnotes"

    def __init__(self, store: NoteStore, *, push: bool = False, ref: str = NOTES_REF) -> None:
        self._store = store
        self._push = push
        self._ref = ref
        # Read-modify-write of one note must not interleave between threads.
        self._lock = threading.Lock()

    def report(self, status: CommitStatus) -> None:
        with self._lock:
            old = self._store.read_note(status.sha, self._ref)
            self._store.write_note(status.sha, merge_note(old, status, datetime.now(UTC)),
                                   self._ref)
            if self._push:
                self._store.push_notes(self._ref)
