"""The rollout engine against in-memory backends: ordering, batches, halts, prune."""

from __future__ import annotations

from dataclasses import replace

from reconciler import plan as planner
from reconciler.events import Event, EventKind
from reconciler.model import LiveResource, ResourceId
from reconciler.rollout.runner import RolloutResult
from tests.rollout.conftest import Harness, app, desired


def _index(events: list[Event], kind: EventKind, name: str, last: bool = False) -> int:
    found = [i for i, e in enumerate(events) if e.kind is kind and e.app == name]
    assert found, f"no {kind.value} for {name}"
    return found[-1] if last else found[0]


def test_a_wave_starts_only_after_the_previous_wave_is_healthy(harness: Harness) -> None:
    harness.backend.progressing["db"] = 3  # db answers Progressing three times first
    state = desired("r1", app("db", {"/db": "x"}, wave=0), app("web", {"/web": "y"}, wave=1))
    _, result = harness.sync(state)
    assert result.ok
    last_db_health = _index(harness.events, EventKind.HEALTH_CHECKED, "db", last=True)
    first_web = _index(harness.events, EventKind.BATCH_STARTED, "web")
    assert last_db_health < first_web
    db_probes = [entry for entry in harness.log if entry[:2] == ("health", "db")]
    first_web_apply = next(i for i, e in enumerate(harness.log) if e[:2] == ("apply", "web"))
    assert len(db_probes) == 4
    assert harness.log.index(db_probes[-1]) < first_web_apply
    kinds = [e.kind for e in harness.events if e.kind in (EventKind.WAVE_STARTED,
                                                          EventKind.WAVE_DONE)]
    assert kinds == [EventKind.WAVE_STARTED, EventKind.WAVE_DONE] * 2


def test_depends_on_inside_a_wave_waits_for_the_dependency_to_be_healthy(
    harness: Harness,
) -> None:
    harness.backend.progressing["migrate"] = 2
    state = desired(
        "r1",
        app("api", {"/api": "a"}, depends_on=["migrate"]),
        app("migrate", {"/migrate": "m"}),
        app("other", {"/other": "o"}),
    )
    _, result = harness.sync(state)
    assert result.ok
    migrate_healthy = _index(harness.events, EventKind.APP_DONE, "migrate")
    api_started = _index(harness.events, EventKind.BATCH_STARTED, "api")
    assert migrate_healthy < api_started


def test_a_failed_dependency_skips_its_dependents(harness: Harness) -> None:
    state = desired("r1", app("api", {"/api": "a"}, depends_on=["migrate"]),
                    app("migrate", {"/migrate": "bad"}))
    _, result = harness.sync(state)
    statuses = {o.app: o.status for o in result.outcomes}
    assert statuses == {"migrate": "failure", "api": "skipped"}
    assert not any(e[:2] == ("apply", "api") for e in harness.log)


def test_batches_of_two_over_five_hosts(harness: Harness) -> None:
    state = desired("r1", app("web", {"/index": "v1"}, batch=2))
    _, result = harness.sync(state)
    assert result.ok
    batches = [e.hosts for e in harness.events if e.kind is EventKind.BATCH_STARTED]
    assert batches == [("h1", "h2"), ("h3", "h4"), ("h5",)]
    probes = [e[2] for e in harness.log if e[0] == "health"]
    assert probes == [("h1", "h2"), ("h3", "h4"), ("h5",)]


def test_a_health_failure_halts_the_rollout_and_later_waves(harness: Harness) -> None:
    for host in ("h1", "h2", "h4", "h5"):
        harness.backend.live[(host, ResourceId(kind="File", name="/index"))] = {
            "path": "/index", "content": "old"}
    harness.backend.live[("h3", ResourceId(kind="File", name="/index"))] = {
        "path": "/index", "content": "old"}
    # h3 turns bad only with the new content: make the new content bad on h3 alone
    state = desired("r2", app("web", {"/index": "new"}, batch=2),
                    app("later", {"/later": "x"}, wave=1))
    original = harness.backend.apply

    def apply_breaking_h3(a, changes):  # type: ignore[no-untyped-def]
        result = original(a, changes)
        key = ("h3", ResourceId(kind="File", name="/index"))
        if key in harness.backend.live and a.name == "web":
            harness.backend.live[key] = {"path": "/index", "content": "bad"}
        return result

    harness.backend.apply = apply_breaking_h3  # type: ignore[method-assign]
    _, result = harness.sync(state)
    assert not result.ok and result.halted
    web = result.outcomes[0]
    assert (web.status, web.failed_hosts, web.hosts) == ("failure", ("h3",), ("h1", "h2", "h3",
                                                                               "h4"))
    assert harness.contents("/index")["h5"] == "old"
    assert not any(e[:2] == ("apply", "later") for e in harness.log)
    assert not any(e.kind is EventKind.WAVE_STARTED and e.wave == 1 for e in harness.events)


def test_max_failures_tolerates_that_many_hosts(harness: Harness) -> None:
    state = desired("r1", app("web", {"/index": "v1"}, batch=2, max_failures=1))
    original = harness.backend.health

    def health_failing_h3(a, hosts):  # type: ignore[no-untyped-def]
        report = original(a, hosts)
        if "h3" in hosts:
            from backends.base import HealthReport
            from reconciler.model import HealthStatus
            statuses = dict(report.hosts)
            statuses["h3"] = HealthStatus.DEGRADED
            return HealthReport(status=HealthStatus.DEGRADED, hosts=statuses)
        return report

    harness.backend.health = health_failing_h3  # type: ignore[method-assign]
    _, tolerant = harness.sync(state)
    assert tolerant.ok and tolerant.outcomes[0].failed_hosts == ("h3",)
    assert harness.contents("/index")["h5"] == "v1"

    strict = desired("r2", app("web", {"/index": "v2"}, batch=2, max_failures=0))
    _, result = harness.sync(strict)
    assert not result.ok
    assert harness.contents("/index")["h5"] == "v1"


def test_prune_runs_after_every_wave_in_reverse_wave_order(harness: Harness) -> None:
    for host in ("h1", "h2"):
        for name, owner in (("/old-db", "db"), ("/old-web", "web")):
            harness.backend.live[(host, ResourceId(kind="File", name=name))] = {"content": "x"}
            harness.history.set_inventory([_entry(host, name, owner)])
    state = desired("r1", app("db", {"/db": "x"}, wave=0), app("web", {"/web": "y"}, wave=1))
    runner = harness.rollout(state)
    steps = planner.plan(state, harness.views(state))
    assert [a.app for a in steps.prune] == ["web", "db"]
    waves: RolloutResult = runner.run_waves(steps)
    pruned = runner.run_prune(steps)
    assert waves.ok and pruned.ok
    kinds = [(e.kind, e.app) for e in harness.events
             if e.kind in (EventKind.WAVE_DONE, EventKind.PRUNE_DONE)]
    assert kinds == [(EventKind.WAVE_DONE, ""), (EventKind.WAVE_DONE, ""),
                     (EventKind.PRUNE_DONE, "web"), (EventKind.PRUNE_DONE, "db")]
    assert not any(rid.name.startswith("/old") for _, rid in harness.backend.live)
    owned = harness.history.inventory("fleet")
    assert owned and not any(rid.name.startswith("/old") for _, rid in owned)


def test_inventory_is_written_before_apply_and_marked_healthy_after(harness: Harness) -> None:
    seen: list[str] = []
    original = harness.backend.apply

    def apply_checking_intent(a, changes):  # type: ignore[no-untyped-def]
        seen.extend(e.state for e in harness.history.inventory_entries("fleet"))
        return original(a, changes)

    harness.backend.apply = apply_checking_intent  # type: ignore[method-assign]
    _, result = harness.sync(desired("r1", app("web", {"/index": "v1"})))
    assert result.ok
    assert seen == ["intent"] * 5
    entries = harness.history.inventory_entries("fleet")
    assert {(e.state, e.revision, e.app) for e in entries} == {("healthy", "r1", "web")}


def test_no_changes_means_no_backend_calls(harness: Harness) -> None:
    state = desired("r1", app("web", {"/index": "v1"}))
    harness.sync(state)
    calls = len(harness.log)
    _, again = harness.sync(state)
    assert again.ok and again.outcomes == ()
    assert len(harness.log) == calls


def _entry(host: str, name: str, owner: str):  # type: ignore[no-untyped-def]
    from reconciler.history import InventoryEntry

    return InventoryEntry(target="fleet", host=host, id=ResourceId(kind="File", name=name),
                          app=owner, wave=0, revision="r0")


def test_live_resource_owner_comes_from_the_inventory(harness: Harness) -> None:
    harness.backend.live[("h1", ResourceId(kind="File", name="/x"))] = {"content": "x"}
    harness.history.set_inventory([_entry("h1", "/x", "web")])
    view = harness.views(desired("r1"))["fleet"]
    assert view.live[("h1", ResourceId(kind="File", name="/x"))] == LiveResource(
        id=ResourceId(kind="File", name="/x"), host="h1", state={"content": "x"},
        owner_app="web")


def test_an_unplannable_app_fails_before_any_write_and_halts_later_waves(
    harness: Harness,
) -> None:
    state = desired("r1", app("db", {"/db": "x"}, wave=0), app("web", {"/web": "y"}, wave=1),
                    app("api", {"/api": "z"}, wave=0))
    views = harness.views(state)
    why = "apps/db/x.yaml:3: PATCH ... 422 field is immutable"
    views["fleet"] = replace(views["fleet"], errors={"db": why})
    steps = planner.plan(state, views)
    assert steps.errors() == [("db", why)] and not steps.empty
    result = harness.rollout(state).run_waves(steps)
    statuses = {o.app: o.status for o in result.outcomes}
    assert statuses["db"] == "failure" and "web" not in statuses
    assert next(o for o in result.outcomes if o.app == "db").message == why
    assert not [e for e in harness.log if e[:2] in (("apply", "db"), ("apply", "web"))]
