"""What deletes and unguarded commands do on a real host (local transport): a
pruned Service is stopped by its record, a non-empty Directory is kept and
said to be, an unguarded Command runs once per change of its `run` text."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.vm import VmBackend, records
from backends.vm.live import kept_entries
from reconciler.model import Action, App, Change, ResourceId
from tests.backends.vm.conftest import app, changes, inventory_of, plan_for, resource

PID = "$RECONCILER_ROOT/run/worker.pid"
WORKER = resource(
    "Service", "worker", state="running",
    start=f'mkdir -p "$RECONCILER_ROOT/run"; sleep 300 & echo $! > "{PID}"',
    status=f'kill -0 "$(cat "{PID}")"',
    stop=f'kill "$(cat "{PID}")"; rm -f "{PID}"',
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of an exited shell may linger as a zombie until reaped.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _prune(backend: VmBackend, owned: dict[tuple[str, ResourceId], str]) -> list[Change]:
    plan = plan_for(backend.read_live([], owned), app([]))
    return [c for c in plan.changes() if c.action is Action.DELETE]


@pytest.fixture
def worker(local_backend: VmBackend, tmp_path: Path) -> Iterator[tuple[App, Path]]:
    the_app = app([WORKER])
    view = local_backend.read_live(the_app.resources, {})
    local_backend.apply(the_app, changes(view, the_app))
    pid_file = tmp_path / "root/run/worker.pid"
    yield the_app, pid_file
    if pid_file.exists():
        local_backend.transport("localhost").run(f"kill {pid_file.read_text().strip()}")


def test_a_pruned_service_is_stopped_by_the_record_written_when_it_started(
    local_backend: VmBackend, tmp_path: Path, worker: tuple[App, Path]
) -> None:
    the_app, pid_file = worker
    pid = int(pid_file.read_text())
    record = Path(records.service_record(str(tmp_path / "root"), "worker"))
    stop = records.stop_command(record.read_text(), "worker")
    assert stop is not None and 'kill "$(cat' in stop
    [delete] = _prune(local_backend, {("localhost", WORKER.id): "web"})
    assert "-stop: |" in delete.diff.splitlines()  # the plan says how it will stop
    result = local_backend.apply(the_app, [delete])
    assert result.applied == 1 and result.messages == ()
    assert _gone(pid)
    assert not record.exists() and not pid_file.exists()


def test_without_a_record_the_service_is_left_running_and_the_apply_says_so(
    local_backend: VmBackend, tmp_path: Path, worker: tuple[App, Path]
) -> None:
    the_app, pid_file = worker
    Path(records.service_record(str(tmp_path / "root"), "worker")).unlink()
    [delete] = _prune(local_backend, {("localhost", WORKER.id): "web"})
    assert "-on_delete: left running: no stop record" in delete.diff
    result = local_backend.apply(the_app, [delete])
    assert result.applied == 0
    assert result.messages == ("localhost: left Service worker running: no stop record "
                               "on the host",)
    assert _alive(int(pid_file.read_text()))


def test_a_non_empty_directory_is_kept_and_reported_in_plan_and_apply(
    local_backend: VmBackend, tmp_path: Path
) -> None:
    the_app = app([resource("Directory", "/srv/app"), resource("Directory", "/srv/app/sub"),
                   resource("File", "/srv/app/sub/a.conf", content="a\n"),
                   resource("Directory", "/srv/empty"),
                   resource("File", "/srv/empty/b.conf", content="b\n")])
    view = local_backend.read_live(the_app.resources, {})
    local_backend.apply(the_app, changes(view, the_app))
    (tmp_path / "root/srv/app/notes.txt").write_text("written by someone else\n")
    deletes = _prune(local_backend, dict(inventory_of(view, the_app)))
    by_name = {c.id.name: c for c in deletes}
    assert "-on_delete: kept: not empty (1 entry left)" in by_name["/srv/app"].diff
    # Emptied by this very prune: no note, they go.
    for name in ("/srv/app/sub", "/srv/empty"):
        assert "on_delete" not in by_name[name].diff, name
    result = local_backend.apply(app([]), deletes)
    assert result.messages == ("localhost: kept Directory /srv/app: not empty (the "
                               "reconciler never deletes files it does not manage)",)
    assert result.applied == len(deletes) - 1
    root = tmp_path / "root/srv"
    assert sorted(p.name for p in root.iterdir()) == ["app"]
    assert [p.name for p in (root / "app").iterdir()] == ["notes.txt"]


def test_kept_entries_counts_what_this_prune_removes_deepest_first() -> None:
    entries = {"/r/a": 2, "/r/a/b": 1, "/r/c": 1}
    assert kept_entries(entries, {"/r/a/b", "/r/a/b/x", "/r/c/y"}) == {
        "/r/a/b": 0, "/r/a": 1, "/r/c": 0}
    assert kept_entries(entries, {"/r/a/b"}) == {"/r/a/b": 1, "/r/a": 2, "/r/c": 1}


def test_an_unguarded_command_runs_once_per_change_of_its_run_text(
    local_backend: VmBackend, tmp_path: Path
) -> None:
    log = tmp_path / "root/log"

    def sync(run: str) -> list[Change]:
        the_app = app([resource("Command", "seed", run=run)])
        todo = changes(local_backend.read_live(the_app.resources, {}), the_app)
        if todo:
            local_backend.apply(the_app, todo)
        return todo

    first = 'echo v1 >> "$RECONCILER_ROOT/log"'
    assert [c.action for c in sync(first)] == [Action.CREATE]
    assert sync(first) == []  # recorded: no second run, even without the inventory
    assert log.read_text() == "v1\n"
    second = 'echo v2 >> "$RECONCILER_ROOT/log"; exit 0'
    [update] = sync(second)
    assert update.action is Action.UPDATE and update.live is not None
    assert update.live["run_sha256"] == records.run_hash(first)
    assert sync(second) == []
    assert log.read_text() == "v1\nv2\n"
    failing = "echo v3 >> \"$RECONCILER_ROOT/log\"; exit 5"
    with pytest.raises(Exception, match="run Command seed failed"):
        sync(failing)
    with pytest.raises(Exception, match="run Command seed failed"):
        sync(failing)  # not recorded after a failure, so it is tried again
    assert log.read_text() == "v1\nv2\nv3\nv3\n"


def test_a_pruned_command_forgets_its_record_so_adding_it_back_runs_it(
    local_backend: VmBackend, tmp_path: Path
) -> None:
    cmd = resource("Command", "seed", run='echo x >> "$RECONCILER_ROOT/log"')
    the_app = app([cmd])
    local_backend.apply(the_app, changes(local_backend.read_live([cmd], {}), the_app))
    [delete] = _prune(local_backend, {("localhost", cmd.id): "web"})
    local_backend.apply(app([]), [delete])
    assert not Path(records.command_record(str(tmp_path / "root"), "seed")).exists()
    assert [c.action for c in changes(local_backend.read_live([cmd], {}), the_app)] == [
        Action.CREATE]
