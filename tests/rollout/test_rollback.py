"""Rollback to the last good revision, and listeners that break."""

from __future__ import annotations

import logging

import pytest

from backends.base import HealthReport
from reconciler.events import Event, EventBus, EventKind
from reconciler.model import DesiredState, HealthStatus, ResourceId
from reconciler.rollout import rollback
from reconciler.rollout.runner import Rollout
from tests.rollout.conftest import Harness, app, desired


def _break_h3(harness: Harness) -> None:
    """From now on, the new release's content turns bad on h3 once applied."""
    original = harness.backend.apply

    def apply(a, changes):  # type: ignore[no-untyped-def]
        result = original(a, changes)
        key = ("h3", ResourceId(kind="File", name="/index"))
        if harness.backend.live.get(key, {}).get("content") == "new":
            harness.backend.live[key] = {"path": "/index", "content": "bad"}
        return result

    harness.backend.apply = apply  # type: ignore[method-assign]


def _roll_back(harness: Harness, runner: Rollout, outcomes, revisions):  # type: ignore[no-untyped-def]
    return rollback.roll_back(
        runner, outcomes,
        last_good=harness.history.last_good,
        load_revision=revisions.__getitem__,
        read_live=lambda state, targets: harness.views(state),
        make_rollout=harness.rollout,
    )


def test_failure_on_host_3_leaves_host_5_and_rolls_back_hosts_1_to_4(harness: Harness) -> None:
    good = desired("A", app("web", {"/index": "old"}, batch=2))
    assert harness.sync(good)[1].ok
    harness.history.mark_good(["web"], "A")
    _break_h3(harness)
    bad = desired("B", app("web", {"/index": "new"}, batch=2))
    runner, result = harness.sync(bad)
    assert not result.ok
    assert harness.contents("/index") == {"h1": "new", "h2": "new", "h3": "bad", "h4": "new",
                                          "h5": "old"}
    applied_before = len([e for e in harness.log if e[0] == "apply" and e[2] == "h5"])
    back = _roll_back(harness, runner, result.outcomes, {"A": good})
    assert back.ok and back.rolled_back
    assert set(harness.contents("/index").values()) == {"old"}
    assert len([e for e in harness.log if e[0] == "apply" and e[2] == "h5"]) == applied_before
    rolled = [e for e in harness.events if e.kind is EventKind.ROLLBACK_DONE]
    assert [(e.app, e.status) for e in rolled] == [("web", "success")]
    record = harness.history.deploy(1)
    assert record is not None
    assert [a.rollback for a in record.apps if a.app == "web"] == ["success: back at A"]


def test_a_new_app_is_rolled_back_by_deleting_only_what_this_rollout_created(
    harness: Harness,
) -> None:
    # /shared existed on h1 before, not created by us: an update can only be left.
    shared = ("h1", ResourceId(kind="File", name="/shared"))
    harness.backend.live[shared] = {"path": "/shared", "content": "theirs"}
    _break_h3(harness)
    state = desired("B", app("web", {"/index": "new", "/shared": "ours"}, batch=2))
    runner, result = harness.sync(state)
    assert not result.ok
    web = result.outcomes[0]
    assert ("h3", ResourceId(kind="File", name="/index")) in web.created
    assert shared not in web.created
    back = _roll_back(harness, runner, result.outcomes, {})
    assert [(a.app, a.status) for a in back.apps] == [("web", "success")]
    assert back.rolled_back and "removed 7 object(s)" in back.message
    assert harness.contents("/index") == {}
    assert harness.contents("/shared") == {"h1": "ours"}
    deleted = [e for e in harness.log if e[0] == "apply" and e[4] == "delete"]
    assert {e[2] for e in deleted} == {"h1", "h2", "h3", "h4"}  # h5 was never touched
    assert {(h, rid.name) for h, rid in harness.history.inventory("fleet")} == {("h1", "/shared")}


def test_a_rollback_that_fails_again_says_so_and_is_tried_once(harness: Harness) -> None:
    good = desired("A", app("web", {"/index": "old"}, batch=2))
    assert harness.sync(good)[1].ok
    harness.history.mark_good(["web"], "A")
    original = harness.backend.health

    def h3_stays_broken(a, hosts):  # type: ignore[no-untyped-def]
        report = original(a, hosts)
        if "h3" not in hosts:
            return report
        return HealthReport(status=HealthStatus.DEGRADED, message="h3 is down",
                            hosts={**report.hosts, "h3": HealthStatus.DEGRADED})

    harness.backend.health = h3_stays_broken  # type: ignore[method-assign]
    runner, result = harness.sync(desired("B", app("web", {"/index": "new"}, batch=2)))
    assert not result.ok
    back = _roll_back(harness, runner, result.outcomes, {"A": good})
    assert not back.ok and back.failed and not back.rolled_back
    assert back.message.startswith("web: failure (web: 1 host(s) failed")
    done = [e for e in harness.events if e.kind is EventKind.ROLLBACK_DONE]
    assert [(e.app, e.status) for e in done] == [("web", "failure")]
    assert [e.kind for e in harness.events].count(EventKind.ROLLBACK_STARTED) == 1


def test_rollback_goes_in_reverse_wave_order() -> None:
    from reconciler.rollout.runner import AppOutcome

    state = desired("B", app("a", {}, wave=0), app("b", {}, wave=2), app("c", {}, wave=1))
    outcomes = [AppOutcome(app=n, target="fleet", wave=w, status="success", hosts=("h1",))
                for n, w in (("a", 0), ("b", 2), ("c", 1))]
    outcomes.append(AppOutcome(app="untouched", target="fleet", wave=3, status="skipped"))
    assert [o.app for o in rollback.candidates(outcomes, state)] == ["b", "c", "a"]


def test_a_listener_that_raises_never_stops_a_deploy(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener is broken")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    state: DesiredState = desired("r1", app("web", {"/index": "v1"}, batch=2))
    runner = Rollout(deploy_id=1, desired=state, backends={"fleet": harness.backend},
                     recorder=harness.history, emit=bus.emit,
                     options=harness.rollout(state).options)
    from reconciler import plan as planner

    with caplog.at_level(logging.ERROR, logger="reconciler.events"):
        result = runner.run_waves(planner.plan(state, harness.views(state)))
    assert result.ok
    assert set(harness.contents("/index").values()) == {"v1"}
    assert [e.kind for e in seen].count(EventKind.BATCH_APPLIED) == 3
    assert "listener" in caplog.text and "failed" in caplog.text


def test_unsubscribed_listeners_hear_nothing() -> None:
    bus = EventBus()
    seen: list[Event] = []
    stop = bus.subscribe(seen.append)
    bus.emit(Event(kind=EventKind.DEPLOY_STARTED, deploy_id=1, revision="r"))
    stop()
    bus.emit(Event(kind=EventKind.DEPLOY_FINISHED, deploy_id=1, revision="r"))
    assert [e.kind for e in seen] == [EventKind.DEPLOY_STARTED]
