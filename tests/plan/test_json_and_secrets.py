"""The `plan --json` contract and secret redaction in diffs."""

from __future__ import annotations

import json
from dataclasses import replace

from reconciler import diff, plan
from tests.plan.conftest import build_state, build_view


def test_json_shape_matches_the_contract() -> None:
    state = build_state(
        {"web": {"wave": 1, "resources": {"File:/etc/a": {"sha256": "new"}}},
         "db": {"wave": 0, "resources": {"File:/etc/b": {"sha256": "b"}}}},
        {"t": {}},
    )
    view = build_view("t", {"live": [
        {"id": "File:/etc/a", "state": {"sha256": "old"}, "owner": "web"},
        {"id": "File:/etc/gone", "state": {"sha256": "g"}, "owner": "web"},
    ]}, state)
    out = plan.to_json(plan.plan(state, {"t": view}))
    json.dumps(out)  # serialisable as is
    assert out["summary"] == {"create": 1, "update": 1, "delete": 1}
    assert [(w["wave"], w["phase"]) for w in out["waves"]] == [(0, "apply"), (1, "apply"),
                                                                (1, "prune")]
    change = out["waves"][1]["apps"][0]["changes"][0]
    assert change["resource"] == "File:/etc/a" and change["action"] == "update"
    assert "-sha256: old" in change["diff"] and "+sha256: new" in change["diff"]
    assert plan.summary_line(plan.plan(state, {"t": view})) == (
        "1 to create, 1 to change, 1 to delete")


def test_secret_values_never_reach_a_diff() -> None:
    state = build_state(
        {"s": {"resources": {"Secret/ns/creds": {"data": {"password": "hunter2-new"},
                                                  "metadata": {"name": "creds"}}}}},
        {"t": {"backend": "kubernetes"}},
    )
    view = build_view("t", {"live": [
        {"id": "Secret/ns/creds", "state": {"data": {"password": "hunter2-old"},
                                            "metadata": {"name": "creds"}}, "owner": "s"},
    ]}, state)
    result = plan.plan(state, {"t": view})
    text = json.dumps(plan.to_json(result))
    assert "hunter2" not in text
    assert "<redacted " in result.changes()[0].diff


def test_a_secret_files_content_hash_is_masked_too() -> None:
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    state = build_state({"s": {"resources": {"File:/etc/key": {"sha256": digest}}}}, {"t": {}})
    app = state.apps["s"]
    secret_app = replace(app, resources=tuple(replace(r, secret=True) for r in app.resources))
    state = replace(state, apps={"s": secret_app})
    view = build_view("t", {"live": [
        {"id": "File:/etc/key", "state": {"sha256": "0" * 64}, "owner": "s"}]}, state)
    text = plan.plan(state, {"t": view}).changes()[0].diff
    assert digest not in text and "0" * 64 not in text
    assert "-sha256: <redacted " in text and "+sha256: <redacted " in text


def test_mask_is_stable_and_idempotent() -> None:
    once = diff.mask("value")
    assert once == diff.mask("value") != diff.mask("other")
    assert diff.mask(once) == once


def test_multiline_content_diffs_line_by_line() -> None:
    text = diff.unified("f", {"content": "a\nb\nc\n"}, {"content": "a\nB\nc\n"})
    assert "-  b" in text and "+  B" in text and " content: |" in text
