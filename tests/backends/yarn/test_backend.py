"""The YARN backend against a real ResourceManager (MiniYARNCluster with the
Services API), through a recording proxy: services really start, flex, upgrade,
stop and crash, and the tests count the requests the backend made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backends.base import Backend
from reconciler.errors import ApiError, BackendError
from reconciler.model import Action, Change, HealthStatus, ResourceId
from tests.backends.yarn.helpers import (
    SVC,
    app_of,
    changes,
    inventory_of,
    service_spec,
    sync,
    wait_health,
)
from tests.support.yarn_cluster import RmClient
from tests.support.yarn_proxy import YarnProxy

MakeBackend = Callable[..., Backend]
Names = Callable[[str], str]


def two_components(name: str, version: str = "1.0.0", command: str = "sleep 900000",
                   count: int = 2) -> dict[str, Any]:
    """Service-level resource and configuration that the RM folds into each
    component, memory as a number, a component with its own env: defaults and
    inherited values that must not look like drift."""
    return {
        "name": name,
        "version": version,
        "resource": {"cpus": 1, "memory": 128},
        "configuration": {"env": {"MODE": "prod"}, "properties": {"app.tier": "batch"}},
        "components": [
            {"name": "worker", "number_of_containers": count, "launch_command": command},
            {
                "name": "helper",
                "number_of_containers": 1,
                "launch_command": "sleep 900000",
                "configuration": {"env": {"ROLE": "helper"}},
                "restart_policy": "ALWAYS",
            },
        ],
    }


def ready_counts(live: dict[str, Any] | None) -> dict[str, int]:
    assert live is not None
    return {
        c["name"]: sum(1 for x in c.get("containers", []) if x["state"] == "READY")
        for c in live["components"]
    }


def test_create_two_components_waits_for_stable_then_a_noop_makes_no_write(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    name = names("pair")
    app = app_of(two_components(name))

    todo = sync(backend, app)

    assert [c.action for c in todo] == [Action.CREATE]
    assert yarn.writes() == [("POST", SVC)]
    assert backend.health(app, [""]).status == HealthStatus.PROGRESSING
    # Still ACCEPTED (a GET without spec) or starting: nothing to change.
    assert changes(backend.read_live(app.resources, {}), app) == []
    status, seen = wait_health(backend, app)
    assert status == HealthStatus.HEALTHY, seen
    live = rm.service(name)
    assert live is not None and live["state"] == "STABLE"
    assert ready_counts(live) == {"worker": 2, "helper": 1}

    yarn.reset()
    view = backend.read_live(app.resources, {})
    result = backend.apply(app, changes(view, app))

    assert changes(view, app) == []
    assert result.applied == 0
    assert yarn.writes() == []
    assert yarn.count("GET", f"{SVC}/{name}") == 1
    assert yarn.users() == {"deploy"}


def test_flex_two_to_three_is_one_put_and_then_in_sync(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    name = names("flex")
    sync(backend, app_of(service_spec(name, count=2)))
    assert wait_health(backend, app_of(service_spec(name, count=2)))[0] == HealthStatus.HEALTHY
    app = app_of(service_spec(name, count=3))
    yarn.reset()

    todo = sync(backend, app)

    assert [c.action for c in todo] == [Action.UPDATE]
    assert yarn.writes() == [("PUT", f"{SVC}/{name}/components/sleeper")]
    assert [r.body for r in yarn.requests if r.method == "PUT"] == [{"number_of_containers": 3}]
    assert wait_health(backend, app)[0] == HealthStatus.HEALTHY
    assert ready_counts(rm.service(name)) == {"sleeper": 3}
    yarn.reset()
    assert changes(backend.read_live(app.resources, {}), app) == []
    assert yarn.writes() == []


def test_a_new_launch_command_needs_a_new_version_then_upgrades_for_real(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    name = names("upgrade")
    first = app_of(service_spec(name, version="1.0.0", count=1))
    sync(backend, first)
    assert wait_health(backend, first)[0] == HealthStatus.HEALTHY
    yarn.reset()

    # Same version, new command: YARN would answer "already at version"; refused first.
    same = app_of(service_spec(name, version="1.0.0", count=1, command="sleep 800000"))
    with pytest.raises(BackendError, match=rf"{name}\.yaml:1: .*service {name}: .*version"):
        sync(backend, same)
    assert yarn.writes() == []

    app = app_of(service_spec(name, version="2.0.0", count=1, command="sleep 800000"))
    sync(backend, app)

    assert yarn.writes() == [
        ("PUT", f"{SVC}/{name}"),
        ("PUT", f"{SVC}/{name}/components/sleeper"),
    ]
    puts = [r.body for r in yarn.requests if r.method == "PUT"]
    assert puts[0]["state"] == "UPGRADING_AUTO_FINALIZE" and puts[1] == {"state": "UPGRADING"}
    assert backend.health(app, [""]).status == HealthStatus.PROGRESSING
    status, seen = wait_health(backend, app, timeout=180)
    assert status == HealthStatus.HEALTHY, seen
    live = rm.service(name)
    assert live is not None and (live["state"], live["version"]) == ("STABLE", "2.0.0")
    assert live["components"][0]["launch_command"] == "sleep 800000"
    assert changes(backend.read_live(app.resources, {}), app) == []


def test_a_command_that_exits_at_once_is_degraded_and_never_healthy(
    make_backend: MakeBackend, names: Names
) -> None:
    # With NodeManager relaunches off, YARN reports each exit as a FAILED
    # container and starts a new one (with them on, the Hadoop default, YARN
    # itself shows the container READY between relaunches: docs/yarn.md).
    backend = make_backend(min_ready=10)
    spec = service_spec(names("crash"), count=1, command="exit 3")
    spec["configuration"] = {"properties": {"yarn.service.container-failure.retry.max": "0"}}
    app = app_of(spec)
    sync(backend, app)

    status, seen = wait_health(backend, app, want=HealthStatus.DEGRADED, timeout=60)

    assert status == HealthStatus.DEGRADED, seen
    assert HealthStatus.HEALTHY not in seen
    report = backend.health(app, [""])
    assert report.status != HealthStatus.HEALTHY
    assert "component sleeper" in report.message or "FAILED" in report.message


def test_stop_and_start_follow_the_declared_state(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    name = names("pause")
    running = app_of(service_spec(name, count=1))
    sync(backend, running)
    assert wait_health(backend, running)[0] == HealthStatus.HEALTHY
    stopped = app_of(service_spec(name, count=1, state="STOPPED"))
    yarn.reset()

    sync(backend, stopped)

    assert yarn.writes() == [("PUT", f"{SVC}/{name}")]
    assert rm.wait(name, lambda s: s is not None and s["state"] == "STOPPED", timeout=60)
    # Stopped as declared is healthy; the running spec sees it Suspended.
    assert backend.health(stopped, [""]).status == HealthStatus.HEALTHY
    assert backend.health(running, [""]).status == HealthStatus.SUSPENDED
    # The RM reports a stopped service without its spec: only the state compares.
    assert changes(backend.read_live(stopped.resources, {}), stopped) == []

    # Started again at a new spec: start, then the started service is
    # flexed and upgraded to it.
    yarn.reset()
    again = app_of(service_spec(name, version="2.0.0", count=2, command="sleep 700000"))
    sync(backend, again)

    writes = yarn.writes()
    assert writes[0] == ("PUT", f"{SVC}/{name}")
    assert ("PUT", f"{SVC}/{name}/components/sleeper") in writes
    status, seen = wait_health(backend, again, timeout=180)
    assert status == HealthStatus.HEALTHY, seen
    live = rm.service(name)
    assert live is not None and live["version"] == "2.0.0"
    assert ready_counts(live) == {"sleeper": 2}


def test_a_service_created_stopped_is_saved_only_and_destroyed_by_prune(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    name = names("saved")
    app = app_of(service_spec(name, state="STOPPED"))

    sync(backend, app)
    saved = rm.service(name)
    assert saved is not None and saved["state"] == "STOPPED"
    assert "id" not in saved  # saved only: no application was submitted
    assert backend.health(app, [""]).status == HealthStatus.HEALTHY
    assert changes(backend.read_live(app.resources, {}), app) == []

    yarn.reset()
    empty = app_of(service_spec(names("other"), state="STOPPED"))
    todo = sync(backend, empty, inventory_of([name]))

    assert [(c.action, c.id.name) for c in todo if c.action == Action.DELETE] == [
        (Action.DELETE, name)
    ]
    assert ("DELETE", f"{SVC}/{name}") in yarn.writes()
    assert rm.service(name) is None


def test_prune_deletes_only_owned_services(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    old, foreign, new = names("old"), names("foreign"), names("new")
    rm.create(service_spec(old, state="STOPPED"))
    rm.create(service_spec(foreign, state="STOPPED"))
    app = app_of(service_spec(new, state="STOPPED"))

    todo = sync(backend, app, inventory_of([old]))

    assert sorted((c.action, c.id.name) for c in todo) == [
        (Action.CREATE, new),
        (Action.DELETE, old),
    ]
    assert rm.service(old) is None
    assert rm.service(foreign) is not None and rm.service(new) is not None
    assert not [r for r in yarn.requests if foreign in r.path]


def test_delete_of_a_service_outside_the_inventory_is_refused(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    foreign, mine = names("foreign"), names("mine")
    rm.create(service_spec(foreign, state="STOPPED"))
    app = app_of(service_spec(mine))
    backend.read_live(app.resources, inventory_of([mine]))
    delete = Change(
        id=ResourceId(kind="Service", name=foreign),
        app=app.name,
        target="analytics",
        action=Action.DELETE,
    )

    with pytest.raises(BackendError, match=f"{foreign}: delete refused"):
        backend.apply(app, [delete])
    assert rm.service(foreign) is not None
    assert yarn.writes() == []


def test_delete_of_a_service_already_gone_counts_as_done(
    yarn: YarnProxy, make_backend: MakeBackend, names: Names
) -> None:
    # Hadoop answers 400 "Service X doesn't exist", not 404.
    backend = make_backend()
    gone = names("gone")
    app = app_of(service_spec(names("keep"), state="STOPPED"))
    backend.read_live(app.resources, inventory_of([gone]))
    delete = Change(
        id=ResourceId(kind="Service", name=gone), app=app.name, target="analytics",
        action=Action.DELETE,
    )

    result = backend.apply(app, [delete])

    assert result.applied == 1
    assert yarn.writes() == [("DELETE", f"{SVC}/{gone}")]


def test_a_spec_the_rm_rejects_carries_its_message_and_the_file_line(
    rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    name = names("broken")
    body = {"name": name, "version": "1",
            "components": [{"name": "c", "number_of_containers": 1, "launch_command": "true"}]}
    app = app_of(body)

    with pytest.raises(ApiError) as caught:
        sync(backend, app)

    assert caught.value.status == 400
    message = str(caught.value)
    assert message.startswith(f"apps/batch/{name}.yaml:1: ")
    assert f"POST service {name}: HTTP 400" in message
    assert "Resource is not provided for component c" in message
    assert rm.service(name) is None


def test_missing_service_reports_missing(make_backend: MakeBackend, names: Names) -> None:
    name = names("ghost")
    report = make_backend().health(app_of(service_spec(name)), [""])
    assert report.status == HealthStatus.MISSING
    assert name in report.message


def test_the_list_call_hadoop_does_not_serve_is_probed_once(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    a, b = names("a"), names("b")
    rm.create(service_spec(a, state="STOPPED"))
    backend = make_backend()
    app = app_of(service_spec(a, state="STOPPED"), service_spec(b, state="STOPPED"))

    backend.read_live(app.resources, {})
    view = backend.read_live(app.resources, {})

    assert [k[1].name for k in view.live] == [a]
    assert yarn.count("GET", SVC) == 1
    assert yarn.count("GET", f"{SVC}/{a}") == 2
    assert yarn.count("GET", f"{SVC}/{b}") == 2
