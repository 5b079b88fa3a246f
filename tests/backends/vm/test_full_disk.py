"""Writes on a full disk: a 1 MiB tmpfs as the root, on both transports.

A write that finds no space fails naming the host, the path and "no space left
on device", whatever the tool in between said (SFTP has no code for it and
answers a plain "Failure", dash's printf says "I/O error"), and the file that
was there is left as it was. Needs root to mount (skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.base import BackendContext
from backends.vm import VmBackend
from backends.vm import open as open_vm
from reconciler.errors import BackendError, TransportError
from tests.backends.vm.conftest import app, changes, resource, ssh_target, target
from tests.support.sshd import SshFleet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def mount_tmpfs(path: Path, size: str = "1m") -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True)


def fill(root: Path) -> None:
    """Leave no free block on the file system of `root` (as a growing log would)."""
    fd = os.open(root / "filler.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "small"
    mount_tmpfs(root)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


CONF = resource("File", "/etc/app.conf", content="port = 8081\n" * 100, mode="0644")
RECORDED = resource("Service", "svc", start="true", stop="true", status="false")


def _update_on_a_full_disk(backend: VmBackend, root: Path, host: str) -> None:
    (root / "etc").mkdir()
    (root / "etc/app.conf").write_text("port = 8080\n")
    the_app = app([CONF])
    todo = changes(backend.read_live(the_app.resources, {}), the_app)
    fill(root)
    with pytest.raises(TransportError) as caught:
        backend.apply(the_app, todo)
    assert str(caught.value) == (
        f"{host}: cannot write {root}/etc/app.conf: no space left on device")
    assert (root / "etc/app.conf").read_text() == "port = 8080\n"
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["app.conf"]


def test_a_full_disk_is_said_plainly_on_the_local_transport(small_root: Path,
                                                             tmp_path: Path) -> None:
    backend = open_vm(target(transport="local", root=str(small_root)),
                      BackendContext(data_dir=tmp_path / "data"))
    try:
        _update_on_a_full_disk(backend, small_root, "localhost")
    finally:
        backend.close()


def test_a_full_disk_is_said_plainly_over_sftp(
    ssh_fleet_factory: Callable[..., SshFleet], small_root: Path, tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(1)
    backend = open_vm(ssh_target(fleet, str(small_root)),
                      BackendContext(data_dir=tmp_path / "data"))
    try:
        _update_on_a_full_disk(backend, small_root, fleet.hosts[0].spec)
    finally:
        backend.close()


def test_a_step_that_finds_no_space_says_so(small_root: Path, tmp_path: Path) -> None:
    # The record a Service start writes goes through dash's printf: "I/O error".
    backend = open_vm(target(transport="local", root=str(small_root)),
                      BackendContext(data_dir=tmp_path / "data"))
    the_app = app([RECORDED])
    try:
        todo = changes(backend.read_live(the_app.resources, {}), the_app)
        fill(small_root)
        with pytest.raises(BackendError) as caught:
            backend.apply(the_app, todo)
    finally:
        backend.close()
    record = f"{small_root}/var/lib/reconciler/services/svc.json"
    assert str(caught.value) == (
        f"localhost: cannot write {record}: no space left on device "
        "(record how to stop Service svc)")


@pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo")
def test_a_full_disk_is_said_plainly_under_sudo(small_root: Path, tmp_path: Path) -> None:
    # Under sudo the upload is a shell `cat`, which says "write error: No space ...".
    backend = open_vm(target(transport="local", root=str(small_root), sudo=True),
                      BackendContext(data_dir=tmp_path / "data"))
    try:
        _update_on_a_full_disk(backend, small_root, "localhost")
    finally:
        backend.close()
