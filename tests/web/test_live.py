"""The pure parts: folding events into the rollout picture, and escaping in pages."""

from __future__ import annotations

from typing import Any

from reconciler.events import Event, EventKind
from reconciler.web import pages
from reconciler.web.layout import Site
from reconciler.web.live import RolloutState, fold, layout_of

LAYOUT = layout_of([("db", "prod", 0), ("web", "fleet", 1), ("api", "fleet", 1)])


def run(*steps: tuple[EventKind, dict[str, Any]], revision: str = "new") -> RolloutState:
    state = None
    for kind, fields in steps:
        fields = {"revision": revision, **fields}
        state = fold(state, Event(kind=kind, deploy_id=7, **fields), LAYOUT)
    assert state is not None
    return state


def test_waves_and_hosts_follow_the_events() -> None:
    state = run((EventKind.DEPLOY_STARTED, {}), (EventKind.WAVE_STARTED, {"wave": 0}),
                (EventKind.WAVE_DONE, {"wave": 0, "status": "success"}),
                (EventKind.WAVE_STARTED, {"wave": 1}),
                (EventKind.BATCH_STARTED, {"wave": 1, "app": "web", "hosts": ("w1", "w2")}),
                (EventKind.BATCH_APPLIED, {"wave": 1, "app": "web", "hosts": ("w1", "w2"),
                                           "status": "success"}),
                (EventKind.HEALTH_CHECKED, {"wave": 1, "app": "web", "hosts": ("w1",),
                                            "status": "Healthy"}))
    assert state.position() == (2, 2)
    web = next(a for a in state.waves[1].apps if a.app == "web")
    assert [(h.host, h.state) for h in web.hosts] == [("w1", "healthy"), ("w2", "checking")]
    assert [a.state for a in state.waves[1].apps] == ["pending", "running"]  # api, web
    assert state.waves[0].state == "success" and state.running


def test_a_rollback_keeps_the_apps_result_and_the_deploy_finishes() -> None:
    state = run((EventKind.DEPLOY_STARTED, {}),
                (EventKind.APP_DONE, {"wave": 1, "app": "web", "status": "failure",
                                      "message": "w1: check failed"}),
                (EventKind.ROLLBACK_STARTED, {"wave": 1, "app": "web", "message": "to old"}),
                (EventKind.DEPLOY_FINISHED, {"status": "failure", "message": "rolled back"}))
    # The rollback's own steps carry the old revision: they must not read as this deploy's.
    state = fold(state, Event(kind=EventKind.APP_DONE, deploy_id=7, revision="old", wave=1,
                              app="web", status="success"))
    web = next(a for a in state.waves[1].apps if a.app == "web")
    assert web.state == "rolling back" and not state.running
    assert state.state == "failure" and state.message == "rolled back"


def test_a_new_deploy_starts_a_fresh_picture_and_unknown_waves_are_added() -> None:
    state = run((EventKind.DEPLOY_STARTED, {}), (EventKind.WAVE_STARTED, {"wave": 1}))
    other = fold(state, Event(kind=EventKind.WAVE_STARTED, deploy_id=8, revision="x", wave=5))
    assert other.deploy_id == 8 and [w.wave for w in other.waves] == [5]
    assert other.position() == (1, 1)


def test_pages_escape_every_value() -> None:
    evil = '<script>alert("x")</script>'
    state = run((EventKind.DEPLOY_STARTED, {}),
                (EventKind.APP_DONE, {"wave": 0, "app": evil, "status": "failure",
                                      "message": evil}))
    html = pages.rollout_section(state)
    assert "<script>" not in html and "&lt;script&gt;" in html
    plan = pages.plan_page({"sha": "a" * 40, "ref": evil, "state": "success",
                            "plan": {"waves": [{"wave": 0, "apps": [{"app": evil, "changes": [
                                {"resource": evil, "action": "update", "diff": evil}]}]}]}},
                           Site(repo=evil))
    assert "<script>alert" not in plan and plan.count("&lt;script&gt;") >= 4
