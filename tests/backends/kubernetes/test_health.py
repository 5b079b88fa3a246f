"""Per-kind health rules, one fixture file per kind and state (health/<kind>-<state>.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from backends.kubernetes.health import object_health
from reconciler.model import HealthStatus

CASES = sorted((Path(__file__).parent / "health").glob("*.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_health_fixture(case: Path) -> None:
    doc = YAML(typ="safe").load(case.read_text())
    result = object_health(doc["object"])
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
