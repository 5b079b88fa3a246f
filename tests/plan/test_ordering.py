"""Property tests: for any valid DAG of apps, the plan runs waves in ascending
order and every app after the dependencies it has inside its wave."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import plan
from tests.plan.conftest import build_state, build_view


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=12))
    names = [f"app{i:02d}" for i in range(count)]
    draw(st.permutations(names))
    apps: dict[str, Any] = {}
    for index, name in enumerate(names):
        wave = draw(st.integers(min_value=0, max_value=3))
        # Only earlier-indexed apps can be dependencies: the graph is acyclic by
        # construction; later waves may not be depended upon, as validation requires.
        candidates = [n for n in names[:index] if apps[n]["wave"] <= wave]
        deps = draw(st.lists(st.sampled_from(candidates), unique=True)) if candidates else []
        apps[name] = {"wave": wave, "depends_on": deps, "resources": {f"File:/{name}": {}}}
    return apps


@settings(max_examples=200, deadline=None)
@given(dags())
def test_waves_ascend_and_dependencies_come_first(apps: dict[str, Any]) -> None:
    state = build_state(apps, {"t": {}})
    result = plan.plan(state, {"t": build_view("t", {}, state)})
    order = [a.app for w in result.waves for a in w.apps]
    assert sorted(order) == sorted(apps)
    waves = [apps[name]["wave"] for name in order]
    assert waves == sorted(waves)
    position = {name: i for i, name in enumerate(order)}
    for name, spec in apps.items():
        for dep in spec["depends_on"]:
            assert position[dep] < position[name], f"{dep} must run before {name}"


@settings(max_examples=50, deadline=None)
@given(dags())
def test_plan_is_deterministic(apps: dict[str, Any]) -> None:
    state = build_state(apps, {"t": {}})
    views = {"t": build_view("t", {}, state)}
    assert plan.to_json(plan.plan(state, views)) == plan.to_json(plan.plan(state, views))
