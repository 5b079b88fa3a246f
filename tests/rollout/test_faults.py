"""Faults inside a rollout: an interrupt."""

from __future__ import annotations

import threading

import pytest

from reconciler.rollout import runner as runner_module
from tests.rollout.conftest import Harness, app, desired


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
