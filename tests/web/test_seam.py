"""The daemon<->web seam: the daemon is a `DaemonView`, at run time and for mypy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.service import Daemon
from reconciler.web import wiring
from reconciler.web.seam import DaemonView
from tests.web.staterepo import StateRepo

ROOT = Path(__file__).resolve().parents[2]


def test_a_daemon_is_a_daemon_view_and_the_page_reads_it(
    tmp_path: Path, state_repo: StateRepo
) -> None:
    config = DaemonConfig(repo=str(state_repo.path), branch="main", poll_interval=3600,
                          drift_interval=0)
    daemon = Daemon(config, tmp_path / "daemon-data")
    try:
        assert isinstance(daemon, DaemonView)
        app = wiring.daemon_app(daemon, environ={})
        assert app.source.branch == "main" and app.source.history is daemon.history
        assert app.source.hooks.head() is None  # nothing fetched yet
        assert app.source.hooks.leader() is None  # election off
    finally:
        daemon.engine.close()


def test_an_object_short_of_the_seam_is_not_a_daemon_view() -> None:
    class Half:
        engine = config = history = data_dir = events = worker = None

        def snapshot(self) -> None: ...
        def unready_reason(self) -> None: ...

    assert not isinstance(Half(), DaemonView)  # no on_webhook


def _mypy(tmp_path: Path, body: str) -> tuple[int, list[str]]:
    source = tmp_path / "seam_check.py"
    source.write_text(textwrap.dedent(body))
    out, _, status = mypy_api.run([
        "--strict", "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(ROOT / ".mypy_cache"), str(source)])
    return status, [line for line in out.splitlines() if "seam_check.py" in line]


def test_mypy_accepts_the_daemon_as_the_seam(tmp_path: Path) -> None:
    status, errors = _mypy(tmp_path, """\
        from reconciler.daemon.service import Daemon
        from reconciler.web.seam import DaemonView


        def view(daemon: Daemon) -> DaemonView:
            return daemon
        """)
    assert (status, errors) == (0, [])


@pytest.mark.parametrize("change", [
    "def on_webhook(self, trigger: str) -> None: ...",  # the wrong argument type
    "def unready_reason(self) -> bool: ...",  # the wrong answer type
])
def test_mypy_refuses_a_daemon_that_breaks_the_seam(tmp_path: Path, change: str) -> None:
    status, errors = _mypy(tmp_path, f"""\
        from reconciler.daemon.service import Daemon
        from reconciler.web.seam import DaemonView


        class Broken(Daemon):
            {change}  # type: ignore[override]


        def view(daemon: Broken) -> DaemonView:
            return daemon
        """)
    assert status == 1 and any("DaemonView" in e for e in errors), errors
