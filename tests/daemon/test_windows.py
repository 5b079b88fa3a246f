"""Sync windows: pure arithmetic on given times, and a deploy held until one closes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.daemon import windows as win
from reconciler.daemon.service import Daemon
from reconciler.daemon.windows import next_change, window_open
from reconciler.errors import ConfigError
from reconciler.model import Location, SyncWindow
from tests.daemon.conftest import StateRepo, deploys, notes, wait_for

HERE = Location(file="reconciler.yaml", line=3)
NOON = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # a Monday


def window(schedule: str, seconds: float, kind: str = "deny",
           targets: tuple[str, ...] = ()) -> SyncWindow:
    return SyncWindow(schedule=schedule, duration=seconds, kind=kind, targets=targets,
                      location=HERE)


@pytest.mark.parametrize(("offset", "may_deploy"), [
    (-1, False), (0, True), (1799, True), (1800, False), (3599, False), (3600, True),
])
def test_a_deny_window_blocks_from_its_fire_time_for_its_duration(
    offset: int, may_deploy: bool
) -> None:
    nightly = window("0 11 * * *", 3600)  # 11:00 to 12:00 UTC
    half = window("30 12 * * *", 1800)  # 12:30 to 13:00
    now = NOON + timedelta(seconds=offset)
    assert window_open([nightly, half], "prod", now) is may_deploy


def test_allow_windows_restrict_and_deny_wins() -> None:
    weekdays = window("0 9 * * mon-fri", 8 * 3600, kind="allow", targets=("prod",))
    assert window_open([weekdays], "prod", NOON)
    assert window_open([weekdays], "laptop", NOON + timedelta(hours=10))  # not named
    assert not window_open([weekdays], "prod", NOON + timedelta(hours=10))
    assert not window_open([weekdays, window("0 12 * * *", 60)], "prod", NOON)


def test_next_change_is_when_the_deny_window_ends_or_the_allow_window_opens() -> None:
    deny = window("55 11 * * *", 600)
    assert next_change([deny], "prod", NOON) == NOON + timedelta(minutes=5)
    allow = window("0 14 * * *", 60, kind="allow")
    assert next_change([allow], "prod", NOON) == NOON + timedelta(hours=2)
    assert next_change([], "prod", NOON) is None


def test_a_bad_schedule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid cron schedule"):
        win.cron("61 * * * *")


def test_a_deploy_waits_for_the_deny_window_to_close(
    state_repo: StateRepo, daemon_factory: Callable[..., Daemon]
) -> None:
    now = datetime.now(UTC)
    if now.second > 52:  # keep the window inside the current minute
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    ends = now.replace(microsecond=0) + timedelta(seconds=3)
    duration = (ends - now.replace(second=0, microsecond=0)).total_seconds()
    sha = state_repo.commit("windowed", content="version 2\n", windows=(
        f"sync_windows:\n  - {{schedule: '{now.minute} {now.hour} * * *', "
        f"duration: {int(duration)}s, kind: deny, targets: [laptop]}}\n"))
    daemon = daemon_factory(state_repo)
    wait_for(lambda: notes(daemon, sha))
    first = notes(daemon, sha)[0]
    assert first["state"] == "pending" and "sync window" in first["description"]
    assert deploys(daemon) == []
    wait_for(lambda: deploys(daemon), timeout=10)
    started = daemon.history.deploys(limit=1)[0].started
    assert started >= ends.timestamp()
    assert started - ends.timestamp() < 1.0  # re-checked when the window ended, not polled
    wait_for(lambda: notes(daemon, sha)[-1]["state"] == "success")
    assert state_repo.web_conf() == "version 2\n"
