"""Pure health rules: service states, component instances, versions."""

from __future__ import annotations

from typing import Any

import pytest

from backends.yarn.health import ServiceHealth, component_health, fold, service_health
from reconciler.model import HealthStatus


def service(state: str, *containers: str, wanted: int | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "name": "svc",
        "version": kw.get("version", "1"),
        "state": state,
        "components": [
            {
                "name": "c",
                "state": kw.get("comp_state", "STABLE"),
                "number_of_containers": len(containers) if wanted is None else wanted,
                "containers": [{"id": f"c{i}", "state": s} for i, s in enumerate(containers)],
            }
        ],
    }


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("STABLE", HealthStatus.HEALTHY),
        ("ACCEPTED", HealthStatus.PROGRESSING),
        ("STARTED", HealthStatus.PROGRESSING),
        ("FLEX", HealthStatus.PROGRESSING),
        ("UPGRADING", HealthStatus.PROGRESSING),
        ("UPGRADING_AUTO_FINALIZE", HealthStatus.PROGRESSING),
        ("FAILED", HealthStatus.DEGRADED),
        ("STOPPED", HealthStatus.SUSPENDED),
        ("SOMETHING_NEW", HealthStatus.UNKNOWN),
    ],
)
def test_service_state_maps_to_health(state: str, status: HealthStatus) -> None:
    found = service_health(service(state, "READY"), name="svc")
    assert found.status == status
    if status != HealthStatus.HEALTHY:
        assert state in found.message


def test_stable_with_too_few_ready_containers_is_progressing() -> None:
    found = service_health(service("STABLE", "READY", "INIT", wanted=2), name="svc")
    assert found.status == HealthStatus.PROGRESSING
    assert "1/2 ready" in found.message


def test_failed_component_is_degraded_even_while_starting() -> None:
    found = service_health(service("STARTED", "READY", comp_state="FAILED"), name="svc")
    assert found.status == HealthStatus.DEGRADED
    assert "component c FAILED" in found.message


def test_failed_container_is_degraded() -> None:
    assert (
        component_health(
            {"name": "c", "number_of_containers": 1, "containers": [{"state": "FAILED"}]}
        ).status
        == HealthStatus.DEGRADED
    )


def test_older_version_than_desired_is_progressing() -> None:
    found = service_health(service("STABLE", "READY", version="1"), name="svc", version="2")
    assert found.status == HealthStatus.PROGRESSING
    assert "not 2 yet" in found.message


def test_absent_service_is_missing() -> None:
    found = service_health(None, name="ghost")
    assert found.status == HealthStatus.MISSING and "ghost" in found.message


def test_fold_takes_the_worst_and_keeps_the_reasons() -> None:
    folded = fold(
        [
            ServiceHealth(status=HealthStatus.HEALTHY, message=""),
            ServiceHealth(status=HealthStatus.PROGRESSING, message="a starting"),
            ServiceHealth(status=HealthStatus.DEGRADED, message="b FAILED"),
        ]
    )
    assert folded.status == HealthStatus.DEGRADED
    assert folded.message == "a starting; b FAILED"
    assert fold([]).status == HealthStatus.HEALTHY


def test_a_ready_container_counts_only_after_min_ready() -> None:
    live = service("STABLE", "READY")
    live["components"][0]["containers"][0]["launch_time"] = 100_000
    young = service_health(live, name="svc", now_ms=105_000, min_ready=10)
    old = service_health(live, name="svc", now_ms=111_000, min_ready=10)
    assert young.status == HealthStatus.PROGRESSING and "0/1 ready for 10s" in young.message
    assert old.status == HealthStatus.HEALTHY


@pytest.mark.parametrize("state", ["SUCCEEDED", "STOPPED"])
def test_an_exited_container_of_an_always_restarting_component_is_degraded(state: str) -> None:
    found = service_health(service("STABLE", "READY", state, wanted=1), name="svc")
    assert found.status == HealthStatus.DEGRADED
    assert f"exited ({state})" in found.message


def test_an_exited_container_of_a_run_once_component_is_fine() -> None:
    live = service("STABLE", "SUCCEEDED", wanted=0)
    live["components"][0]["restart_policy"] = "NEVER"
    assert service_health(live, name="svc").status == HealthStatus.HEALTHY


def test_a_failed_upgrade_container_is_degraded() -> None:
    found = service_health(service("UPGRADING_AUTO_FINALIZE", "FAILED_UPGRADE"), name="svc")
    assert found.status == HealthStatus.DEGRADED and "FAILED_UPGRADE" in found.message


@pytest.mark.parametrize(
    ("state", "status"),
    [("STOPPED", HealthStatus.HEALTHY), ("STABLE", HealthStatus.PROGRESSING)],
)
def test_a_service_declared_stopped_is_healthy_once_stopped(
    state: str, status: HealthStatus
) -> None:
    assert service_health(service(state, "READY"), name="svc", want_stopped=True).status == status
