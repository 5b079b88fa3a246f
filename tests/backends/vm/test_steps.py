"""Pure apply planning: few batches, no needless writes or restarts."""

from __future__ import annotations

import subprocess

from backends.vm import resources as res
from backends.vm.steps import Step, host_work, steps_script
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


def deletion(kind: str, name: str) -> Change:
    return Change(id=ResourceId(kind=kind, name=name), app="web", target="vm",
                  action=Action.DELETE, host="h")


def test_no_changes_means_no_work() -> None:
    assert host_work(app([CONF, SVC]), [], "/r", "h").empty


def test_a_file_with_the_right_content_is_not_uploaded_again() -> None:
    live = {"type": "file", "sha256": res.sha256(b"port=1\n"), "mode": "0600"}
    work = host_work(app([CONF]), [change(CONF, live=live)], "/r", "h")
    assert work.uploads == ()
    assert [s.command for s in work.finish] == ["chmod 0644 -- /r/etc/web.conf"]


def test_new_files_get_their_directory_and_one_upload() -> None:
    work = host_work(app([CONF]), [change(CONF, Action.CREATE)], "/r", "h")
    assert [u.path for u in work.uploads] == ["/r/etc/web.conf"]
    assert work.uploads[0].mode == 0o644
    assert "mkdir -p -- /r/etc" in work.prepare[0].command
    assert "port=1" not in repr(work)  # upload data stays out of logs


def test_restart_only_when_a_restart_on_file_changed() -> None:
    the_app = app([CONF, OTHER, SVC])
    touched = host_work(the_app, [change(CONF, live={"type": "file"})], "/r", "h")
    assert touched.restarted == ("web",)
    assert "stop-it" in touched.finish[-1].command and "start-it" in touched.finish[-1].command
    untouched = host_work(the_app, [change(OTHER, live={"type": "file"})], "/r", "h")
    assert untouched.restarted == ()
    assert all("start-it" not in s.command for s in untouched.finish)


def test_a_stopped_service_that_must_run_is_started_not_restarted() -> None:
    work = host_work(app([CONF, SVC]), [change(CONF, live={"type": "file"}), change(SVC)],
                     "/r", "h")
    assert work.restarted == ()
    assert work.finish[-1].command == "start-it"


def test_deletes_run_deepest_first_and_commands_are_only_forgotten() -> None:
    deletes = [
        deletion("Directory", "/srv/app"),
        deletion("File", "/srv/app/a/b.conf"),
        deletion("Command", "migrate"),
    ]
    work = host_work(app([]), deletes, "/r", "h")
    assert [s.description for s in work.finish] == [
        "delete File//srv/app/a/b.conf", "delete Directory//srv/app"]


def test_steps_script_stops_at_the_first_failure_and_names_it() -> None:
    steps = [Step(description="one", command="echo one"),
             Step(description="two", command="echo boom >&2; exit 4"),
             Step(description="three", command="echo three")]
    done = subprocess.run(["sh", "-c", steps_script(steps, {})], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["OK 0", "FAIL 1 4"]
    assert "boom" in done.stderr
