"""Hosts with thousands of managed paths, on both transports.

Each host manages 5,000 Files in 50 folders. Most already hold the right
bytes; 1,000 have the wrong mode (one large finish script of chmod steps) and
50 the wrong content (a batched read of their text, then uploads). The fact
script of such a host is far larger than one argument may be (128 KiB on
Linux), so these tests prove that scripts travel on stdin: the read is still
one command per host, and the second read finds nothing to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from backends.base import BackendContext
from backends.vm import VmBackend
from backends.vm import open as open_vm
from backends.vm.facts import FactRequest, fact_script
from backends.vm.resources import sha256
from backends.vm.steps import host_work, steps_script
from backends.vm.transport import LocalTransport
from reconciler.model import Action, App, Change
from tests.backends.vm.conftest import app, changes, inventory_of, resource, ssh_target, target
from tests.support.sshd import SshFleet

COUNT = 5_000
WRONG_MODE = range(0, COUNT, 5)  # 1,000 files
WRONG_CONTENT = range(1, COUNT, 100)  # 50 files


def _name(i: int) -> str:
    return f"/srv/data/d{i // 100:02d}/file-{i:05d}.txt"


def _content(i: int) -> str:
    return f"record {i}\n"


BIG = app([resource("File", _name(i), content=_content(i), mode="0640") for i in range(COUNT)])


def _seed(root: Path) -> None:
    """What the host holds before the sync: most files right, some not."""
    for i in range(COUNT):
        path = root / _name(i).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("stale\n" if i in WRONG_CONTENT else _content(i))
        os.chmod(path, 0o600 if i in WRONG_MODE else 0o640)


def _converge(backend: VmBackend, hosts: list[str], roots: dict[str, Path], the_app: App
              ) -> None:
    first = backend.read_live(the_app.resources, {})
    # The facts, plus one batched read of the changed files' text for the diff.
    assert {h: backend.transport(h).calls["run"] for h in hosts} == dict.fromkeys(hosts, 2)
    todo = changes(first, the_app)
    assert {c.action for c in todo} == {Action.UPDATE}
    assert len(todo) == len(hosts) * (len(WRONG_MODE) + len(WRONG_CONTENT))
    stale = next(c for c in todo if c.id.name == _name(1))
    assert stale.live is not None and stale.live["content"] == "stale\n"
    result = backend.apply(the_app, todo)
    assert result.applied == len(todo)
    for root in roots.values():
        assert (root / _name(1).lstrip("/")).read_text() == _content(1)
        assert (root / _name(0).lstrip("/")).stat().st_mode & 0o777 == 0o640
    before = {h: backend.transport(h).calls["run"] for h in hosts}
    again = backend.read_live(the_app.resources, inventory_of(first, the_app))
    assert changes(again, the_app) == []
    assert len(again.live) == len(hosts) * COUNT
    after = {h: backend.transport(h).calls["run"] for h in hosts}
    assert {h: after[h] - before[h] for h in hosts} == dict.fromkeys(hosts, 1)


def test_the_scripts_of_such_a_host_exceed_one_argument() -> None:
    # The premise of the tests below: as one `sh -c` argument these would fail.
    request = FactRequest(paths=tuple(f"/r{_name(i)}" for i in range(COUNT)), root="/r",
                          contained=tuple(f"/r/srv/data/d{d:02d}" for d in range(50)))
    assert len(fact_script(request).encode()) > 128 * 1024
    by_name = {r.id.name: r for r in BIG.resources}
    todo = [Change(id=by_name[_name(i)].id, app="web", target="vm", action=Action.UPDATE,
                   host="h", resource=by_name[_name(i)],
                   live={"type": "file", "sha256": sha256(_content(i).encode()),
                         "mode": "0600"}) for i in WRONG_MODE]
    work = host_work(BIG, todo, "/r", "h")
    assert len(work.finish) >= len(WRONG_MODE) and not work.uploads
    assert len(steps_script(work.finish, {}, "/r").encode()) > 128 * 1024


def test_5000_files_on_the_local_transport(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _seed(root)
    backend = open_vm(target(transport="local", root=str(root)),
                      BackendContext(data_dir=tmp_path / "data"))
    try:
        _converge(backend, ["localhost"], {"localhost": root}, BIG)
    finally:
        backend.close()


def test_5000_files_per_host_over_ssh(
    ssh_fleet_factory: Callable[..., SshFleet], tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(2)
    roots = {h.spec: tmp_path / h.address for h in fleet.hosts}
    for root in roots.values():
        _seed(root)
    backend = open_vm(ssh_target(fleet, f"{tmp_path}/{{host}}"),
                      BackendContext(data_dir=tmp_path / "data"))
    try:
        _converge(backend, list(roots), roots, BIG)
    finally:
        backend.close()


def test_a_command_in_a_script_cannot_read_the_rest_of_it(
    ssh_fleet_factory: Callable[..., SshFleet], tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(1)
    local = LocalTransport()
    backend = open_vm(ssh_target(fleet, str(tmp_path)),
                      BackendContext(data_dir=tmp_path / "data"))
    script = "cat\necho after\n" + "# padding\n" * 20_000  # 200 KB: larger than one argument
    try:
        for transport in (local, backend.transport(fleet.hosts[0].spec)):
            result = transport.run(script)
            assert (result.exit, result.stdout) == (0, "after\n")
    finally:
        backend.close()
