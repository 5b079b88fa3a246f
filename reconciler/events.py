"""What happened during a deploy, as one stream of immutable events.

The rollout engine emits an `Event` for every step it takes; the history, the
terminal progress printer, the commit-status reporters and the status page all
listen. Keeping them behind one fan-out means the engine never knows who
listens, and a listener that breaks can never break a deploy: `EventBus.emit`
logs a listener's exception and goes on with the next listener.

Invariants: events are frozen values, safe to hand to any thread; messages are
written by the engine from its own vocabulary, and what they quote (command
output, a backend's error text) has every value the state repo marks secret
masked by `EventBus.emit` before any listener sees it (`reconciler.redact`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from reconciler.outcomes import EventStatus
from reconciler.redact import Secrets

log = logging.getLogger(__name__)


class EventKind(str, Enum):
    DEPLOY_STARTED = "deploy_started"
    WAVE_STARTED = "wave_started"
    BATCH_STARTED = "batch_started"
    BATCH_APPLIED = "batch_applied"
    HEALTH_CHECKED = "health_checked"
    APP_DONE = "app_done"
    WAVE_DONE = "wave_done"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_DONE = "rollback_done"
    PRUNE_DONE = "prune_done"
    DEPLOY_FINISHED = "deploy_finished"


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: EventKind
    deploy_id: int
    revision: str
    wave: int | None = None
    app: str = ""
    target: str = ""
    hosts: tuple[str, ...] = ()
    status: EventStatus = ""
    """The outcome this kind of event reports (reconciler.outcomes), a HealthStatus
    for a health check, or nothing."""
    message: str = ""
    timestamp: float = field(default_factory=time.time)


NOTES = "; notes: "
"""Where a step's message turns to the backend's notes (see `with_notes`)."""
NOTES_SHOWN = 3
NOTE_LENGTH = 160


def with_notes(message: str, notes: Sequence[str]) -> str:
    """`message`, then the notes a backend returned with an apply (`ApplyResult.messages`).

    The notes say what an apply deliberately left undone (a Directory kept
    because it is not empty, a Service left running with no stop record), which
    the people watching must see. A batch of many hosts often repeats the same
    note per host, so the message keeps the first few distinct ones and counts
    the rest: it stays one readable line in the history, on the page and in a
    terminal. Backends write notes from names and counts only, never content.
    """
    distinct = list(dict.fromkeys(n.strip() for n in notes if n.strip()))
    if not distinct:
        return message
    shown = [n if len(n) <= NOTE_LENGTH else n[:NOTE_LENGTH - 3] + "..."
             for n in distinct[:NOTES_SHOWN]]
    more = len(distinct) - len(shown)
    return message + NOTES + "; ".join(shown) + (f" (+{more} more)" if more else "")


def has_notes(event: Event) -> bool:
    return NOTES in event.message


Listener = Callable[[Event], None]


class EventBus:
    """A thread-safe fan-out: every listener sees every event, in emit order per thread.

    `secrets` holds the secret values of the desired states the engine rolls out;
    every message is masked with them before it fans out, and the other edges
    (statuses, logs, the deploy's end) mask with the same holder."""

    def __init__(self, secrets: Secrets | None = None) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.secrets = secrets if secrets is not None else Secrets()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add `listener`; the returned function removes it again."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        masked = self.secrets.redact(event.message)
        if masked != event.message:
            event = replace(event, message=masked)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                # A broken page or reporter must not stop a rollout half way.
                log.exception("event listener %r failed on %s", listener, event.kind.value)
