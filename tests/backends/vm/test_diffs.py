"""Readable diffs of VM files through reconciler.plan: changed text files show
their lines, at the price of one more command only when some file differs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backends.base import BackendContext
from backends.vm import VmBackend
from backends.vm import open as open_vm
from backends.vm import resources as res
from backends.vm.content import LIMIT
from reconciler.model import Action
from tests.backends.vm.conftest import app, changes, plan_for, resource, ssh_target
from tests.support.sshd import SshFleet

Factory = Callable[..., SshFleet]

CONF = resource("File", "/etc/web.conf", content="[web]\nport = 8080\nworkers = 4\n")
TOKEN = resource("File", "/etc/token", content="hunter2\n", secret=True)
BLOB = resource("File", "/opt/blob.bin", content=b"\x00\xff\x01binary")
BIG = resource("File", "/opt/big.txt", content="y" * (LIMIT + 1))
SAME = resource("File", "/etc/same.conf", content="unchanged\n")
APP = app([CONF, TOKEN, BLOB, BIG, SAME])


def _runs(backend: VmBackend, host: str = "localhost") -> int:
    return backend.transport(host).calls["run"]


def test_a_changed_text_file_diffs_line_by_line_and_others_stay_hash_only(
    local_backend: VmBackend, tmp_path: Path
) -> None:
    local_backend.apply(APP, changes(local_backend.read_live(APP.resources, {}), APP))
    root = tmp_path / "root"
    (root / "etc/web.conf").write_text("[web]\nport = 9090\nworkers = 4\n")
    (root / "etc/token").write_text("hunter3\n")
    (root / "opt/blob.bin").write_bytes(b"\x00\xfe")
    (root / "opt/big.txt").write_text("z" * (LIMIT + 1))
    before = _runs(local_backend)
    view = local_backend.read_live(APP.resources, {})
    assert _runs(local_backend) - before == 2  # the facts, then one read of changed files
    plan = plan_for(view, APP)
    by_name = {c.id.name: c for c in plan.changes()}
    assert sorted(by_name) == ["/etc/token", "/etc/web.conf", "/opt/big.txt", "/opt/blob.bin"]
    conf = by_name["/etc/web.conf"]
    assert conf.action is Action.UPDATE
    assert "-  port = 9090" in conf.diff.splitlines()
    assert "+  port = 8080" in conf.diff.splitlines()
    assert "   workers = 4" in conf.diff.splitlines()  # context, not a change
    assert conf.live is not None and conf.desired is not None
    assert conf.live["content"] == "[web]\nport = 9090\nworkers = 4\n"
    assert conf.desired["content"] == CONF.body["content"]
    for name in ("/etc/token", "/opt/blob.bin", "/opt/big.txt"):
        change = by_name[name]
        assert change.live is not None and change.desired is not None
        assert "content" not in change.live and "content" not in change.desired, name
    assert "hunter" not in repr(plan)
    assert view.desired[("localhost", SAME.id)] == view.live[("localhost", SAME.id)].state


def test_a_no_op_reads_nothing_more_and_a_new_file_shows_its_lines(
    local_backend: VmBackend,
) -> None:
    first = local_backend.read_live(APP.resources, {})
    assert _runs(local_backend) == 1
    created = {c.id.name: c for c in plan_for(first, APP).changes()}
    assert "+  port = 8080" in created["/etc/web.conf"].diff.splitlines()
    assert "hunter2" not in created["/etc/token"].diff
    local_backend.apply(APP, changes(first, APP))
    before = _runs(local_backend)
    again = local_backend.read_live(APP.resources, {})
    assert plan_for(again, APP).empty
    assert _runs(local_backend) - before == 1
    assert all("content" not in form for form in again.desired.values())


def test_over_ssh_only_the_host_with_a_changed_file_pays_the_read(
    ssh_fleet_factory: Factory, tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(2)
    changed, clean = (h.spec for h in fleet.hosts)
    backend = open_vm(ssh_target(fleet, f"{tmp_path}/{{host}}"),
                      BackendContext(data_dir=tmp_path / "data"))
    the_app = app([CONF, SAME])
    try:
        backend.apply(the_app, changes(backend.read_live(the_app.resources, {}), the_app))
        (tmp_path / fleet.hosts[0].address / "etc/web.conf").write_text("port = 1\n")
        before = {h: _runs(backend, h) for h in (changed, clean)}
        plan = plan_for(backend.read_live(the_app.resources, {}), the_app)
        assert {h: _runs(backend, h) - before[h] for h in before} == {changed: 2, clean: 1}
        [change] = plan.changes()
        assert change.host == changed and "-  port = 1" in change.diff.splitlines()
        assert change.live is not None and change.live["sha256"] == res.sha256(b"port = 1\n")
    finally:
        backend.close()
