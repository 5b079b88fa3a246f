"""The SSH transport against real sshd hosts on 127.0.0.x (one port, many addresses)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from backends.base import BackendContext
from backends.vm import VmBackend
from backends.vm import open as open_vm
from reconciler.errors import HostsUnreachable, TransportError
from reconciler.model import Action, CheckKind, HealthStatus
from tests.backends.vm.conftest import app, changes, check, inventory_of, resource, ssh_target
from tests.support import sshd
from tests.support.sshd import SshFleet

Factory = Callable[..., SshFleet]

FILES = [resource("File", f"/etc/app/conf-{i}.ini", content=f"port = {8000 + i}\n", mode="0640")
         for i in range(3)]
APP = app([
    resource("Directory", "/etc/app", mode="0755"),
    *FILES,
    resource("Symlink", "/etc/app/current.ini", target="conf-0.ini"),
    resource("File", "/etc/app/secret.key", content="s3cr3t-value", mode="0600", secret=True),
    resource("Command", "stamp", run='echo "$RECONCILER_HOST" > "$RECONCILER_ROOT/host"',
             creates="/host"),
])


def _open(fleet: SshFleet, root: Path, **extra: object) -> VmBackend:
    return open_vm(ssh_target(fleet, f"{root}/{{host}}", **extra),
                   BackendContext(data_dir=root / "data"))


def _runs(backend: VmBackend, hosts: list[str]) -> dict[str, int]:
    return {h: backend.transport(h).calls["run"] for h in hosts}


def test_five_hosts_converge_with_one_fact_command_each(
    ssh_fleet_factory: Factory, tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(5)
    hosts = [h.spec for h in fleet.hosts]
    backend = _open(fleet, tmp_path)
    try:
        view = backend.read_live(APP.resources, {})
        assert view.hosts == tuple(hosts)
        assert _runs(backend, hosts) == dict.fromkeys(hosts, 1)
        todo = changes(view, APP)
        assert len(todo) == 5 * len(APP.resources)
        assert "s3cr3t" not in repr([c.desired for c in todo])
        backend.apply(APP, todo)
        for h in fleet.hosts:
            base = tmp_path / h.address
            assert (base / "etc/app/conf-2.ini").read_text() == "port = 8002\n"
            assert (base / "etc/app/secret.key").stat().st_mode & 0o777 == 0o600
            assert (base / "host").read_text() == f"{h.address}\n"

        before = _runs(backend, hosts)
        again = backend.read_live(APP.resources, inventory_of(view, APP))
        assert changes(again, APP) == []
        assert backend.apply(APP, []).applied == 0
        after = _runs(backend, hosts)
        assert {h: after[h] - before[h] for h in hosts} == dict.fromkeys(hosts, 1)
        assert all(backend.transport(h).calls["put"] == 4 for h in hosts)  # first apply only
    finally:
        backend.close()


def test_command_health_checks_run_on_each_host(ssh_fleet_factory: Factory,
                                                tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(2)
    (tmp_path / fleet.hosts[0].address).mkdir()
    (tmp_path / fleet.hosts[0].address / "ready").write_text("")
    backend = _open(fleet, tmp_path)
    try:
        report = backend.health(app([], health=[
            check(CheckKind.COMMAND, run='test -e "$RECONCILER_ROOT/ready"')]),
            [h.spec for h in fleet.hosts])
        assert report.hosts == {fleet.hosts[0].spec: HealthStatus.HEALTHY,
                                fleet.hosts[1].spec: HealthStatus.DEGRADED}
        assert report.status is HealthStatus.DEGRADED
    finally:
        backend.close()


def _expect_refused(backend: VmBackend, match: str, tmp_path: Path, fleet: SshFleet) -> None:
    try:
        with pytest.raises(TransportError, match=match):
            backend.read_live(APP.resources, {})
    finally:
        backend.close()
    assert not any((tmp_path / h.address).exists() for h in fleet.hosts)


def test_an_unknown_host_key_is_refused(ssh_fleet_factory: Factory, tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(1)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    backend = _open(fleet, tmp_path, known_hosts=str(empty))
    _expect_refused(backend, rf"{fleet.hosts[0].spec}: unknown host key", tmp_path, fleet)
    assert empty.read_text() == ""  # never learned


def test_a_changed_host_key_is_refused(ssh_fleet_factory: Factory, tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(1)
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[{fleet.hosts[0].address}]:{fleet.hosts[0].port} {kind} {key}\n")
    backend = _open(fleet, tmp_path, known_hosts=str(forged))
    _expect_refused(backend, rf"{fleet.hosts[0].spec}: host key does not match", tmp_path, fleet)


def test_an_unreachable_host_is_an_error(ssh_fleet_factory: Factory, tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(1)
    dead = f"127.0.0.250:{fleet.hosts[0].port}"
    backend = _open(fleet, tmp_path, hosts=[fleet.hosts[0].spec, dead])
    _expect_refused(backend, rf"{dead}: unreachable", tmp_path, fleet)


def test_an_unreachable_host_leaves_the_view_of_the_others(ssh_fleet_factory: Factory,
                                                            tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(2)
    up, down = fleet.hosts[0].spec, fleet.hosts[1].spec
    backend = _open(fleet, tmp_path)
    try:
        backend.apply(APP, changes(backend.read_live(APP.resources, {}), APP))
        fleet.stop_host(1)
        with pytest.raises(HostsUnreachable, match=rf"^{down}: ") as caught:
            backend.read_live(APP.resources, {})
    finally:
        backend.close()
    assert caught.value.hosts == (down,)
    view = caught.value.view
    assert view.hosts == (up,)
    assert {h for h, _ in view.desired} == {up} and {h for h, _ in view.live} == {up}
    assert changes(view, APP) == []


def test_a_key_not_in_authorized_keys_fails_auth(ssh_fleet_factory: Factory,
                                                 tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(1)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    backend = _open(fleet, tmp_path, identity_file=str(stranger))
    _expect_refused(backend, rf"{fleet.hosts[0].spec}: authentication failed", tmp_path, fleet)


def _make_sftp_read_only(fleet: SshFleet) -> None:
    """Restart the fleet's sshd with `internal-sftp -R`: the server refuses every
    SFTP write with "permission denied", even for root, which a mode cannot do."""
    host = fleet.hosts[0]
    host.process.terminate()
    host.process.wait(timeout=5)
    if host.process.stderr is not None:
        host.process.stderr.close()
    config = fleet.directory / host.address / "sshd_config"
    config.write_text(config.read_text().replace("internal-sftp", "internal-sftp -R"))
    host.process = subprocess.Popen(
        [sshd.SSHD, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    sshd._wait_listening(host.address, host.port, host.process)


def test_a_denied_write_names_host_and_path_and_keeps_the_old_file(
    ssh_fleet_factory: Factory, tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(1)
    _make_sftp_read_only(fleet)
    conf = tmp_path / fleet.hosts[0].address / "etc/app/conf-0.ini"
    conf.parent.mkdir(parents=True)
    conf.write_text("old\n")
    the_app = app([FILES[0]])
    backend = _open(fleet, tmp_path)
    try:
        todo = changes(backend.read_live(the_app.resources, {}), the_app)
        assert [c.action for c in todo] == [Action.UPDATE]
        with pytest.raises(TransportError, match=(
                rf"{fleet.hosts[0].spec}: cannot write {conf}: Permission denied")):
            backend.apply(the_app, todo)
    finally:
        backend.close()
    assert conf.read_text() == "old\n"
    assert sorted(p.name for p in conf.parent.iterdir()) == ["conf-0.ini"]


def test_paths_cannot_escape_the_root_over_ssh(ssh_fleet_factory: Factory,
                                               tmp_path: Path) -> None:
    fleet = ssh_fleet_factory(1)
    backend = _open(fleet, tmp_path)
    try:
        with pytest.raises(Exception, match="escapes the root"):
            backend.read_live([resource("File", "/../../etc/passwd", content="x")], {})
    finally:
        backend.close()
