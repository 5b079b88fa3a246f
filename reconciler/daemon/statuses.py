"""From engine events and results to commit statuses, through every reporter.

Why here and not in the engine: statuses are the daemon's conversation with
the forge. The engine emits neutral events; this module decides what a person
looking at the commit should read ("deploying wave 2 of 3", "web: health check
failed; rolled back", "apps/web/app.yaml:3: unknown key 'wav'").

Invariants:
- A reporter that raises never stops a deploy: the failure is logged with the
  reporter's name and counted (`reconciler_daemon_reporter_failures_total`).
- Descriptions are one line of at most 140 characters, built from the
  engine's messages and file:line problems. The engine masks secret values
  in its messages; `Publisher` masks every description again before any
  reporter sees it (a git note, a forge status), so text from elsewhere (an
  error of a fetch) is covered too (`reconciler.redact`).
- Command output quoted in a failure keeps its last `STATUS_OUTPUT_LINES` (1)
  line(s) in a status (`ending_with`); the deploy's page keeps all of it.
- `target_url` points at the status page for the commit when `public_url` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from prometheus_client import Counter

from reconciler.daemon.logging import fields
from reconciler.errors import ValidationError
from reconciler.events import Event, EventKind
from reconciler.history.text import safe_text
from reconciler.redact import STATUS_OUTPUT_LINES, cut_output
from reconciler.reporters import (
    MAX_DESCRIPTION,
    CommitStatus,
    Context,
    Reporter,
    State,
    shorten,
)

log = logging.getLogger(__name__)

REPORTER_FAILURES = Counter(
    "reconciler_daemon_reporter_failures_total",
    "Commit statuses a reporter failed to post", ["reporter"],
)
MAX_PROBLEMS = 3


def validation_description(error: ValidationError, prefix: str = "") -> str:
    """The first few problems with file:line (`prefix`: the state root's folder),
    then how many more."""
    problems = [f"{prefix}{p}" for p in error.problems[:MAX_PROBLEMS]]
    more = len(error.problems) - len(problems)
    text = "invalid: " + "; ".join(problems) if problems else f"invalid: {error}"
    return shorten(text + (f" (+{more} more)" if more > 0 else ""))


def ending_with(text: str, tail: str, output_lines: int = STATUS_OUTPUT_LINES) -> str:
    """`text` then `tail`, within 140 characters: `text` is cut, never `tail`, which
    says what a reader looks for ("rolled back", "rolling back"). Command output
    quoted in `text` keeps its last `output_lines` lines, first."""
    return shorten(cut_output(text, output_lines), MAX_DESCRIPTION - len(tail)) + tail


def wave_description(index: int, total: int, verb: str = "deploying") -> str:
    return f"{verb} wave {index} of {total}" if total else f"{verb} wave {index}"


class Publisher:
    """Sends one status to every reporter, containing their failures."""

    def __init__(self, reporters: Sequence[Reporter], public_url: str | None,
                 redact: Callable[[str], str] = lambda text: text) -> None:
        self.reporters = tuple(reporters)
        self.public_url = public_url
        self.redact = redact
        """Masks secret values (the daemon passes its `EventBus.secrets.redact`)."""

    def target_url(self, sha: str) -> str | None:
        return f"{self.public_url}/commits/{sha}" if self.public_url else None

    def publish(self, sha: str, state: State, description: str,
                context: Context = Context.DEPLOY) -> None:
        # A name from a git tree may hold a byte that is not UTF-8: every
        # provider (and a git note) gets it escaped, as the history stores it.
        status = CommitStatus.make(sha=sha, context=context, state=state,
                                   description=safe_text(self.redact(description)),
                                   target_url=self.target_url(sha))
        for reporter in self.reporters:
            try:
                reporter.report(status)
            except Exception as exc:
                REPORTER_FAILURES.labels(reporter=reporter.name).inc()
                log.warning("reporter failed", extra=fields(
                    reporter=reporter.name, sha=sha, state=state.value,
                    error=shorten(str(exc) or type(exc).__name__)))


class Progress:
    """An EventBus listener: a `pending` status as each wave of a deploy starts.

    `expect(sha, waves)` is called by the daemon before a sync with the plan's
    wave numbers, so a wave event can say "wave 2 of 3" rather than naming
    the raw wave number; the final status comes from the sync result instead.
    """

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._lock = threading.Lock()
        self._waves: dict[str, tuple[int, ...]] = {}

    def expect(self, sha: str, waves: Sequence[int]) -> None:
        with self._lock:
            self._waves[sha] = tuple(waves)

    def forget(self, sha: str) -> None:
        with self._lock:
            self._waves.pop(sha, None)

    def __call__(self, event: Event) -> None:
        with self._lock:
            waves = self._waves.get(event.revision)
        if waves is None:
            return  # not a deploy this daemon started (a CLI sync, a rollback plan)
        if event.kind is EventKind.DEPLOY_STARTED:
            self._publisher.publish(event.revision, State.PENDING,
                                    f"deploy started: reading live state ({len(waves)} waves)")
        elif event.kind is EventKind.WAVE_STARTED and event.wave is not None:
            index = waves.index(event.wave) + 1 if event.wave in waves else 0
            text = (wave_description(index, len(waves)) if index
                    else f"deploying wave {event.wave}")
            self._publisher.publish(event.revision, State.PENDING, text)
        elif event.kind is EventKind.ROLLBACK_STARTED:
            what = f"{event.app}: {event.message}" if event.app else event.message
            self._publisher.publish(event.revision, State.PENDING,
                                    ending_with(f"failed ({what}", "); rolling back"))
