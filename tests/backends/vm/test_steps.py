"""Pure apply planning: few batches, no needless writes or restarts, a guard
before the first write, records of what a prune will need."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from backends.vm import records
from backends.vm import resources as res
from backends.vm.steps import Step, guard_step, host_work, steps_script
from reconciler.model import Action, Change, Resource, ResourceId
from tests.backends.vm.conftest import app, resource

CONF = resource("File", "/etc/web.conf", content="port=1\n", mode="0644")
OTHER = resource("File", "/etc/other.conf", content="x\n")
SVC = resource("Service", "web", start="start-it", stop="stop-it", status="status-it",
               restart_on=["/etc/web.conf"])


def change(r: Resource, action: Action = Action.UPDATE,
           live: dict[str, str] | None = None) -> Change:
    return Change(id=r.id, app="web", target="vm", action=action, host="h", resource=r,
                  live=live)


def deletion(kind: str, name: str, live: dict[str, str] | None = None) -> Change:
    return Change(id=ResourceId(kind=kind, name=name), app="web", target="vm",
                  action=Action.DELETE, host="h", live=live)


def writes(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if s.write]


def named(steps: Sequence[Step], description: str) -> Step:
    return next(s for s in steps if s.description == description)


def test_no_changes_means_no_work() -> None:
    assert host_work(app([CONF, SVC]), [], "/r", "h").empty


def test_a_file_with_the_right_content_is_not_uploaded_again() -> None:
    live = {"type": "file", "sha256": res.sha256(b"port=1\n"), "mode": "0600"}
    work = host_work(app([CONF]), [change(CONF, live=live)], "/r", "h")
    assert work.uploads == ()
    assert [s.command for s in writes(work.finish)] == ["chmod 0644 -- /r/etc/web.conf"]


def test_new_files_get_their_directory_and_one_upload() -> None:
    work = host_work(app([CONF]), [change(CONF, Action.CREATE)], "/r", "h")
    assert [u.path for u in work.uploads] == ["/r/etc/web.conf"]
    assert work.uploads[0].mode == 0o644
    assert "mkdir -p -- /r/etc" in writes(work.prepare)[0].command
    assert "port=1" not in repr(work)  # upload data stays out of logs


def test_restart_only_when_a_restart_on_file_changed() -> None:
    the_app = app([CONF, OTHER, SVC])
    touched = host_work(the_app, [change(CONF, live={"type": "file"})], "/r", "h")
    assert touched.restarted == ("web",)
    restart = named(touched.finish, "restart Service web").command
    assert "stop-it" in restart and "start-it" in restart
    untouched = host_work(the_app, [change(OTHER, live={"type": "file"})], "/r", "h")
    assert untouched.restarted == ()
    assert all("start-it" not in s.command for s in untouched.finish)


def test_a_stopped_service_that_must_run_is_started_not_restarted() -> None:
    work = host_work(app([CONF, SVC]), [change(CONF, live={"type": "file"}), change(SVC)],
                     "/r", "h")
    assert work.restarted == ()
    assert named(work.finish, "start Service web").command == "start-it"


def test_deletes_run_deepest_first_and_commands_are_only_forgotten() -> None:
    deletes = [
        deletion("Directory", "/srv/app"),
        deletion("File", "/srv/app/a/b.conf"),
        deletion("Command", "migrate"),
    ]
    work = host_work(app([]), deletes, "/r", "h")
    assert [s.description for s in writes(work.finish)] == [
        "delete File:/srv/app/a/b.conf", "delete Directory:/srv/app", "delete Command/migrate"]
    forget = named(work.finish, "delete Command/migrate").command
    assert forget == f"rm -f -- {records.command_record('/r', 'migrate')}"
    # Only the directory's own step may print a note: user commands never get fd 3.
    assert [s.description for s in work.finish if s.notes] == ["delete Directory:/srv/app"]


def test_steps_script_stops_at_the_first_failure_and_names_it() -> None:
    steps = [Step(description="one", command="echo one"),
             Step(description="two", command="echo boom >&2; exit 4"),
             Step(description="three", command="echo three")]
    done = subprocess.run(["sh", "-c", steps_script(steps, {})], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1
    said = done.stdout.splitlines()
    assert said[:2] == ["OK 0", "FAIL 1 4"]
    # Then the room left under the root: bytes available and free inodes.
    assert len(said) == 3 and said[2].startswith("SPACE ")
    assert all(word.isdigit() for word in said[2].split()[1:3])
    assert "boom" in done.stderr


def test_the_guard_runs_before_the_first_write_and_not_under_slash() -> None:
    upload = host_work(app([CONF]), [change(CONF, live={"type": "file"})], "/r", "h")
    assert [s.write for s in upload.prepare] == [False]  # before the upload, alone
    assert all(s.write for s in upload.finish)
    chmod_only = host_work(
        app([CONF]), [change(CONF, live={"type": "file", "sha256": res.sha256(b"port=1\n")})],
        "/r", "h")
    assert chmod_only.prepare == () and not chmod_only.finish[0].write
    assert "/r/etc 'File /etc/web.conf'" in chmod_only.finish[0].command
    at_slash = host_work(app([CONF]), [change(CONF, live={"type": "file"})], "/", "h")
    assert at_slash.prepare == ()


def _written(step: Step) -> str:
    """The one line a record-writing step writes (printf '%s\\n' LINE > tmp)."""
    words = shlex.split(step.command)
    return words[words.index("%s\\n") + 1]


def test_a_service_step_records_how_to_stop_it_with_host_resolved() -> None:
    svc = resource("Service", "web", start="start {host}", stop="stop {host}",
                   status="status {host}")
    work = host_work(app([svc]), [change(svc, Action.CREATE)], "/r", "web-1")
    step = named(work.finish, "record how to stop Service web")
    assert records.service_record("/r", "web") in step.command
    written = _written(step)
    assert json.loads(written)["app"] == "web"
    assert records.stop_command(written, "web") == (
        "if ( status web-1\n) >/dev/null 2>&1; then stop web-1\nfi")
    assert records.stop_command(written, "other") is None  # a record of another service
    unit = resource("Service", "db", unit="postgresql.service")
    work = host_work(app([unit]), [change(unit, Action.CREATE)], "/r", "h")
    assert "postgresql.service" in named(work.finish, "record how to stop Service db").command


def test_an_unguarded_command_records_its_run_text_only_after_success() -> None:
    cmd = resource("Command", "seed", run="seed --host {host}")
    step = named(host_work(app([cmd]), [change(cmd, Action.CREATE)], "/r", "h1").finish,
                 "run Command seed")
    assert step.command.startswith("( seed --host h1\n) && mkdir -p")
    assert records.run_hash("seed --host h1") in step.command
    guarded = resource("Command", "once", run="x", creates="/done")
    step = named(host_work(app([guarded]), [change(guarded, Action.CREATE)], "/r", "h").finish,
                 "run Command once")
    assert step.command == "x"


def test_pruned_services_stop_by_their_record_or_say_they_were_left() -> None:
    work = host_work(app([]), [deletion("Service", "web", live={"stop": "kill-it"}),
                               deletion("Service", "old", live={"on_delete": "left"})],
                     "/r", "h")
    stop = named(work.finish, "delete Service/web")
    assert stop.command == f"( kill-it\n) && rm -f -- {records.service_record('/r', 'web')}"
    assert not stop.notes
    left = named(work.finish, "delete Service/old")
    assert left.notes and "NOTE left Service old running" in left.command


def _run(steps: Sequence[Step]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", steps_script(steps, {})], capture_output=True,
                          text=True, check=False)


def test_the_guard_refuses_a_parent_symlink_that_leaves_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "srv").mkdir(parents=True)
    outside.mkdir()
    (root / "etc").symlink_to(outside)
    (root / "srv/inner").symlink_to(root / "srv")  # a link that stays inside is fine
    ok = _run([guard_step(str(root), {f"{root}/srv/inner/x": "File /srv/inner/x/y"})])
    assert ok.returncode == 0, ok.stderr
    bad = _run([guard_step(str(root), {f"{root}/srv": "File /srv/a",
                                       f"{root}/etc": "File /etc/x"})])
    assert bad.stdout.splitlines()[0] == "FAIL 0 1"
    assert f"File /etc/x: {root}/etc leads outside the root through a symlink (to {outside})" \
        in bad.stderr
    assert "File /srv/a" not in bad.stderr


def test_a_kept_directory_leaves_a_note_and_the_script_goes_on(tmp_path: Path) -> None:
    full, empty = tmp_path / "full", tmp_path / "empty"
    full.mkdir()
    empty.mkdir()
    (full / "unmanaged.txt").write_text("x")
    work = host_work(app([]), [deletion("Directory", "/full"), deletion("Directory", "/empty")],
                     str(tmp_path), "h")
    done = _run(work.finish)
    assert done.returncode == 0, done.stderr
    assert "NOTE kept Directory /full: not empty" in done.stdout
    assert full.exists() and not empty.exists()
