"""Faults inside a rollout: a backend that raises something unexpected, an interrupt."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from backends.base import HealthReport
from reconciler.model import App
from reconciler.rollout import rollback
from reconciler.rollout import runner as runner_module
from tests.rollout.conftest import Harness, app, desired

SECRET = "hunter2-do-not-print"


def _health_raises_after_apply(harness: Harness) -> None:
    """A backend bug: its health probe raises a plain exception that quotes a value."""

    def health(a: App, hosts: Sequence[str]) -> HealthReport:
        raise ValueError(f"cannot parse {SECRET!r}")

    harness.backend.health = health  # type: ignore[method-assign]


def test_an_app_whose_backend_crashed_after_applying_is_still_rolled_back(
    harness: Harness,
) -> None:
    good = desired("A", app("web", {"/index": "old"}, batch=5))
    assert harness.sync(good)[1].ok
    harness.history.mark_good(["web"], "A")
    _health_raises_after_apply(harness)
    runner, result = harness.sync(desired("B", app("web", {"/index": "new"}, batch=5)))
    assert not result.ok
    web = result.outcomes[0]
    # The changes reached every host before the probe crashed: the app changed.
    assert web.status == "failure" and web.hosts == ("h1", "h2", "h3", "h4", "h5")
    assert [o.app for o in rollback.candidates(result.outcomes, runner.desired)] == ["web"]


def test_an_unexpected_error_never_puts_its_text_in_events_or_history(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    _health_raises_after_apply(harness)
    with caplog.at_level(logging.DEBUG):
        _, result = harness.sync(desired("B", app("web", {"/index": "new"})))
    assert not result.ok
    assert "ValueError" in result.message
    assert SECRET not in result.message
    assert not any(SECRET in e.message for e in harness.events)
    record = harness.history.deploy(1)
    assert record is not None and not any(SECRET in a.error for a in record.apps)
    assert SECRET not in caplog.text
    assert "ValueError" in caplog.text  # where it happened is still logged


def test_an_interrupt_halts_the_apps_still_running(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_applied = threading.Event()
    original_apply = harness.backend.apply

    def apply(a, changes):  # type: ignore[no-untyped-def]
        result = original_apply(a, changes)
        first_applied.set()
        return result

    harness.backend.apply = apply  # type: ignore[method-assign]
    real_wait = runner_module.wait

    def interrupted_wait(*args, **kwargs):  # type: ignore[no-untyped-def]
        first_applied.wait(5)
        raise KeyboardInterrupt  # Ctrl-C while the main thread waits on the pool

    monkeypatch.setattr(runner_module, "wait", interrupted_wait)
    state = desired("r1", app("web", {"/index": "v1"}, batch=1))
    with pytest.raises(KeyboardInterrupt):
        harness.sync(state)
    monkeypatch.setattr(runner_module, "wait", real_wait)
    applied = [e for e in harness.log if e[0] == "apply"]
    assert len(applied) < 5, "an interrupted rollout went on through every batch"
