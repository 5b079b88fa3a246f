"""Sync windows: when a deploy to a target may start. Pure arithmetic on times.

A window (`model.SyncWindow`, declared in reconciler.yaml) is a cron schedule
plus a duration: it is open from each fire time `f` for `duration` seconds,
i.e. at `now` when some fire time `f` has `f <= now < f + duration`. The
question is answered without scanning: the first fire time at or after
`now - duration` (`Cron.next_fire`) is the only
candidate, because any later fire time is in the future and any earlier one
has already closed.

Rules, as in Argo CD: a `deny` window that is open blocks its targets; when any
`allow` window names a target, that target may deploy only while one of them is
open; deny wins over allow. A window with no targets applies to every target.

Schedules are five-field cron (`minute hour day month day_of_week`) in UTC,
parsed by `reconciler.options.parse_cron`, the parser the state-repo loader
validates them with: 0 and 7 are Sunday, and `sat-sun` wraps past Saturday.

Nothing here reads the clock: callers pass `now`, so tests and the scheduler
agree on the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from reconciler.errors import ConfigError
from reconciler.model import SyncWindow
from reconciler.options import Cron, ScheduleError, parse_cron


@lru_cache(maxsize=256)
def cron(schedule: str) -> Cron:
    """The parsed schedule; ConfigError when invalid (the loader refuses those first)."""
    try:
        return parse_cron(schedule)
    except ScheduleError as exc:
        raise ConfigError(f"invalid cron schedule {schedule!r}: {exc}") from None


def applies(window: SyncWindow, target: str) -> bool:
    return not window.targets or target in window.targets


def open_since(window: SyncWindow, now: datetime) -> datetime | None:
    """The fire time of the occurrence of `window` that is open at `now`, if any."""
    if window.duration <= 0:
        return None
    # A fire time exactly `duration` ago has just closed: start one microsecond later.
    earliest = now - timedelta(seconds=window.duration) + timedelta(microseconds=1)
    fire = cron(window.schedule).next_fire(earliest)
    if fire is None or fire > now:
        return None
    return fire


def is_open(window: SyncWindow, now: datetime) -> bool:
    return open_since(window, now) is not None


def window_open(windows: Iterable[SyncWindow], target: str, now: datetime) -> bool:
    """May a deploy to `target` start at `now`?"""
    mine = [w for w in windows if applies(w, target)]
    if any(w.kind == "deny" and is_open(w, now) for w in mine):
        return False
    allows = [w for w in mine if w.kind == "allow"]
    return not allows or any(is_open(w, now) for w in allows)


def blocked_targets(windows: Sequence[SyncWindow], targets: Iterable[str],
                    now: datetime) -> tuple[str, ...]:
    """The targets among `targets` that a window keeps from deploying at `now`."""
    return tuple(sorted(t for t in targets if not window_open(windows, t, now)))


def next_change(windows: Iterable[SyncWindow], target: str, now: datetime) -> datetime | None:
    """The earliest moment after `now` at which `window_open` for `target` may change.

    The scheduler re-checks then instead of polling: when an open deny window
    closes, or when the next allow window opens. None when nothing is scheduled.
    """
    candidates: list[datetime] = []
    for window in windows:
        if not applies(window, target) or window.duration <= 0:
            continue
        since = open_since(window, now)
        if since is not None:
            candidates.append(since + timedelta(seconds=window.duration))
        after = now + timedelta(microseconds=1)
        upcoming = cron(window.schedule).next_fire(after)
        if upcoming is not None:
            candidates.append(upcoming)
    return min(candidates) if candidates else None


def describe(windows: Iterable[SyncWindow], target: str, now: datetime) -> str:
    """Why `target` is blocked, for a log line or a pending commit status."""
    mine = [w for w in windows if applies(w, target)]
    for window in mine:
        since = open_since(window, now)
        if window.kind == "deny" and since is not None:
            until = since + timedelta(seconds=window.duration)
            return f"deny window {window.schedule!r} until {until:%H:%M:%S}Z"
    return "outside every allow window"
