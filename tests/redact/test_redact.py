"""Masking secret values: which values a desired state marks secret, how text is
masked and cut, and the edges that mask (event bus, statuses, log lines)."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest

from reconciler import redact
from reconciler.daemon import logging as daemon_logging
from reconciler.daemon.statuses import Publisher, ending_with
from reconciler.events import Event, EventBus, EventKind
from reconciler.model import App, DesiredState, Location, Resource, ResourceId
from reconciler.redact import MASK, LogFilter, Secrets, cut_output, secret_values
from reconciler.reporters import CommitStatus, State

HERE = Location(file="apps/web/x.yaml", line=1)
PEM = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n"


def resource(kind: str, body: dict[str, object], *, secret: bool) -> Resource:
    return Resource(id=ResourceId(kind=kind, name=str(body.get("path", "s"))), app="web",
                    body=body, location=HERE, secret=secret)


def state(*resources: Resource) -> DesiredState:
    app = App(name="web", target="t", resources=resources, location=HERE)
    return DesiredState(revision="a" * 40, targets={}, apps={"web": app})


def test_the_values_of_secret_files_and_kubernetes_secrets_are_found() -> None:
    found = secret_values(state(
        resource("File", {"path": "/etc/pw", "content": "hunter2-long\n", "secret": True},
                 secret=True),
        resource("File", {"path": "/etc/key", "content": PEM.encode()}, secret=True),
        resource("Secret", {"kind": "Secret", "data": {
            "token": base64.b64encode(b"tok-3141").decode(), "blob": "%%not-base64%%"},
            "stringData": {"url": "postgres://u:pw@db"}}, secret=True),
        resource("File", {"path": "/etc/public", "content": "not a secret at all"},
                 secret=False),
    ))
    assert "hunter2-long" in found
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" in found  # one line of a multi-line key
    assert PEM.strip() in found
    assert {"tok-3141", base64.b64encode(b"tok-3141").decode(), "%%not-base64%%",
            "postgres://u:pw@db"} <= found
    assert "not a secret at all" not in found


def test_values_are_masked_longest_first_and_short_ones_are_left() -> None:
    values = ["s3cret", "s3cret-and-more", "abc"]
    assert redact.redact("x s3cret-and-more y s3cret abc", values) == f"x {MASK} y {MASK} abc"
    assert redact.redact("nothing here", []) == "nothing here"
    text = "line one | pass=s3cret-and-more | end"
    assert len(redact.redact(text, values)) <= len(text)


def test_quoted_command_output_keeps_its_last_lines() -> None:
    head = "web: h1: run Command m failed (exit 3): "
    text = head + "one | two | three; rollback: ok"
    assert cut_output(text, 1) == head + "three; rollback: ok"
    assert cut_output(text, 2) == head + "two | three; rollback: ok"
    assert cut_output(text, 5) == text
    assert cut_output("no output quoted", 1) == "no output quoted"
    # A status keeps the last line even when the message is longer than 140 characters.
    long = "web: " + "x" * 200 + " failed (exit 1): first | last words"
    assert ending_with(long, "; rolled back").endswith("; rolled back")
    assert "first" not in ending_with(long, "; rolled back")


@pytest.fixture
def secrets() -> Secrets:
    held = Secrets()
    held.add(["pl4nted-s3cret"])
    return held


def test_the_event_bus_masks_every_message_before_any_listener(secrets: Secrets) -> None:
    bus = EventBus(secrets)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    bus.emit(Event(kind=EventKind.BATCH_APPLIED, deploy_id=1, revision="a" * 40,
                   message="h1: failed (exit 1): pl4nted-s3cret"))
    assert seen[0].message == f"h1: failed (exit 1): {MASK}"


def test_the_publisher_masks_descriptions_before_any_reporter(secrets: Secrets) -> None:
    posted: list[CommitStatus] = []

    class Recorder:
        name = "recorder"

        def report(self, status: CommitStatus) -> None:
            posted.append(status)

    Publisher([Recorder()], None, redact=secrets.redact).publish(
        "a" * 40, State.ERROR, "cannot fetch: remote said pl4nted-s3cret")
    assert posted[0].description == f"cannot fetch: remote said {MASK}"


@pytest.fixture
def log_lines(secrets: Secrets) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = daemon_logging.configure("json", "debug", stream=stream)
    handler.addFilter(LogFilter(secrets))
    yield stream
    daemon_logging.unconfigure(handler)


def test_log_lines_are_masked_in_their_message_and_fields(log_lines: io.StringIO) -> None:
    logging.getLogger("reconciler.daemon.worker").error(
        "cannot deploy %s", "pl4nted-s3cret",
        extra=daemon_logging.fields(error="exit 1: pl4nted-s3cret", hosts=["pl4nted-s3cret"]))
    logging.getLogger("backends.vm").warning("said pl4nted-s3cret")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert "pl4nted-s3cret" not in log_lines.getvalue()
    assert lines[0]["message"] == f"cannot deploy {MASK}"
    assert (lines[0]["error"], lines[0]["hosts"]) == (f"exit 1: {MASK}", [MASK])
    assert lines[1]["message"] == f"said {MASK}"


def test_a_logged_traceback_is_masked_too(log_lines: io.StringIO) -> None:
    try:
        raise RuntimeError("health check said pl4nted-s3cret")
    except RuntimeError:
        logging.getLogger("reconciler.daemon").exception("job failed")
    line = json.loads(log_lines.getvalue().splitlines()[0])
    assert "pl4nted-s3cret" not in log_lines.getvalue()
    assert "Traceback" in line["error"] and f"RuntimeError: health check said {MASK}" in line[
        "error"]


def test_a_holder_keeps_the_newest_values_up_to_its_bound() -> None:
    held = Secrets()
    held.add(f"value-{n:05d}" for n in range(redact.MAX_VALUES + 10))
    assert len(held) == redact.MAX_VALUES
    assert held.redact("value-00000") == "value-00000"  # the oldest went first
    assert held.redact(f"value-{redact.MAX_VALUES + 9:05d}") == MASK
