"""Terminal progress: a status line rewritten in place on a TTY, plain lines otherwise."""

from __future__ import annotations

import io
from typing import Any

from reconciler.events import Event, EventKind
from reconciler.progress import Progress, describe


def _events() -> list[Event]:
    common: dict[str, Any] = {"deploy_id": 7, "revision": "0123456789abcdef", "timestamp": 0.0}
    web: dict[str, Any] = {"wave": 1, "app": "web", "target": "fleet", "hosts": ("h1", "h2")}
    return [
        Event(kind=EventKind.DEPLOY_STARTED, status="running", **common),
        Event(kind=EventKind.WAVE_STARTED, wave=1, status="running", **common),
        Event(kind=EventKind.BATCH_STARTED, status="running", message="batch 1", **web, **common),
        Event(kind=EventKind.HEALTH_CHECKED, status="Healthy", message="healthy", **web,
              **common),
        Event(kind=EventKind.APP_DONE, status="success", **web, **common),
        Event(kind=EventKind.DEPLOY_FINISHED, status="success", message="1 to create", **common),
    ]


def test_plain_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=False)
    for event in _events():
        progress(event)
    lines = out.getvalue().splitlines()
    assert len(lines) == 6 and "\r" not in out.getvalue()
    assert lines[2].endswith("web@fleet [h1 h2] applying (batch 1)")
    assert lines[-1].endswith("deploy #7 of 0123456789ab success: 1 to create")


def test_a_tty_rewrites_one_status_line_and_keeps_lasting_facts() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True)
    for event in _events()[:4]:
        progress(event)
    text = out.getvalue()
    assert text.count("\n") == 2  # deploy started, wave started
    assert text.endswith("\r\x1b[K  web@fleet [h1 h2] health Healthy: healthy")
    progress.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_every_event_kind_has_a_line() -> None:
    for kind in EventKind:
        line = describe(Event(kind=kind, deploy_id=1, revision="r", app="a", hosts=("h",) * 6))
        assert line
        assert "+2]" in line or "[" not in line  # long host lists are cut short
