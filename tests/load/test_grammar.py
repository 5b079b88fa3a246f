"""The shared value grammars (reconciler.options): cron arithmetic and durations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.options import ScheduleError, did_you_mean, parse_cron, parse_duration

MONDAY = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "after", "fire"), [
    ("*/15 * * * *", MONDAY.replace(minute=1), MONDAY.replace(minute=15)),
    ("*/15 * * * *", MONDAY, MONDAY),
    # A fire time is a whole minute: a moment past it waits for the next one.
    ("0 12 * * *", MONDAY.replace(microsecond=1), datetime(2025, 3, 4, 12, 0, tzinfo=UTC)),
    ("0 0 * * 0", MONDAY, datetime(2025, 3, 9, tzinfo=UTC)),
    ("0 0 * * 7", MONDAY, datetime(2025, 3, 9, tzinfo=UTC)),
    ("30 22 * * sat-sun", MONDAY, datetime(2025, 3, 8, 22, 30, tzinfo=UTC)),
    ("0 0 29 2 *", MONDAY, datetime(2028, 2, 29, tzinfo=UTC)),
    # Day of month and day of week both restricted: either matches (cron(5)).
    ("0 0 15 * fri", MONDAY, datetime(2025, 3, 7, tzinfo=UTC)),
    ("0 0 5 * fri", MONDAY, datetime(2025, 3, 5, tzinfo=UTC)),
    ("0 9 * dec *", MONDAY, datetime(2025, 12, 1, 9, 0, tzinfo=UTC)),
    ("10/20 * * * *", MONDAY, MONDAY.replace(minute=10)),
    ("0 8-10/2 * * *", MONDAY, datetime(2025, 3, 4, 8, 0, tzinfo=UTC)),
])
def test_next_fire(schedule: str, after: datetime, fire: datetime) -> None:
    assert parse_cron(schedule).next_fire(after) == fire


@pytest.mark.parametrize(("schedule", "message"), [
    ("0 25 * * *", "field 2 ('25') is not valid; values are 0-23 (hour)"),
    ("0 0 * * 8", "values are 0-7 or sun-sat (day of week)"),
    ("0 22-2 * * *", "field 2 ('22-2') is not valid"),
    ("0 0 * 13 *", "values are 1-12 or jan-dec (month)"),
    ("0 0 31 2 *", "the day of month never occurs in the months given"),
    ("0 0 31 4,6 *", "never occurs"),
    ("*/0 * * * *", "field 1 ('*/0') is not valid"),
    ("0 0 * * ²", "field 5"),
    ("0 0 * *", "a cron schedule has 5 fields"),
])
def test_invalid_schedules_say_why(schedule: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron(schedule)
    assert message in str(caught.value)


def test_durations_and_suggestions() -> None:
    assert parse_duration("1h30m") == parse_duration(5400) == parse_duration("5400") == 5400
    assert parse_duration(" 2m ") == 120 and parse_duration(0) == 0
    assert [parse_duration(v) for v in (-1, "1e999", float("nan"), True, "3 s", None)] == [
        None] * 6
    assert did_you_mean("shedule", ["schedule", "duration"]) == " (did you mean 'schedule'?)"
    assert did_you_mean("zzz", ["schedule"]) == ""
