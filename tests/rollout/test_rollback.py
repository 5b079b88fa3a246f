"""Rollback to the last good revision, and listeners that break."""

from __future__ import annotations

import logging

import pytest

from backends.base import HealthReport
from reconciler import plan as planner
from reconciler.events import Event, EventBus, EventKind
from reconciler.history import InventoryEntry
from reconciler.model import DesiredState, HealthStatus, ResourceId
from reconciler.rollout import rollback
from reconciler.rollout.batches import with_verification
from reconciler.rollout.runner import Rollout, RolloutOptions
from tests.rollout.conftest import HOSTS, Harness, app, desired


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


def _interrupted_on_h1_h2(harness: Harness, content: str) -> None:
    """What a deploy stopped in the health gate of its first batch leaves: h1 and
    h2 applied (inventory "applied", never "healthy"), h3 to h5 untouched."""
    index = ResourceId(kind="File", name="/index")
    for host in ("h1", "h2"):
        harness.backend.live[(host, index)] = {"path": "/index", "content": content}
    harness.history.set_inventory(
        InventoryEntry(target="fleet", host=h, id=index, app="web", revision="B")
        for h in ("h1", "h2"))


def _recheck(harness: Harness, state: DesiredState, verify: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A sync of `state` that re-checks `verify`, as the engine runs it after a stop."""
    steps = with_verification(planner.plan(state, harness.views(state)), state, {"web": verify})
    runner = Rollout(deploy_id=1, desired=state, backends={"fleet": harness.backend},
                     recorder=harness.history, emit=harness.emit,
                     options=RolloutOptions(sleep=lambda _s: None, fleet={"fleet": HOSTS},
                                            verify={"web": verify}))
    return runner, runner.run_waves(steps)


def test_hosts_failing_their_recheck_count_as_changed_and_return_to_last_good(
    harness: Harness,
) -> None:
    good = desired("A", app("web", {"/index": "old"}, batch=2))
    assert harness.sync(good)[1].ok
    harness.history.mark_good(["web"], "A")
    _interrupted_on_h1_h2(harness, "bad")  # B's content, Degraded wherever it lands
    bad = desired("B", app("web", {"/index": "bad"}, batch=2))
    before = len(harness.log)

    runner, result = _recheck(harness, bad, ("h1", "h2"))

    [web] = result.outcomes
    # Nothing was sent to h1 or h2 by this rollout, and it halted before h3.
    assert (web.status, web.hosts, web.rechecked) == ("failure", (), ("h1", "h2"))
    assert web.changed
    assert not [e for e in harness.log[before:] if e[0] == "apply"]
    back = _roll_back(harness, runner, result.outcomes, {"A": good})
    assert back.rolled_back and back.message == "web: success (back at A)"
    assert set(harness.contents("/index").values()) == {"old"}
    [started] = [e for e in harness.events if e.kind is EventKind.ROLLBACK_STARTED]
    assert started.hosts == ("h1", "h2")


def test_hosts_passing_their_recheck_do_not_make_an_app_changed(harness: Harness) -> None:
    good = desired("A", app("web", {"/index": "old"}, batch=2))
    assert harness.sync(good)[1].ok
    _interrupted_on_h1_h2(harness, "new")
    _, result = _recheck(harness, desired("B", app("web", {"/index": "new"}, batch=2)),
                         ("h1", "h2"))
    [web] = result.outcomes
    assert web.status == "success" and web.hosts == ("h3", "h4", "h5")
    assert web.rechecked == ()


def test_a_new_app_failing_its_recheck_is_left_as_is_and_not_called_rolled_back(
    harness: Harness,
) -> None:
    _interrupted_on_h1_h2(harness, "bad")
    state = desired("B", app("web", {"/index": "bad"}, batch=2))
    runner, result = _recheck(harness, state, ("h1", "h2"))
    assert result.outcomes[0].rechecked == ("h1", "h2")

    back = _roll_back(harness, runner, result.outcomes, {})

    # The interrupted deploy may have updated what existed before: delete nothing.
    assert [(a.app, a.status) for a in back.apps] == [("web", "skipped")]
    assert not back.rolled_back and not back.failed
    assert back.message == ("web: skipped (new app: left as is on re-checked h1, h2 "
                            "(what an interrupted deploy created is unknown))")
    assert harness.contents("/index") == {"h1": "bad", "h2": "bad"}
    assert not [e for e in harness.log if e[0] == "apply"]
