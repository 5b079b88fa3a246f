"""The value grammars every option set shares: durations, cron schedules, did-you-mean.

Why one module: the state-repo loader (what `reconciler validate` runs) and the
daemon (its configuration file, its flags, its sync-window check) used to
parse these each their own way, so a value could pass one and fail the other,
or mean another day. Both now call these functions, and nothing else parses a
duration or a schedule.

Durations: a number of seconds (`90`, `1.5`, also as the string `"90"`, as a
command-line flag gives it), or one or more number+unit parts with units `ms`,
`s`, `m`, `h`, `d` (`250ms`, `30s`, `1h30m`). Never negative, never infinite;
each option sets its own minimum (most must be above zero).

Cron: five fields, `minute hour day-of-month month day-of-week`, in UTC, with
the ranges of cron(5): 0-59, 0-23, 1-31, 1-12 (or jan-dec), 0-7 where 0 and 7
are Sunday (or sun-sat). Each field is `*`, a value, a range `a-b`, either with
a step `/n`, or a comma list of those. A day-of-week range may wrap past
Saturday (`sat-sun`, `fri-mon`, `6-0`); no other field wraps. When both
day-of-month and day-of-week are restricted, a day matches if either does, as
cron(5) says. A schedule that can never fire (`0 0 31 2 *`) is refused.

Everything here is pure: no clock, no I/O.
"""

from __future__ import annotations

import calendar
import difflib
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_FORMS = "a duration like 30s, 5m, 1h30m or a number of seconds"


def parse_duration(value: object) -> float | None:
    """Seconds (>= 0) from a duration value, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _SECONDS.fullmatch(text := value.strip()):
        seconds = float(text)
    elif isinstance(value, str) and _DURATION.fullmatch(text := value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    else:
        return None
    # 1e999 and .inf would wait forever; nan compares false with everything.
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ScheduleError(ValueError):
    """A cron schedule that is not valid; the message says why."""


_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                      "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_DOW = 4
_DIGITS = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class Cron:
    """A parsed five-field schedule: the allowed values of each field."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday (7 is folded into 0)."""
    any_day: bool
    """Day of month is `*` (then only day of week restricts days)."""
    any_weekday: bool

    def day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time at or after `after` (aware; compared in UTC)."""
        start = after.astimezone(UTC)
        if start.second or start.microsecond:
            start = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        # Every valid schedule fires within 8 years (29 February skips 2100).
        for _ in range(366 * 8 + 1):
            if self.day_matches(day):
                fire = self._first_in_day(day, start if day.date() == start.date() else day)
                if fire is not None:
                    return fire
            day += timedelta(days=1)
        return None

    def _first_in_day(self, day: datetime, earliest: datetime) -> datetime | None:
        for hour in sorted(self.hours):
            if hour < earliest.hour:
                continue
            for minute in sorted(self.minutes):
                fire = day.replace(hour=hour, minute=minute)
                if fire >= earliest:
                    return fire
        return None


def parse_cron(schedule: str) -> Cron:
    """A Cron for a five-field schedule; ScheduleError says why one is not valid."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ScheduleError("a cron schedule has 5 fields (minute hour day month weekday), "
                            f"not {len(fields)}")
    values = [_field(index, text) for index, text in enumerate(fields)]
    weekdays = frozenset(v % 7 for v in values[_DOW])
    cron = Cron(minutes=values[0], hours=values[1], days=values[2], months=values[3],
                weekdays=weekdays, any_day=fields[2] == "*", any_weekday=fields[_DOW] == "*")
    if (cron.any_weekday or cron.any_day) and not _some_day_exists(cron):
        raise ScheduleError("the day of month never occurs in the months given")
    return cron


def cron_problem(schedule: str) -> str:
    """Why a schedule is not valid, or "" when it is."""
    try:
        parse_cron(schedule)
    except ScheduleError as exc:
        return str(exc)
    return ""


def _some_day_exists(cron: Cron) -> bool:
    return any(day <= calendar.monthrange(2024, month)[1]  # 2024: February has 29 days
               for month in cron.months for day in cron.days)


def _field(index: int, text: str) -> frozenset[int]:
    name, low, high, names = _FIELDS[index]
    found: set[int] = set()
    for part in text.split(","):
        values = _part(index, part)
        if values is None:
            spelled = f" or {names[0]}-{names[-1]}" if names else ""
            raise ScheduleError(f"field {index + 1} ({text!r}) is not valid; values are "
                                f"{low}-{high}{spelled} ({name})")
        found |= values
    return frozenset(found)


def _part(index: int, part: str) -> set[int] | None:
    _, low, high, _ = _FIELDS[index]
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
            return None
        step = int(step_text)
    if base == "*":
        # Days of week run 0-6 here: 7 would only repeat Sunday (and break `*/2`).
        return set(range(low, (6 if index == _DOW else high) + 1, step))
    first, dash, last = base.partition("-")
    start = _value(index, first)
    end = _value(index, last) if dash else (high if slash else start)
    if start is None or end is None:
        return None
    if end < start:
        if index != _DOW:
            return None
        # A week wraps: sat-sun is 6, 0; fri-mon is 5, 6, 0, 1.
        days = [*range(start, 7), *range(0, end + 1)]
        return set(days[::step])
    return set(range(start, end + 1, step))


def _value(index: int, text: str) -> int | None:
    _, low, high, names = _FIELDS[index]
    if text.lower() in names:
        return names.index(text.lower()) + low
    if _DIGITS.fullmatch(text) and low <= int(text) <= high:
        return int(text)
    return None
