"""What a backend says about an apply (ApplyResult.messages) reaches every listener.

The VM backend reports what a prune deliberately left (a non-empty Directory,
a Service with no stop record); those notes must end up in the events, so in
the history, the terminal progress and the status page.
"""

from __future__ import annotations

import io

from reconciler import plan as planner
from reconciler.events import Event, EventKind, with_notes
from reconciler.progress import Progress
from tests.rollout.conftest import Harness, app, desired


def _messages(events: list[Event], kind: EventKind) -> list[str]:
    return [e.message for e in events if e.kind is kind]


def test_batch_notes_reach_the_event_the_history_and_the_terminal(harness: Harness) -> None:
    harness.backend.notes["/srv"] = "kept Directory /srv: not empty (3 entries left)"
    state = desired("r1", app("web", {"/srv": "x", "/index": "v1"}, batch=2))
    _, result = harness.sync(state)
    assert result.ok

    applied = _messages(harness.events, EventKind.BATCH_APPLIED)
    assert applied[0] == ("4 write(s); notes: h1: kept Directory /srv: not empty "
                          "(3 entries left); h2: kept Directory /srv: not empty "
                          "(3 entries left)")
    assert applied[2] == "2 write(s); notes: h5: kept Directory /srv: not empty (3 entries left)"
    record = harness.history.deploy(1)
    assert record is not None
    stored = [e.message for e in record.events if e.kind is EventKind.BATCH_APPLIED]
    assert stored == applied

    out = io.StringIO()
    progress = Progress(out, tty=True)
    for event in harness.events:
        progress(event)
    # Kept on screen as a line of its own, not overwritten by the health line.
    kept = [line for line in out.getvalue().split("\n") if "kept Directory" in line]
    assert len(kept) == 3
    assert kept[0].endswith("web@fleet [h1 h2] applied success: " + applied[0])


def test_prune_notes_reach_the_prune_event(harness: Harness) -> None:
    first = desired("r1", app("web", {"/index": "v1"}), app("svc", {"/unit": "u"}))
    assert harness.sync(first)[1].ok
    harness.backend.notes["/unit"] = "left Service demo-web running: no stop record on the host"
    second = desired("r2", app("web", {"/index": "v1"}))
    runner = harness.rollout(second)
    pruned = runner.run_prune(planner.plan(second, harness.views(second)))
    assert pruned.ok
    [message] = _messages(harness.events, EventKind.PRUNE_DONE)
    assert message.startswith("5 deleted, 5 write(s); notes: h1: left Service demo-web "
                              "running: no stop record on the host; h2: ")
    assert message.endswith(" (+2 more)")


def test_without_notes_the_messages_are_unchanged(harness: Harness) -> None:
    _, result = harness.sync(desired("r1", app("web", {"/index": "v1"})))
    assert result.ok
    assert _messages(harness.events, EventKind.BATCH_APPLIED) == ["5 write(s)"]


def test_notes_are_deduplicated_and_cut_short() -> None:
    long = "x" * 500
    text = with_notes("1 write(s)", ["a", "a", " ", long, "b", "c"])
    assert text.startswith("1 write(s); notes: a; xxx")
    assert text.endswith("...; b (+1 more)")
    assert len(text) < 250
    assert with_notes("1 write(s)", ()) == "1 write(s)"
