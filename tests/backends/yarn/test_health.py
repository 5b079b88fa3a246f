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
