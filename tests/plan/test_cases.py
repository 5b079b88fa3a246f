"""Data-driven plan cases: tests/plan/cases/<case>.yaml hold desired apps, live
views and the exact expected change list, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import plan
from tests.plan.conftest import CASES, build_state, build_view, load_case


@pytest.mark.parametrize("path", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    case = load_case(path)
    state = build_state(case["apps"], case.get("targets", {"t": {}}))
    views = {
        name: build_view(name, spec or {}, state)
        for name, spec in (case.get("views") or {"t": {}}).items()
    }
    result = plan.plan(state, views)
    got = [
        f"{c.action.value} {c.app} {c.id}" + (f" @{c.host}" if c.host else "")
        for c in result.changes()
    ]
    assert got == case["expect"]
    assert [w.wave for w in result.waves] == sorted({w.wave for w in result.waves})
