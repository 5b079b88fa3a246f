"""Commit statuses: git-note history, short descriptions, reporters that fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from reconciler.daemon.statuses import Progress, Publisher
from reconciler.daemon.worker import final_status
from reconciler.engine import SyncResult
from reconciler.events import Event, EventKind
from reconciler.reporters import CommitStatus, Context, State
from reconciler.reporters.gitnotes import MAX_ENTRIES, GitNotesReporter, latest, merge_note

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def status(state: State, text: str = "x") -> CommitStatus:
    return CommitStatus.make(sha="a" * 40, context=Context.DEPLOY, state=state,
                             description=text)


def test_the_note_keeps_every_state_newest_last_and_is_capped() -> None:
    note = merge_note(None, status(State.PENDING, "deploying wave 1 of 2"), NOW)
    note = merge_note(note, status(State.SUCCESS, "1 to create"), NOW)
    parsed = json.loads(note)
    assert [s["state"] for s in parsed["statuses"]] == ["pending", "success"]
    assert latest(note) == parsed["statuses"][-1]
    assert merge_note("not json", status(State.ERROR), NOW).count('"state"') == 1
    for _ in range(MAX_ENTRIES + 5):
        note = merge_note(note, status(State.PENDING), NOW)
    assert len(json.loads(note)["statuses"]) == MAX_ENTRIES


def test_descriptions_are_one_line_of_at_most_140_characters() -> None:
    made = status(State.FAILURE, "web: health check failed\n" + "x" * 300)
    assert len(made.description) == 140 and "\n" not in made.description


class Store:
    def __init__(self) -> None:
        self.notes: dict[str, str] = {}
        self.pushed = 0

    def read_note(self, sha: str, ref: str = "") -> str | None:
        return self.notes.get(sha)

    def write_note(self, sha: str, text: str, ref: str = "") -> None:
        self.notes[sha] = text

    def push_notes(self, ref: str = "") -> None:
        self.pushed += 1


class Broken:
    name = "broken"

    def report(self, status: CommitStatus) -> None:
        raise RuntimeError("forge is down")


def test_a_failing_reporter_is_counted_and_the_others_still_report() -> None:
    store = Store()
    publisher = Publisher([Broken(), GitNotesReporter(store, push=True)],
                          "https://deploy.example.com")
    before = REGISTRY.get_sample_value(
        "reconciler_daemon_reporter_failures_total", {"reporter": "broken"}) or 0
    publisher.publish("b" * 40, State.SUCCESS, "deployed")
    after = REGISTRY.get_sample_value(
        "reconciler_daemon_reporter_failures_total", {"reporter": "broken"})
    assert after == before + 1
    newest = latest(store.notes["b" * 40])
    assert newest is not None and newest["target_url"] == (
        "https://deploy.example.com/commits/" + "b" * 40)
    assert store.pushed == 1


def test_a_long_failure_still_says_whether_it_rolled_back() -> None:
    long = "web: health check failed on web-1: " + "connection refused " * 20
    for flags, tail in (({"rolled_back": True}, "; rolled back"),
                        ({"rollback_failed": True}, "; rollback failed"),
                        ({}, "; not rolled back")):
        result = SyncResult(result="failure", deploy_id=1, revision="a" * 40, message=long,
                            **flags)  # type: ignore[arg-type]
        state, text = final_status(result)
        made = CommitStatus.make(sha="a" * 40, context=Context.DEPLOY, state=state,
                                 description=text)
        assert made.state is State.FAILURE
        assert made.description.startswith("web: health check failed on web-1")
        assert made.description.endswith(tail) and len(made.description) <= 140


def test_a_long_rollback_notice_still_says_rolling_back() -> None:
    posted: list[CommitStatus] = []

    class Recorder:
        name = "recorder"

        def report(self, status: CommitStatus) -> None:
            posted.append(status)

    progress = Progress(Publisher([Recorder()], None))
    progress.expect("a" * 40, [0, 1])
    progress(Event(kind=EventKind.ROLLBACK_STARTED, deploy_id=1, revision="a" * 40,
                   app="web", message="health check failed: " + "x" * 300))
    assert [s.state for s in posted] == [State.PENDING]
    assert posted[0].description.startswith("failed (web: health check failed: x")
    assert posted[0].description.endswith("); rolling back")
    assert len(posted[0].description) <= 140
