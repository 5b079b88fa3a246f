"""`sudo: true` over real sshd hosts: every script runs as `sudo -n sh -c` and
files travel through the shell instead of SFTP. The tests log in as root,
whom Debian's default sudoers lets run `sudo -n` without a password; a refusing
or missing sudo is simulated with `sudo_command`, so no system change is needed."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.base import BackendContext
from backends.vm import VmBackend, records
from backends.vm import open as open_vm
from reconciler.errors import BackendError
from reconciler.model import Action, Resource, ResourceId
from tests.backends.vm.conftest import app, changes, inventory_of, plan_for, resource, ssh_target
from tests.support.sshd import SshFleet

Factory = Callable[..., SshFleet]

pytestmark = pytest.mark.skipif(
    shutil.which("sudo") is None or os.geteuid() != 0,
    reason="needs sudo (.ci/install) and root, whom sudoers lets run sudo -n",
)

PID = "$RECONCILER_ROOT/run/worker.pid"


def _resources(workers: int) -> list[Resource]:
    return [
        resource("Directory", "/etc/app", mode="0750"),
        resource("File", "/etc/app/app.conf", content=f"workers = {workers}\n", mode="0640"),
        resource("File", "/etc/app/token", content="t0ken", mode="0600", secret=True),
        resource("Symlink", "/etc/app/current.conf", target="app.conf"),
        resource(
            "Service", "worker", state="running", restart_on=["/etc/app/app.conf"],
            start=f'mkdir -p "$RECONCILER_ROOT/run"; sleep 300 & echo $! > "{PID}"',
            status=f'kill -0 "$(cat "{PID}")"',
            stop=f'kill "$(cat "{PID}")"; rm -f "{PID}"',
        ),
    ]


def _open(fleet: SshFleet, root: Path, **extra: object) -> VmBackend:
    return open_vm(ssh_target(fleet, f"{root}/{{host}}", sudo=True, **extra),
                   BackendContext(data_dir=root / "data"))


def _runs(backend: VmBackend, hosts: list[str]) -> dict[str, int]:
    return {h: backend.transport(h).calls["run"] for h in hosts}


def _pid(base: Path) -> int:
    return int((base / "run/worker.pid").read_text())


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1][0] == "Z":  # killed, not yet reaped
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def fleet_root(ssh_fleet_factory: Factory, tmp_path: Path) -> Iterator[tuple[SshFleet, Path]]:
    fleet = ssh_fleet_factory(2)
    yield fleet, tmp_path
    for h in fleet.hosts:  # a failed test must not leave a worker behind
        pid_file = tmp_path / h.address / "run/worker.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), 15)


def test_sudo_creates_reads_back_updates_and_prunes(
    fleet_root: tuple[SshFleet, Path],
) -> None:
    fleet, root = fleet_root
    hosts = [h.spec for h in fleet.hosts]
    v1 = app(_resources(1))
    backend = _open(fleet, root)
    try:
        view = backend.read_live(v1.resources, {})
        todo = changes(view, v1)
        assert len(todo) == len(hosts) * len(v1.resources)
        backend.apply(v1, todo)
        assert all(backend.transport(h).calls["put"] == 2 for h in hosts)  # conf and token
        pids = {}
        for h in fleet.hosts:
            base = root / h.address
            assert (base / "etc/app").stat().st_mode & 0o777 == 0o750
            assert (base / "etc/app/app.conf").read_text() == "workers = 1\n"
            assert (base / "etc/app/app.conf").stat().st_mode & 0o777 == 0o640
            assert (base / "etc/app/token").stat().st_mode & 0o777 == 0o600
            assert os.readlink(base / "etc/app/current.conf") == "app.conf"
            # No temporary file of the shell upload is left next to the files.
            assert sorted(p.name for p in (base / "etc/app").iterdir()) == [
                "app.conf", "current.conf", "token"]
            pids[h.spec] = _pid(base)
            os.kill(pids[h.spec], 0)

        before = _runs(backend, hosts)
        again = backend.read_live(v1.resources, inventory_of(view, v1))
        assert changes(again, v1) == []
        assert backend.apply(v1, []).applied == 0
        after = _runs(backend, hosts)
        assert {h: after[h] - before[h] for h in hosts} == dict.fromkeys(hosts, 1)

        v2 = app(_resources(2))
        view2 = backend.read_live(v2.resources, inventory_of(view, v1))
        update = changes(view2, v2)
        assert {(c.id.name, c.action) for c in update} == {
            ("/etc/app/app.conf", Action.UPDATE)}
        # The diff's old text was read under sudo as well.
        assert all(c.live is not None and c.live["content"] == "workers = 1\n" for c in update)
        result = backend.apply(v2, update)
        assert sorted(result.restarted) == sorted(f"{h}: worker" for h in hosts)
        for h in fleet.hosts:
            base = root / h.address
            assert (base / "etc/app/app.conf").read_text() == "workers = 2\n"
            assert (base / "etc/app/app.conf").stat().st_mode & 0o777 == 0o640
            assert _gone(pids[h.spec])
            pids[h.spec] = _pid(base)

        owned: dict[tuple[str, ResourceId], str] = dict(inventory_of(view2, v2))
        plan = plan_for(backend.read_live([], owned), app([]))
        deletes = [c for c in plan.changes() if c.action is Action.DELETE]
        assert len(deletes) == len(hosts) * len(v2.resources)
        pruned = backend.apply(app([]), deletes)
        assert pruned.messages == ()
        for h in fleet.hosts:
            base = root / h.address
            assert not (base / "etc/app").exists()
            assert _gone(pids[h.spec])
            assert not Path(records.service_record(str(base), "worker")).exists()
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("sudo_command", "said"),
    [
        # A sudo that exists but refuses: root runs sudo as nobody, who may not.
        ("sudo -u nobody sudo", "a password is required"),
        # No sudo on the host's PATH.
        ("/nonexistent/sudo", "/nonexistent/sudo"),  # the login shell's words vary
    ],
)
def test_a_refusing_or_missing_sudo_fails_naming_each_host(
    fleet_root: tuple[SshFleet, Path], sudo_command: str, said: str,
) -> None:
    fleet, root = fleet_root
    the_app = app(_resources(1)[:2])
    backend = _open(fleet, root, sudo_command=sudo_command)
    try:
        with pytest.raises(BackendError) as failed:
            backend.read_live(the_app.resources, {})
        message = str(failed.value)
        for h in fleet.hosts:
            assert f"{h.spec}: sudo could not run the command" in message
        assert said in message
    finally:
        backend.close()
    assert not any((root / h.address).exists() for h in fleet.hosts)


def test_a_refusing_sudo_fails_an_upload_naming_the_host(
    fleet_root: tuple[SshFleet, Path],
) -> None:
    fleet, root = fleet_root
    the_app = app([resource("File", "/app.conf", content="x\n")])
    good = _open(fleet, root)
    try:
        todo = changes(good.read_live(the_app.resources, {}), the_app)
    finally:
        good.close()
    bad = _open(fleet, root, sudo_command="sudo -u nobody sudo")
    try:
        with pytest.raises(BackendError, match="sudo could not run the command") as failed:
            bad.apply(the_app, todo)
        assert all(h.spec in str(failed.value) for h in fleet.hosts)
    finally:
        bad.close()
    assert not any((root / h.address / "app.conf").exists() for h in fleet.hosts)
