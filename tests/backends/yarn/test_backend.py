"""The YARN backend against a real HTTP server that plays the YARN Services API."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backends.base import Backend, Inventory
from reconciler.errors import BackendError
from reconciler.model import Action, App, Change, HealthStatus, ResourceId
from tests.backends.yarn.helpers import app_of, changes, inventory_of, service_spec
from tests.support.yarn_server import YarnServer

MakeBackend = Callable[..., Backend]
SVC = "/app/v1/services"


def sync(backend: Backend, app: App, inventory: Inventory | None = None) -> list[Change]:
    view = backend.read_live(app.resources, inventory or {})
    todo = changes(view, app)
    backend.apply(app, todo)
    return todo


def health_after(backend: Backend, app: App, polls: int = 10) -> HealthStatus:
    """Poll like the rollout engine's gate does, until Healthy or out of polls."""
    status = HealthStatus.UNKNOWN
    for _ in range(polls):
        status = backend.health(app, [""]).status
        if status == HealthStatus.HEALTHY:
            break
    return status


def deployed(backend: Backend, server: YarnServer, app: App) -> None:
    sync(backend, app)
    for r in app.resources:
        server.settle(r.id.name)
    server.reset()


def test_create_posts_the_spec_and_the_service_becomes_healthy(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    app = app_of(service_spec(count=2))

    todo = sync(backend, app)

    assert [c.action for c in todo] == [Action.CREATE]
    assert yarn_server.writes() == [("POST", SVC)]
    assert backend.health(app, [""]).status == HealthStatus.PROGRESSING
    assert health_after(backend, app) == HealthStatus.HEALTHY
    live = yarn_server.service("sleeper")
    assert live is not None
    ready = [c for c in live["components"][0]["containers"] if c["state"] == "READY"]
    assert len(ready) == 2
    assert set(yarn_server.users) == {"deploy"}


def test_noop_reconcile_makes_only_get_requests(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    # Server defaults and global values must not look like drift: memory as a
    # number, no artifact type, the resource and configuration at service level.
    body = {
        "name": "web",
        "version": "2",
        "artifact": {"id": "nginx:1.25"},
        "resource": {"cpus": 1, "memory": 512},
        "configuration": {"env": {"MODE": "prod"}},
        "components": [{"name": "web", "number_of_containers": 1, "launch_command": "run"}],
    }
    app = app_of(body)
    deployed(backend, yarn_server, app)

    view = backend.read_live(app.resources, {})
    todo = changes(view, app)
    result = backend.apply(app, todo)
    report = backend.health(app, [""])

    assert todo == []
    assert result.applied == 0
    assert report.status == HealthStatus.HEALTHY
    assert yarn_server.writes() == []
    assert yarn_server.count("GET") >= 2


def test_count_change_flexes_the_component_only(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    deployed(backend, yarn_server, app_of(service_spec(count=2)))
    app = app_of(service_spec(count=3))

    todo = sync(backend, app)

    assert [c.action for c in todo] == [Action.UPDATE]
    assert yarn_server.writes() == [("PUT", f"{SVC}/sleeper/components/sleeper")]
    assert yarn_server.settle("sleeper") == "STABLE"
    live = yarn_server.service("sleeper")
    assert live is not None and len(live["components"][0]["containers"]) == 3
    assert changes(backend.read_live(app.resources, {}), app) == []


def test_new_version_is_upgraded_with_auto_finalize_then_per_component(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    deployed(backend, yarn_server, app_of(service_spec(version="1.0.0")))
    yarn_server.auto_advance = False  # hold the upgrade where the test can look at it
    app = app_of(service_spec(version="1.0.1", command="sleep 1200000"))

    sync(backend, app)

    assert yarn_server.writes() == [
        ("PUT", f"{SVC}/sleeper"),
        ("PUT", f"{SVC}/sleeper/components/sleeper"),
    ]
    live = yarn_server.service("sleeper")
    assert live is not None and live["state"] == "UPGRADING_AUTO_FINALIZE"
    assert {c["state"] for c in live["components"][0]["containers"]} == {"UPGRADING"}
    assert backend.health(app, [""]).status == HealthStatus.PROGRESSING
    assert yarn_server.advance("sleeper") == "STABLE"
    assert backend.health(app, [""]).status == HealthStatus.HEALTHY
    assert changes(backend.read_live(app.resources, {}), app) == []


def test_count_and_version_change_flexes_waits_for_stable_then_upgrades(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    deployed(backend, yarn_server, app_of(service_spec(version="1", count=1)))
    app = app_of(service_spec(version="2", count=2, command="sleep 5"))

    sync(backend, app)

    writes = yarn_server.writes()
    assert writes == [
        ("PUT", f"{SVC}/sleeper/components/sleeper"),
        ("PUT", f"{SVC}/sleeper"),
        ("PUT", f"{SVC}/sleeper/components/sleeper"),
    ]
    assert health_after(backend, app) == HealthStatus.HEALTHY
    assert changes(backend.read_live(app.resources, {}), app) == []


def test_spec_change_without_new_version_is_refused_before_any_write(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    deployed(backend, yarn_server, app_of(service_spec(version="1.0.0")))
    app = app_of(service_spec(version="1.0.0", command="sleep 1"))

    with pytest.raises(BackendError, match=r"service sleeper: .*version"):
        sync(backend, app)
    assert yarn_server.writes() == []


def test_stop_and_start_follow_the_declared_state(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    deployed(backend, yarn_server, app_of(service_spec()))
    stopped = app_of(service_spec(state="STOPPED"))

    sync(backend, stopped)

    assert yarn_server.writes() == [("PUT", f"{SVC}/sleeper")]
    assert backend.health(stopped, [""]).status == HealthStatus.SUSPENDED
    assert changes(backend.read_live(stopped.resources, {}), stopped) == []

    yarn_server.reset()
    running = app_of(service_spec())
    sync(backend, running)

    assert yarn_server.writes() == [("PUT", f"{SVC}/sleeper")]
    assert health_after(backend, running) == HealthStatus.HEALTHY


def test_prune_deletes_only_owned_services(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    yarn_server.seed(service_spec("old"))
    yarn_server.seed(service_spec("foreign"))
    app = app_of(service_spec("new"))

    todo = sync(backend, app, inventory_of(["old"]))

    assert sorted((c.action, c.id.name) for c in todo) == [
        (Action.CREATE, "new"),
        (Action.DELETE, "old"),
    ]
    assert yarn_server.service("old") is None
    assert yarn_server.service("foreign") is not None
    assert not [p for _, p in yarn_server.requests if "foreign" in p]


def test_delete_of_a_service_outside_the_inventory_is_refused(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    yarn_server.seed(service_spec("foreign"))
    app = app_of(service_spec("mine"))
    backend.read_live(app.resources, inventory_of(["mine"]))
    delete = Change(
        id=ResourceId(kind="Service", name="foreign"),
        app=app.name,
        target="analytics",
        action=Action.DELETE,
    )

    with pytest.raises(BackendError, match="foreign: delete refused"):
        backend.apply(app, [delete])
    assert yarn_server.service("foreign") is not None
    assert ("DELETE", f"{SVC}/foreign") not in yarn_server.requests


def test_a_failed_service_reports_degraded(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    yarn_server.doom("sleeper")
    app = app_of(service_spec())

    sync(backend, app)
    report = backend.health(app, [""])
    report = backend.health(app, [""])

    assert report.status == HealthStatus.DEGRADED
    assert "sleeper" in report.message and "FAILED" in report.message


def test_missing_service_reports_missing(make_backend: MakeBackend) -> None:
    report = make_backend().health(app_of(service_spec("ghost")), [""])
    assert report.status == HealthStatus.MISSING
    assert "ghost" in report.message


def test_list_call_is_used_in_bulk_when_the_server_serves_it(
    make_backend: MakeBackend, yarn_server: YarnServer
) -> None:
    yarn_server.list_services = True
    for name in ("a", "b", "c"):
        yarn_server.seed(service_spec(name))
    backend = make_backend()
    app = app_of(*(service_spec(n) for n in ("a", "b", "c")))

    view = backend.read_live(app.resources, {})

    assert len(view.live) == 3
    assert yarn_server.requests == [("GET", SVC)]


def test_missing_list_call_is_probed_once_then_services_are_read_one_by_one(
    make_backend: MakeBackend, yarn_server: YarnServer
) -> None:
    yarn_server.seed(service_spec("a"))
    backend = make_backend()
    app = app_of(service_spec("a"), service_spec("b"))

    backend.read_live(app.resources, {})
    view = backend.read_live(app.resources, {})

    assert [k[1].name for k in view.live] == ["a"]
    assert yarn_server.count("GET", SVC) == 1
    assert yarn_server.count("GET", f"{SVC}/a") == 2
    assert yarn_server.count("GET", f"{SVC}/b") == 2


def test_a_minimal_list_is_dropped_for_per_service_reads(
    make_backend: MakeBackend, yarn_server: YarnServer
) -> None:
    yarn_server.list_services = True
    yarn_server.seed(service_spec("a"))
    backend = make_backend()
    minimal = yarn_server.handle

    def projection(method: str, parts: list[str], body: object) -> tuple[int, object]:
        code, answer = minimal(method, parts, body)
        if parts == [] and isinstance(answer, list):
            answer = [{"name": s["name"], "state": s["state"]} for s in answer]
        return code, answer

    yarn_server.handle = projection  # type: ignore[method-assign]
    app = app_of(service_spec("a"))

    first = backend.read_live(app.resources, {})
    second = backend.read_live(app.resources, {})

    assert first.live.keys() == second.live.keys() and len(first.live) == 1
    assert yarn_server.count("GET", SVC) == 1
    assert yarn_server.count("GET", f"{SVC}/a") == 2
