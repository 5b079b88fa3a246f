"""Per-kind health rules, one fixture file per kind and state (health/<kind>-<state>.yaml).

A fixture may set `now` (an RFC 3339 string): the check time passed to object_health."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from backends.kubernetes.health import object_health
from reconciler.model import HealthStatus

CASES = sorted((Path(__file__).parent / "health").glob("*.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_health_fixture(case: Path) -> None:
    doc = YAML(typ="safe").load(case.read_text())
    now = datetime.fromisoformat(doc["now"]) if "now" in doc else None
    result = object_health(doc["object"], now=now)
    assert result.status is HealthStatus(doc["expected"]), result.message
    if result.status is not HealthStatus.HEALTHY:
        assert result.message, "a non-healthy result says why"


def test_every_kind_has_a_healthy_and_an_unhealthy_fixture() -> None:
    states: dict[str, set[str]] = {}
    for case in CASES:
        kind, _, state = case.stem.partition("-")
        states.setdefault(kind, set()).add(state)
    for kind, seen in states.items():
        if kind != "configmap":
            assert "healthy" in seen and len(seen) > 1, kind


def _unschedulable_pod() -> dict[str, object]:
    case = Path(__file__).parent / "health" / "pod-degraded-unschedulable.yaml"
    obj: dict[str, object] = YAML(typ="safe").load(case.read_text())["object"]
    return obj


def test_unschedulable_pod_without_a_check_time_is_not_failed() -> None:
    # Without a clock the pod's age is unknown, so the grace period cannot end.
    result = object_health(_unschedulable_pod())
    assert result.status is HealthStatus.PROGRESSING and "unschedulable" in result.message


def test_unschedulable_pod_without_creation_time_is_not_failed() -> None:
    pod = _unschedulable_pod()
    pod["metadata"] = {"name": "p"}
    result = object_health(pod, now=datetime.fromisoformat("2030-01-01T00:00:00Z"))
    assert result.status is HealthStatus.PROGRESSING
