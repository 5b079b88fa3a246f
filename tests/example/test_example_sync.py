"""The bundled example, synced for real on this machine's local transport.

The example is copied into a fresh git repository (its HTTP port swapped for a
free one, so a running demo never clashes) and synced twice with the real CLI:
the first sync writes the files and starts a real HTTP service that passes its
health check; the second changes nothing at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# The example renders Kustomize and Helm apps with the real tools.
pytestmark = pytest.mark.usefixtures("render_tools")

EXAMPLE = Path(__file__).resolve().parents[2] / "desired-state-example"
PORT_IN_EXAMPLE = "18080"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def example(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    repo = tmp_path / "state"
    shutil.copytree(EXAMPLE, repo)
    port = _free_port()
    for path in repo.rglob("*"):
        if path.is_file() and PORT_IN_EXAMPLE in path.read_text():
            path.write_text(path.read_text().replace(PORT_IN_EXAMPLE, str(port)))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "example")
    yield repo, port
    pidfile = tmp_path / "work/.demo-root/var/run/demo-web/server.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def _sync(repo: Path, work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "sync", "--repo", str(repo), "--target", "laptop",
         "--data-dir", str(work / "data")],
        cwd=work, capture_output=True, text=True, timeout=120,
    )


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_example_deploys_then_a_second_sync_changes_nothing(
    example: tuple[Path, int], tmp_path: Path
) -> None:
    repo, port = example
    work = tmp_path / "work"
    work.mkdir()
    first = _sync(repo, work)
    assert first.returncode == 0, first.stderr
    root = work / ".demo-root"
    assert "greeting = Hello from the reconciler" in (root / "etc/demo/settings.ini").read_text()
    assert f"port = {port}" in (root / "etc/demo/web.conf").read_text()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
        assert page.status == 200
        assert page.read() == (root / "srv/web/index.html").read_bytes()
    pid = (root / "var/run/demo-web/server.pid").read_text().strip()
    before = _snapshot(root)

    second = _sync(repo, work)
    assert second.returncode == 0, second.stderr
    # No writes: every file keeps its inode and mtime (the pid file included,
    # so the service was neither restarted nor started again).
    assert _snapshot(root) == before
    assert (root / "var/run/demo-web/server.pid").read_text().strip() == pid
    os.kill(int(pid), 0)  # the same service process is still running
