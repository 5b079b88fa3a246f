"""Live progress of a deploy in a terminal, or plain log lines when not a TTY.

An `Event` listener. On a terminal, steps inside a batch (started, applied,
health checked) rewrite one status line in place, and only lasting facts (a
wave started or finished, an app done, a rollback, the result, and a batch
whose backend returned notes) stay on screen.
Anywhere else (CI logs, pipes) every event is one timestamped line, so a log
reads the same as the history. Events arrive from the rollout's worker
threads: writes are serialised by a lock. Nothing here may raise into a deploy,
and the bus would swallow it anyway.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import TextIO

from reconciler.events import Event, EventKind, has_notes

_TRANSIENT = {EventKind.BATCH_STARTED, EventKind.BATCH_APPLIED, EventKind.HEALTH_CHECKED}
_CLEAR = "\r\x1b[K"


def _hosts(hosts: tuple[str, ...], limit: int = 4) -> str:
    shown = " ".join(h for h in hosts[:limit] if h)
    more = len(hosts) - limit
    return shown + (f" +{more}" if more > 0 else "")


def describe(event: Event) -> str:
    """One line for one event. Pure."""
    k, e = EventKind, event
    where = f"{e.app}@{e.target}" if e.target else e.app
    hosts = _hosts(e.hosts)
    on = f" [{hosts}]" if hosts else ""
    note = f": {e.message}" if e.message else ""
    lines = {
        k.DEPLOY_STARTED: f"deploy #{e.deploy_id} of {e.revision[:12]} started",
        k.WAVE_STARTED: f"wave {e.wave} started",
        k.BATCH_STARTED: f"  {where}{on} applying ({e.message})",
        k.BATCH_APPLIED: f"  {where}{on} applied {e.status}{note}",
        k.HEALTH_CHECKED: f"  {where}{on} health {e.status}{note}",
        k.APP_DONE: f"  {where} {e.status}{note}",
        k.WAVE_DONE: f"wave {e.wave} {e.status}",
        k.ROLLBACK_STARTED: f"rollback of {where} started{note}",
        k.ROLLBACK_DONE: f"rollback of {where} {e.status}{note}",
        k.PRUNE_DONE: f"prune {where}{on} {e.status}{note}",
        k.DEPLOY_FINISHED: f"deploy #{e.deploy_id} of {e.revision[:12]} {e.status}{note}",
    }
    return lines[e.kind]


class Progress:
    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._status_shown = False

    def __call__(self, event: Event) -> None:
        line = describe(event)
        with self._lock:
            if not self.tty:
                stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
                self.stream.write(f"{stamp} {line}\n")
            # A batch's notes (a kept Directory, a Service left running) may ask
            # for a human's action: such a line stays on screen.
            elif event.kind in _TRANSIENT and not has_notes(event):
                width = max(20, shutil.get_terminal_size().columns - 1)
                self.stream.write(_CLEAR + line[:width])
                self._status_shown = True
            else:
                self.stream.write(_CLEAR + line + "\n")
                self._status_shown = False
            self.stream.flush()

    def close(self) -> None:
        """Clear a status line left on the terminal."""
        with self._lock:
            if self.tty and self._status_shown:
                self.stream.write(_CLEAR)
                self.stream.flush()
                self._status_shown = False
