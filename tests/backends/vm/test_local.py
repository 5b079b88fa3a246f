"""The local transport end to end: real files under a temporary root, a real
HTTP service started by its own start/status/stop commands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.vm import VmBackend
from backends.vm import resources as res
from reconciler.errors import BackendError
from reconciler.model import (
    Action,
    App,
    Change,
    CheckKind,
    HealthStatus,
    Resource,
    ResourceId,
)
from tests.backends.vm.conftest import app, changes, check, free_port, inventory_of, resource


def test_files_dirs_and_symlinks_converge_and_a_second_read_is_clean(
    local_backend: VmBackend, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    the_app = app([
        resource("Directory", "/etc/app", mode="0750"),
        resource("File", "/etc/app/my app.conf", content="name = web\n", mode="0640"),
        resource("File", "/opt/app/blob.bin", content=b"\x00\xffdata"),
        resource("Symlink", "/etc/app/current", target="my app.conf"),
        resource("Command", "init", run='touch "$RECONCILER_ROOT/inited"', creates="/inited"),
    ])
    first = local_backend.read_live(the_app.resources, {})
    todo = changes(first, the_app)
    assert {c.action for c in todo} == {Action.CREATE} and len(todo) == 5
    result = local_backend.apply(the_app, todo)
    assert result.applied >= 5
    assert (root / "etc/app/my app.conf").read_text() == "name = web\n"
    assert (root / "etc/app/my app.conf").stat().st_mode & 0o7777 == 0o640
    assert (root / "etc/app").stat().st_mode & 0o7777 == 0o750
    assert (root / "opt/app/blob.bin").read_bytes() == b"\x00\xffdata"
    assert (root / "etc/app/current").readlink() == Path("my app.conf")
    assert (root / "inited").exists()
    second = local_backend.read_live(the_app.resources, inventory_of(first, the_app))
    assert changes(second, the_app) == []
    assert all(live.owner_app == "web" for live in second.live.values())


def test_drift_is_seen_and_only_the_drifted_file_is_rewritten(
    local_backend: VmBackend, tmp_path: Path
) -> None:
    conf = resource("File", "/etc/a.conf", content="a\n", mode="0644")
    keep = resource("File", "/etc/b.conf", content="b\n")
    the_app = app([conf, keep])
    local_backend.apply(the_app, changes(local_backend.read_live(the_app.resources, {}),
                                         the_app))
    (tmp_path / "root/etc/a.conf").write_text("edited by hand\n")
    before = (tmp_path / "root/etc/b.conf").stat().st_mtime_ns
    todo = changes(local_backend.read_live(the_app.resources, {}), the_app)
    assert [(c.id.name, c.action) for c in todo] == [("/etc/a.conf", Action.UPDATE)]
    assert todo[0].live is not None and todo[0].live["sha256"] == res.sha256(b"edited by hand\n")
    local_backend.apply(the_app, todo)
    assert (tmp_path / "root/etc/a.conf").read_text() == "a\n"
    assert (tmp_path / "root/etc/b.conf").stat().st_mtime_ns == before


def test_owned_leftovers_are_reported_and_deleted(local_backend: VmBackend,
                                                  tmp_path: Path) -> None:
    old = tmp_path / "root/etc/old.conf"
    old.parent.mkdir(parents=True)
    old.write_text("x")
    rid = ResourceId(kind="File", name="/etc/old.conf")
    view = local_backend.read_live([], {("localhost", rid): "web"})
    live = view.live[("localhost", rid)]
    assert live.owner_app == "web" and live.state["type"] == "file"
    gone = Change(id=rid, app="web", target="vm", action=Action.DELETE, host="localhost")
    assert local_backend.apply(app([]), [gone]).applied == 1
    assert not old.exists()


def test_a_failing_step_names_host_and_resource(local_backend: VmBackend,
                                                tmp_path: Path) -> None:
    (tmp_path / "root/etc").mkdir(parents=True)
    (tmp_path / "root/etc/blocker").write_text("a file, not a directory")
    below = resource("Directory", "/etc/blocker/conf.d")
    with pytest.raises(BackendError, match=r"localhost: make Directory /etc/blocker/conf.d"):
        local_backend.apply(app([below]), changes(local_backend.read_live([below], {}),
                                                  app([below])))
    assert (tmp_path / "root/etc/blocker").read_text() == "a file, not a directory"
    bad = resource("Command", "migrate", run="echo 'no database' >&2; exit 3")
    with pytest.raises(BackendError, match=r"localhost: run Command migrate failed \(exit 3\)"
                                           r".*no database"):
        local_backend.apply(app([bad]), changes(local_backend.read_live([bad], {}), app([bad])))


def test_escaping_paths_are_refused_before_anything_runs(local_backend: VmBackend,
                                                         tmp_path: Path) -> None:
    evil = resource("File", "/../../../../etc/passwd-reconciler-test", content="x")
    with pytest.raises(BackendError, match="escapes the root"):
        local_backend.read_live([evil], {})
    change = Change(id=evil.id, app="web", target="vm", action=Action.CREATE,
                    host="localhost", resource=evil)
    with pytest.raises(BackendError, match="escapes the root"):
        local_backend.apply(app([evil]), [change])
    assert not Path("/etc/passwd-reconciler-test").exists()


# --- a real service ---------------------------------------------------------


def _service(port: int) -> list[Resource]:
    pid = "$RECONCILER_ROOT/run/web.pid"
    stop = (
        f'p=$(cat "{pid}"); kill "$p"; i=0; while [ $i -lt 50 ] && kill -0 "$p" 2>/dev/null '
        f"&& ! grep -q '^State:.*Z' /proc/$p/status 2>/dev/null; do sleep 0.1; "
        f'i=$((i+1)); done; rm -f "{pid}"'
    )
    return [
        resource("File", "/srv/web/index.html", content="hello\n"),
        resource("File", "/etc/web.conf", content="workers = 1\n"),
        resource("Directory", "/run"),
        resource(
            "Service", "web", state="running", restart_on=["/etc/web.conf"],
            start=(f"python3 -m http.server {port} --bind 127.0.0.1 "
                   f'--directory "$RECONCILER_ROOT/srv/web" & echo $! > "{pid}"'),
            status=f'kill -0 "$(cat "{pid}")"', stop=stop,
        ),
    ]


def _healthy(backend: VmBackend, the_app: App) -> HealthStatus:
    deadline = time.monotonic() + 10
    status = HealthStatus.UNKNOWN
    while time.monotonic() < deadline:  # the engine's retry loop, in small
        status = backend.health(the_app, ["localhost"]).status
        if status is HealthStatus.HEALTHY:
            break
        time.sleep(0.1)
    return status


@pytest.fixture
def web(local_backend: VmBackend, tmp_path: Path) -> Iterator[tuple[VmBackend, int, Path]]:
    port = free_port()
    yield local_backend, port, tmp_path / "root"
    pid = tmp_path / "root/run/web.pid"
    if pid.exists():
        local_backend.transport("localhost").run(f"kill {pid.read_text().strip()}")


def test_service_starts_passes_health_and_restarts_only_on_its_files(
    web: tuple[VmBackend, int, Path]
) -> None:
    backend, port, root = web
    resources = _service(port)
    the_app = app(resources, health=[
        check(CheckKind.HTTP, url=f"http://{{host}}:{port}/index.html", status=200),
        check(CheckKind.TCP, port=port, host="127.0.0.1"),
        check(CheckKind.COMMAND, run='test -s "$RECONCILER_ROOT/run/web.pid"'),
    ])
    backend.apply(the_app, changes(backend.read_live(the_app.resources, {}), the_app))
    assert _healthy(backend, the_app) is HealthStatus.HEALTHY
    first_pid = (root / "run/web.pid").read_text()

    view = backend.read_live(the_app.resources, {})
    assert view.live[("localhost", resources[3].id)].state == {"state": "running"}
    assert changes(view, the_app) == []
    assert backend.apply(the_app, []).applied == 0
    assert (root / "run/web.pid").read_text() == first_pid

    changed = [resources[0], resource("File", "/etc/web.conf", content="workers = 2\n"),
               *resources[2:]]
    new_app = app(changed, health=the_app.health)
    todo = changes(backend.read_live(new_app.resources, {}), new_app)
    assert [c.id.name for c in todo] == ["/etc/web.conf"]
    result = backend.apply(new_app, todo)
    assert result.restarted == ("localhost: web",)
    assert (root / "run/web.pid").read_text() != first_pid
    assert _healthy(backend, new_app) is HealthStatus.HEALTHY


def test_health_reports_each_failing_check(web: tuple[VmBackend, int, Path]) -> None:
    backend, port, _ = web
    the_app = app([], health=[
        check(CheckKind.HTTP, url=f"http://{{host}}:{port}/", status=200),
        check(CheckKind.COMMAND, run="echo not ready; exit 1"),
    ])
    report = backend.health(the_app, ["localhost"])
    assert report.status is HealthStatus.DEGRADED
    assert report.hosts == {"localhost": HealthStatus.DEGRADED}
    assert f"localhost: GET http://localhost:{port}/ failed" in report.message
    assert "exited 1 not ready" in report.message
