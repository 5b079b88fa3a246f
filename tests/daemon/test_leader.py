"""Leader election over a coordination.k8s.io/v1 Lease, against the test API server
over real HTTP: electors built by `open_elector` (the daemon's own path, with the
Kubernetes client and a kubeconfig), and a daemon that deploys only while it leads.

Durations are short (1-3 s leases, 0.1 s retries) and waits generous: the
assertions are about order and bounds, never about exact timings."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon import leader
from reconciler.daemon.config import (
    DaemonConfig,
    LeaderElectionConfig,
    lease_name,
    parse_config,
)
from reconciler.daemon.leader import LeaderElector, open_elector
from reconciler.daemon.service import Daemon
from reconciler.daemon.worker import HANDED_OVER
from reconciler.errors import ConfigError
from reconciler.webhooks import Provider, Trigger, TriggerKind
from tests.daemon.conftest import StateRepo, deploys, notes, wait_for
from tests.support.kube.leases import LEASE
from tests.support.kube_apiserver import KubeApiServer

NAME = "reconciler-test"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeApiServer, Path]]:
    server = KubeApiServer.start()
    try:
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")
    finally:
        server.stop()


def election(kubeconfig: Path, *, lease: float = 3.0, renew: float = 2.0,
             retry: float = 0.1) -> LeaderElectionConfig:
    return LeaderElectionConfig(enabled=True, kubeconfig=kubeconfig, namespace="default",
                                name=NAME, lease_duration=lease, renew_deadline=renew,
                                retry_period=retry)


@pytest.fixture
def electors(kube: tuple[KubeApiServer, Path]) -> Iterator[Callable[..., LeaderElector]]:
    made: list[LeaderElector] = []

    def make(identity: str, *, start: bool = True, **timing: float) -> LeaderElector:
        config = DaemonConfig(repo="/nowhere", leader_election=election(kube[1], **timing))
        calls: list[str] = []
        elector = open_elector(config, identity=identity,
                               on_started=lambda: calls.append("started"),
                               on_stopped=lambda: calls.append("stopped"))
        elector.calls = calls  # type: ignore[attr-defined]
        made.append(elector)
        if start:
            elector.start()
        return elector

    yield make
    for elector in made:
        elector.stop(release=False, timeout=10)


def spec(server: KubeApiServer) -> dict[str, Any]:
    lease: dict[str, Any] = server.api.get(LEASE, "default", NAME)["spec"]
    return lease


def test_one_elector_creates_the_lease_and_keeps_renewing_it(
        kube: tuple[KubeApiServer, Path], electors: Callable[..., LeaderElector]) -> None:
    server, _ = kube
    a = electors("a_1")
    wait_for(a.is_leader, timeout=10)
    first = spec(server)
    assert first["holderIdentity"] == "a_1"
    assert first["leaseDurationSeconds"] == 3
    assert first["leaseTransitions"] == 0
    assert first["acquireTime"].endswith("Z") and len(first["renewTime"]) == 27  # MicroTime
    wait_for(lambda: spec(server)["renewTime"] != first["renewTime"], timeout=10)
    assert spec(server)["acquireTime"] == first["acquireTime"]  # a renewal keeps it
    state = a.state()
    assert (state.is_leader, state.holder, state.lease) == (True, "a_1", f"default/{NAME}")
    assert a.calls == ["started"]  # type: ignore[attr-defined]


def test_a_second_elector_waits_and_takes_over_promptly_when_the_first_releases(
        kube: tuple[KubeApiServer, Path], electors: Callable[..., LeaderElector]) -> None:
    server, _ = kube
    a = electors("a_1")
    wait_for(a.is_leader, timeout=10)
    b = electors("b_2")
    # Longer than the 3 s lease: A's renewals are what keep B out, not luck.
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        assert not b.is_leader()
        time.sleep(0.05)
    assert b.state().holder == "a_1" and a.is_leader()

    a.stop()  # a clean stop releases the lease
    released = time.monotonic()
    assert not a.is_leader()
    assert a.calls == ["started", "stopped"]  # type: ignore[attr-defined]
    wait_for(b.is_leader, timeout=10)
    # Released, not expired: B must not have waited out the 3 s lease.
    assert time.monotonic() - released < 2.5
    assert spec(server)["holderIdentity"] == "b_2"
    assert spec(server)["leaseTransitions"] == 1


def test_a_dead_leader_is_replaced_after_the_lease_duration(
        kube: tuple[KubeApiServer, Path], electors: Callable[..., LeaderElector]) -> None:
    server, _ = kube
    a = electors("a_1", lease=1.0, renew=0.8)
    wait_for(a.is_leader, timeout=10)
    b = electors("b_2", lease=1.0, renew=0.8)
    wait_for(lambda: b.state().holder == "a_1", timeout=10)
    a.stop(release=False)  # the process "dies": no renewal, no release
    died = time.monotonic()
    assert spec(server)["holderIdentity"] == "a_1"
    wait_for(b.is_leader, timeout=15)
    # B waits a full lease from when it saw A's last renewal, shortly before A
    # died (the margin allows for A's thread being slow on a loaded machine).
    assert time.monotonic() - died >= 0.5
    assert spec(server)["holderIdentity"] == "b_2"
    assert spec(server)["leaseTransitions"] == 1


def test_a_conflict_on_renewal_means_another_replica_won(
        kube: tuple[KubeApiServer, Path], electors: Callable[..., LeaderElector]) -> None:
    server, _ = kube
    a = electors("a_1")
    wait_for(a.is_leader, timeout=10)
    rival = {"holderIdentity": "rival_9", "leaseTransitions": 1,
             "renewTime": leader.micro_time(datetime.now(UTC))}
    raced: list[str] = []

    def race(method: str, path: str, _query: dict[str, str]) -> None:
        # The rival writes just before A's renewal is served: A's PUT carries a
        # stale resourceVersion and must get 409, not overwrite the rival.
        if method == "PUT" and path.endswith(f"/leases/{NAME}") and not raced:
            server.api.update(LEASE, "default", NAME, {"spec": rival}, merge=True,
                              manager="rival", subresource="", dry_run=False)
            raced.append(server.api.get(LEASE, "default", NAME)["metadata"]["resourceVersion"])

    server.before_request = race
    wait_for(lambda: raced and not a.is_leader(), timeout=10)
    server.before_request = None
    lease = server.api.get(LEASE, "default", NAME)
    assert lease["spec"]["holderIdentity"] == "rival_9"
    assert lease["metadata"]["resourceVersion"] == raced[0]  # A's write was refused
    assert a.state().holder == "rival_9"
    assert a.calls == ["started", "stopped"]  # type: ignore[attr-defined]
    # The rival never renews: A takes the lease back once it expires.
    wait_for(a.is_leader, timeout=15)
    assert spec(server)["leaseTransitions"] == 2


def test_the_store_reports_a_stale_write_as_a_conflict(
        kube: tuple[KubeApiServer, Path], electors: Callable[..., LeaderElector]) -> None:
    a = electors("a_1", start=False)
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": NAME, "namespace": "default"},
            "spec": {"holderIdentity": "x", "leaseDurationSeconds": 3}}
    created = a.store.create(body)
    assert created is not None and a.store.create(body) is None  # 409 AlreadyExists
    fresh = a.store.replace(created)
    assert fresh is not None
    assert a.store.replace(created) is None  # created's resourceVersion is stale now
    assert a.store.get() == fresh


def _daemon_config(repo: StateRepo, data_dir: Path, kubeconfig: Path) -> DaemonConfig:
    return DaemonConfig(repo=f"file://{repo.path}", data_dir=data_dir, listen=None,
                        poll_interval=0.5, drift_interval=0.0, log_format="plain",
                        leader_election=election(kubeconfig, lease=1.0, renew=0.8))


def test_a_daemon_deploys_only_once_the_foreign_holder_lets_the_lease_expire(
        kube: tuple[KubeApiServer, Path], electors: Callable[..., LeaderElector],
        state_repo: StateRepo, tmp_path: Path) -> None:
    server, kubeconfig = kube
    other = electors("other-replica_1", lease=1.0, renew=0.8)
    wait_for(other.is_leader, timeout=10)
    daemon = Daemon(_daemon_config(state_repo, tmp_path / "data", kubeconfig), tmp_path / "data")
    daemon.start()
    try:
        wait_for(lambda: daemon.snapshot().leader.holder == "other-replica_1",  # type: ignore[union-attr]
                 timeout=10)
        # Polls every 0.5 s and a webhook for the tracked branch: a follower acts on none.
        daemon.on_webhook(Trigger(provider=Provider.GITHUB, kind=TriggerKind.PUSH,
                                  ref="refs/heads/main", sha="0" * 40))
        time.sleep(2.0)
        assert deploys(daemon) == [] and state_repo.web_conf() is None
        snap = daemon.snapshot()
        assert snap.leader is not None and not snap.leader.is_leader and snap.ready

        other.stop(release=False)  # the foreign holder stops renewing
        wait_for(lambda: state_repo.web_conf() == "version 1\n", timeout=20)
        snap = daemon.snapshot()
        assert snap.leader is not None and snap.leader.is_leader
        assert snap.leader.holder == snap.leader.identity == spec(server)["holderIdentity"]
        wait_for(lambda: deploys(daemon) and deploys(daemon)[-1][1] == "success", timeout=20)
    finally:
        assert daemon.stop(timeout=30)
    assert spec(server)["holderIdentity"] == ""  # released on a clean stop


def test_a_leader_that_loses_the_lease_mid_rollout_stops_after_its_batch_and_syncs_later(
        kube: tuple[KubeApiServer, Path], state_repo: StateRepo, tmp_path: Path) -> None:
    server, kubeconfig = kube
    # The gate waits for `ready` for up to two minutes: without the interrupt,
    # the old leader would keep this rollout going beside the new leader's.
    slow = ("target: laptop\ntimeout: 120s\nhealth:\n"
            "  - command: \"test -f $RECONCILER_ROOT/ready\"\n"
            "    retries: 100000\n    interval: 0.1s\n")
    sha = state_repo.commit("slow release", content="version 2\n", app=slow)
    config = replace(_daemon_config(state_repo, tmp_path / "data", kubeconfig),
                     leader_election=election(kubeconfig, lease=2.0, renew=1.5))
    daemon = Daemon(config, tmp_path / "data")
    daemon.start()
    try:
        wait_for(lambda: daemon.worker.state.running == sha
                 and state_repo.web_conf() == "version 2\n", timeout=30)
        # A rival takes the Lease, as a replica would after our renewals failed.
        server.api.update(LEASE, "default", NAME, {"spec": {
            "holderIdentity": "rival_9", "renewTime": leader.micro_time(datetime.now(UTC))}},
            merge=True, manager="rival", subresource="", dry_run=False)
        taken = time.monotonic()
        wait_for(lambda: deploys(daemon) == [(sha, "interrupted")], timeout=30)
        assert time.monotonic() - taken < 10  # the gate alone would wait 120 s
        record = daemon.history.deploys(limit=1)[0]
        assert record.message.startswith("interrupted by loss of leadership: web: ")
        assert notes(daemon, sha)[-1]["state"] == "pending"
        assert notes(daemon, sha)[-1]["description"] == HANDED_OVER
        assert not daemon.is_leader() and not daemon.engine.stop_requested

        # The rival never renews: this replica leads again once the Lease expires,
        # and its engine syncs the same commit in full.
        (state_repo.root / "ready").write_text("")
        wait_for(lambda: deploys(daemon) == [(sha, "interrupted"), (sha, "success")],
                 timeout=30)
        snap = daemon.snapshot()
        assert snap.leader is not None and snap.leader.is_leader
        assert spec(server)["holderIdentity"] == snap.leader.identity
    finally:
        assert daemon.stop(timeout=30)


def test_without_leader_election_the_daemon_reports_no_leader(
        state_repo: StateRepo, daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(state_repo)
    assert daemon.is_leader() and daemon.snapshot().leader is None
    wait_for(lambda: state_repo.web_conf() == "version 1\n", timeout=20)


def test_the_daemon_does_not_load_the_kubernetes_client_unless_electing() -> None:
    code = ("import sys, reconciler.daemon.service; "
            "sys.exit('kubernetes' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# --- configuration -------------------------------------------------------------------


def test_leader_election_config_defaults_and_parsing(tmp_path: Path) -> None:
    assert parse_config("repo: r\n").leader_election == LeaderElectionConfig()
    text = ("repo: r\nleader_election:\n  enabled: true\n  kubeconfig: kc\n"
            "  context: prod\n  namespace: reconciler\n  lease_duration: 20s\n"
            "  renew_deadline: 12s\n  retry_period: 500ms\n")
    le = parse_config(text, base_dir=tmp_path).leader_election
    assert le == LeaderElectionConfig(
        enabled=True, kubeconfig=tmp_path / "kc", context="prod", namespace="reconciler",
        lease_duration=20.0, renew_deadline=12.0, retry_period=0.5)


@pytest.mark.parametrize(("body", "message"), [
    ("  renew_dedline: 5s\n",
     "d.yaml:3: unknown key 'renew_dedline' (did you mean 'renew_deadline'?)"),
    ("  lease_duration: 5s\n  renew_deadline: 5s\n",
     "d.yaml:4: renew_deadline must be shorter than lease_duration"),
    ("  renew_deadline: 2s\n  retry_period: 2s\n",
     "d.yaml:4: retry_period must be shorter than renew_deadline / 1.2"),
    ("  lease_duration: 500ms\n  renew_deadline: 0.4\n  retry_period: 0.1\n",
     "d.yaml:3: lease_duration must be at least 1s"),
    ("  name: Reconciler_Leader\n", "d.yaml:3: name must be a DNS subdomain"),
    ("  in_cluster: true\n  kubeconfig: kc\n",
     "d.yaml:2: set kubeconfig/context or in_cluster, not both"),
    ("  enabled: yes please\n", "d.yaml:3: enabled must be true or false"),
])
def test_leader_election_config_errors_name_file_and_line(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("repo: r\nleader_election:\n" + body, source="d.yaml")
    assert str(err.value).startswith(message)


def test_the_default_lease_name_follows_what_the_daemon_syncs() -> None:
    base = DaemonConfig(repo="https://git.example.com/state.git")
    shard_a = replace(base, targets=("eu", "us"))
    assert lease_name(shard_a) == lease_name(replace(base, targets=("us", "eu")))
    assert lease_name(shard_a) != lease_name(replace(base, targets=("asia",)))
    assert lease_name(base) != lease_name(shard_a)
    assert lease_name(base).startswith("reconciler-") and len(lease_name(base)) <= 63
    named = replace(base, leader_election=LeaderElectionConfig(name="mine"))
    assert lease_name(named) == "mine"
