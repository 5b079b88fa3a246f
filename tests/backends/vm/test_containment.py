"""VM paths cannot escape the root through a symlink that already exists on the
host: reads refuse before anything outside is read, applies before anything is
written, on the local transport and over real sshd."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backends.base import BackendContext
from backends.vm import VmBackend
from backends.vm import open as open_vm
from reconciler.errors import BackendError
from reconciler.model import Action, Change, Resource, ResourceId
from tests.backends.vm.conftest import app, changes, resource, ssh_target, target
from tests.support.sshd import SshFleet

Factory = Callable[..., SshFleet]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the root that `<root>/etc` leads to."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "keep.conf").write_text("not ours\n")
    (place / "keep.conf").chmod(0o644)
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "etc").symlink_to(place)
    return place


def _create(r: Resource) -> Change:
    return Change(id=r.id, app="web", target="vm", action=Action.CREATE, host="localhost",
                  resource=r)


def test_reads_refuse_a_parent_symlink_that_leaves_the_root(
    local_backend: VmBackend, outside: Path, tmp_path: Path
) -> None:
    conf = resource("File", "/etc/app.conf", content="x\n")
    with pytest.raises(BackendError, match=(
            rf"localhost: File /etc/app.conf: {tmp_path}/root/etc leads outside the root "
            rf".* through a symlink \(to {outside}\)")):
        local_backend.read_live([conf], {})
    # An owned file that a prune would delete is refused the same way.
    with pytest.raises(BackendError, match=r"File /etc/keep\.conf: .* leads outside the root"):
        local_backend.read_live([], {("localhost", ResourceId(kind="File",
                                                             name="/etc/keep.conf")): "web"})


def test_applies_refuse_before_writing_even_without_a_fresh_read(
    local_backend: VmBackend, outside: Path
) -> None:
    conf = resource("File", "/etc/app.conf", content="x\n")
    with pytest.raises(BackendError, match=(
            r"localhost: check that no path leads outside the root failed \(exit 1\): "
            r"File /etc/app.conf: .*/root/etc leads outside the root through a symlink")):
        local_backend.apply(app([conf]), [_create(conf)])
    mode_only = resource("Directory", "/etc", mode="0700")
    with pytest.raises(BackendError, match=r"Directory /etc: .* leads outside the root"):
        local_backend.apply(app([mode_only]), [_create(mode_only)])
    gone = Change(id=ResourceId(kind="File", name="/etc/keep.conf"), app="web", target="vm",
                  action=Action.DELETE, host="localhost")
    with pytest.raises(BackendError, match=r"File /etc/keep\.conf: .* leads outside the root"):
        local_backend.apply(app([]), [gone])
    assert sorted(p.name for p in outside.iterdir()) == ["keep.conf"]
    assert (outside / "keep.conf").read_text() == "not ours\n"
    assert outside.stat().st_mode & 0o777 != 0o700


def test_symlinks_that_stay_inside_and_a_symlinked_root_are_fine(tmp_path: Path) -> None:
    real = tmp_path / "real-root"
    (real / "releases/v1").mkdir(parents=True)
    (real / "current").symlink_to("releases/v1")
    (tmp_path / "root-link").symlink_to(real)
    backend = open_vm(target(transport="local", root=str(tmp_path / "root-link")),
                      BackendContext(data_dir=tmp_path / "data"))
    try:
        the_app = app([resource("File", "/current/app.conf", content="v1\n")])
        backend.apply(the_app, changes(backend.read_live(the_app.resources, {}), the_app))
        assert (real / "releases/v1/app.conf").read_text() == "v1\n"
    finally:
        backend.close()


def test_over_ssh_the_host_and_path_are_named_and_nothing_is_written(
    ssh_fleet_factory: Factory, tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(2)
    bad, good = fleet.hosts
    place = tmp_path / "outside"
    place.mkdir()
    (tmp_path / bad.address).mkdir()
    (tmp_path / bad.address / "etc").symlink_to(place)
    backend = open_vm(ssh_target(fleet, f"{tmp_path}/{{host}}"),
                      BackendContext(data_dir=tmp_path / "data"))
    conf = resource("File", "/etc/app.conf", content="x\n")
    try:
        with pytest.raises(BackendError, match=(
                rf"^{bad.spec}: File /etc/app.conf: {tmp_path}/{bad.address}/etc leads "
                "outside the root")):
            backend.read_live([conf], {})
        todo = [Change(id=conf.id, app="web", target="vm", action=Action.CREATE, host=h.spec,
                       resource=conf) for h in fleet.hosts]
        with pytest.raises(BackendError, match=rf"^{bad.spec}: check that no path leads "):
            backend.apply(app([conf]), todo)
    finally:
        backend.close()
    assert list(place.iterdir()) == []
    assert (tmp_path / good.address / "etc/app.conf").read_text() == "x\n"  # the other host
