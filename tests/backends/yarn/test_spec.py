"""Pure normalising and update planning of YARN service specs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from backends.yarn import spec
from tests.backends.yarn.helpers import service_spec

# The POST body and GET answer of the "hello-world" example of the YARN
# Service API docs (YarnServiceAPI.md), with the server's defaults filled in.
POSTED: dict[str, Any] = {
    "name": "hello-world",
    "version": "1.0.0",
    "description": "hello world example",
    "components": [
        {
            "name": "hello",
            "number_of_containers": 2,
            "artifact": {"id": "nginx:latest", "type": "DOCKER"},
            "launch_command": "./start_nginx.sh",
            "resource": {"cpus": 1, "memory": "256"},
        }
    ],
}
GOT: dict[str, Any] = {
    "name": "hello-world",
    "version": "1.0.0",
    "description": "hello world example",
    "id": "application_1503963985568_0002",
    "lifetime": -1,
    "state": "STABLE",
    "components": [
        {
            "name": "hello",
            "state": "STABLE",
            "artifact": {"id": "nginx:latest", "type": "DOCKER"},
            "resource": {"cpus": 1, "memory": "256"},
            "configuration": {"properties": {}, "env": {}, "files": []},
            "quicklinks": [],
            "containers": [
                {"id": "container_e03_1503963985568_0002_01_000002", "state": "READY"},
                {"id": "container_e03_1503963985568_0002_01_000003", "state": "READY"},
            ],
            "launch_command": "./start_nginx.sh",
            "number_of_containers": 2,
            "run_privileged_container": False,
            "restart_policy": "ALWAYS",
            "dependencies": [],
        }
    ],
    "configuration": {"properties": {}, "env": {}, "files": []},
    "quicklinks": {},
    "kerberos_principal": {},
}


def test_documented_post_and_get_compare_equal() -> None:
    assert spec.comparable(POSTED) == spec.comparable(GOT)


def test_comparable_keeps_what_runs_and_drops_status() -> None:
    form = spec.comparable(GOT)
    assert set(form) == {"name", "version", "description", "components"}
    assert set(form["components"][0]) == {
        "name",
        "number_of_containers",
        "artifact",
        "resource",
        "launch_command",
    }


def test_global_values_and_defaults_are_resolved_into_components() -> None:
    body = {
        "name": "s",
        "version": 1,
        "artifact": {"id": "img"},
        "resource": {"cpus": 2, "memory": 1024},
        "configuration": {"env": {"A": "1", "B": "1"}},
        "components": [{"name": "c", "configuration": {"env": {"B": "2"}}}],
    }
    comp = spec.comparable(body)["components"][0]
    assert comp["artifact"] == {"id": "img", "type": "DOCKER"}
    assert comp["resource"] == {"cpus": 2, "memory": "1024"}
    assert comp["configuration"] == {"env": {"A": "1", "B": "2"}}
    assert spec.comparable(body)["version"] == "1"


def test_a_service_artifact_is_not_inherited() -> None:
    body = {
        "name": "s",
        "version": "1",
        "artifact": {"id": "x", "type": "SERVICE"},
        "components": [{"name": "c"}],
    }
    assert "artifact" not in spec.comparable(body)["components"][0]


def test_only_a_stopped_state_is_compared() -> None:
    assert "state" not in spec.comparable({**POSTED, "state": "STARTED"})
    assert "state" not in spec.comparable({**GOT, "state": "FAILED"})
    assert spec.comparable({**GOT, "state": "STOPPED"})["state"] == "STOPPED"


def test_comparable_does_not_mutate_its_input() -> None:
    before = copy.deepcopy(GOT)
    spec.comparable(GOT)
    assert before == GOT


def _form(**kw: Any) -> dict[str, Any]:
    return spec.comparable(service_spec(**kw))


@pytest.mark.parametrize(
    ("desired", "live", "steps", "flex", "upgrade"),
    [
        (_form(count=3), _form(count=2), ("flex",), {"sleeper": 3}, ()),
        (_form(version="2", command="x"), _form(), ("upgrade",), {}, ("sleeper",)),
        (
            _form(version="2", count=4, command="x"),
            _form(),
            ("flex", "upgrade"),
            {"sleeper": 4},
            ("sleeper",),
        ),
        (_form(version="2"), _form(), ("upgrade",), {}, ()),
        (_form(state="STOPPED"), _form(), ("stop",), {}, ()),
        (_form(), _form(state="STOPPED"), ("start",), {}, ()),
        (_form(count=5), _form(state="STOPPED"), ("start", "flex"), {"sleeper": 5}, ()),
    ],
    ids=["flex", "upgrade", "flex-then-upgrade", "version-only", "stop", "start", "start-flex"],
)
def test_plan_update(
    desired: dict[str, Any],
    live: dict[str, Any],
    steps: tuple[str, ...],
    flex: dict[str, int],
    upgrade: tuple[str, ...],
) -> None:
    plan = spec.plan_update("sleeper", desired, live)
    assert isinstance(plan, spec.UpdatePlan)
    assert tuple(s.value for s in plan.steps) == steps
    assert dict(plan.flex) == flex
    assert plan.upgrade_components == upgrade


@pytest.mark.parametrize(
    ("desired", "live", "reason"),
    [
        (_form(command="x"), _form(), "version did not"),
        (_form(version="2", state="STOPPED", command="x"), _form(state="STOPPED"), "stopped"),
    ],
    ids=["same-version", "stopped-upgrade"],
)
def test_plan_update_refuses_what_yarn_cannot_do(
    desired: dict[str, Any], live: dict[str, Any], reason: str
) -> None:
    plan = spec.plan_update("sleeper", desired, live)
    assert isinstance(plan, str)
    assert "sleeper" in plan and reason in plan


def test_plan_update_refuses_added_components() -> None:
    two = service_spec(version="2")
    two["components"].append({**two["components"][0], "name": "extra"})
    plan = spec.plan_update("sleeper", spec.comparable(two), _form())
    assert isinstance(plan, str) and "added or removed" in plan


# A GET of a STOPPED service as Hadoop 3.4.2's ApiServer answers it.
STOPPED_GET: dict[str, Any] = {
    "name": "hello-world", "components": [], "state": "STOPPED",
    "configuration": {"properties": {}, "env": {}, "files": []},
    "quicklinks": {}, "kerberos_principal": {}, "dependencies": [],
}


def test_a_stopped_get_carries_no_spec_and_compares_by_run_state_only() -> None:
    assert not spec.reports_spec(STOPPED_GET)
    assert spec.reports_spec(GOT)
    desired = spec.comparable(POSTED)
    assumed = spec.assumed(desired, STOPPED_GET)
    assert assumed == {**desired, "state": "STOPPED"}
    plan = spec.plan_update("hello-world", desired, assumed)
    assert not isinstance(plan, str) and plan.steps == (spec.Step.START,)


def test_a_service_mid_upgrade_never_compares_equal_to_its_old_spec() -> None:
    upgrading = {**GOT, "state": "UPGRADING_AUTO_FINALIZE"}
    assert spec.comparable(upgrading) != spec.comparable(POSTED)
    assert spec.comparable(upgrading)["state"] == spec.UPGRADING


def test_back_to_the_version_it_runs_mid_upgrade_is_a_recreate() -> None:
    live = spec.comparable({**GOT, "state": "UPGRADING_AUTO_FINALIZE"})
    back = spec.plan_update("hello-world", spec.comparable(POSTED), live)
    ahead = spec.plan_update("hello-world", spec.comparable({**POSTED, "version": "2"}), live)
    assert not isinstance(back, str) and back.steps == (spec.Step.RECREATE,)
    assert not isinstance(ahead, str) and ahead.steps == (spec.Step.WAIT,)
