"""CEL health rules on objects (pure): Flux's order, missing fields, non-booleans,
and rules loaded from reconciler.yaml reaching the backend's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backends.kubernetes.cel_health import Rules
from backends.kubernetes.options import AppOptions, Options, options_of
from reconciler.load import load
from reconciler.model import HealthExpr, HealthStatus, Location
from reconciler.tree import DirectoryTree

HERE = Location(file="reconciler.yaml", line=9)
RULE = HealthExpr(
    api_version="example.com/v1", kind="Widget",
    current='status.phase == "Ready"',
    in_progress='has(status.phase) && status.phase == "Provisioning"',
    failed='status.conditions.exists(c, c.type == "Failed" && c.status == "True")',
    location=HERE)


def widget(**status: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "status": status}


@pytest.mark.parametrize(("status", "expected", "fragment"), [
    ({"phase": "Ready", "conditions": []}, HealthStatus.HEALTHY, ""),
    ({"phase": "Provisioning"}, HealthStatus.PROGRESSING, "in progress (health rule at"),
    ({"phase": "Broken", "conditions": [{"type": "Failed", "status": "True"}]},
     HealthStatus.DEGRADED, "failed (health rule at reconciler.yaml:9)"),
    # inProgress is asked first: a failure condition left from before does not win.
    ({"phase": "Provisioning", "conditions": [{"type": "Failed", "status": "True"}]},
     HealthStatus.PROGRESSING, "in progress"),
    ({"phase": "Other", "conditions": []}, HealthStatus.PROGRESSING, "not current yet"),
    # `failed` reads status.conditions, which this object lacks: wait, naming the rule.
    ({"phase": "Other"}, HealthStatus.PROGRESSING, "failed cannot be evaluated yet"),
])
def test_rule_order_and_outcomes(status: dict[str, Any], expected: HealthStatus,
                                 fragment: str) -> None:
    result = Rules([RULE]).health(widget(**status))
    assert result is not None
    assert result.status is expected
    assert fragment in result.message
    assert "Broken" not in result.message  # never object data


def test_other_kinds_and_non_boolean_results() -> None:
    rules = Rules([RULE, HealthExpr(api_version="v1", kind="ConfigMap", current="data",
                                    location=HERE)])
    assert rules.health({"apiVersion": "example.com/v2", "kind": "Widget"}) is None
    odd = rules.health({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})
    assert odd is not None and odd.status is HealthStatus.PROGRESSING
    assert "gave a dict, not a boolean" in odd.message


def test_the_first_rule_for_a_kind_wins_so_an_app_overrides_its_target() -> None:
    target = Options(health_exprs=(RULE,))
    mine = HealthExpr(api_version="example.com/v1", kind="Widget", current="true",
                      location=Location(file="apps/a/app.yaml", line=3))
    merged = target.for_app(AppOptions(health_exprs=(mine,)))
    provisioning = widget(phase="Provisioning")
    by_target = Rules(target.health_exprs).health(provisioning)
    assert by_target is not None and by_target.status is HealthStatus.PROGRESSING
    by_app = Rules(merged.health_exprs).health(provisioning)
    assert by_app is not None and by_app.status is HealthStatus.HEALTHY


def test_rules_in_reconciler_yaml_reach_the_target_options(tmp_path: Path) -> None:
    (tmp_path / "apps/a").mkdir(parents=True)
    (tmp_path / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\ntargets:\n  k:\n    backend: kubernetes\n"
        "    health_exprs:\n      - apiVersion: example.com/v1\n        kind: Widget\n"
        "        current: status.phase == 'Ready'\n")
    (tmp_path / "apps/a/app.yaml").write_text("target: k\n")
    desired = load(DirectoryTree(tmp_path))
    rules = options_of(desired.targets["k"]).health_exprs
    assert [(r.kind, str(r.location)) for r in rules] == [("Widget", "reconciler.yaml:6")]
    verdict = Rules(rules).health(widget(phase="Ready"))
    assert verdict is not None and verdict.status is HealthStatus.HEALTHY
