"""Data-driven validation cases: tests/load/cases/<rule>.yaml.

Each case holds `files` (path -> text, written over a base reconciler.yaml
unless `base: false`) and `expect`: one "file:line: message fragment" per
problem. The load must report exactly that many problems, each at that
location with that message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.load.conftest import problems_of

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
_EXPECTED = re.compile(r"(\S+:\d+): (.+)", re.DOTALL)


def _match(expected: list[str], found: list[str]) -> list[str]:
    """The expectations that no distinct problem satisfies."""
    left = list(found)
    missing = []
    for item in expected:
        parsed = _EXPECTED.fullmatch(item)
        assert parsed, f"malformed expectation {item!r}"
        where, fragment = parsed.groups()
        hit = next((p for p in left if p.startswith(where + ": ") and fragment in p), None)
        if hit is None:
            missing.append(item)
        else:
            left.remove(hit)
    return missing


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_case(case: Path, state: Callable[..., Path]) -> None:
    spec: dict[str, Any] = yaml.safe_load(case.read_text())
    root = state(spec["files"], base=spec.get("base", True))
    found = problems_of(root)
    expected: list[str] = spec["expect"]
    assert not _match(expected, found), f"missing {_match(expected, found)} in {found}"
    assert len(found) == len(expected), f"unexpected problems: {found}"
