"""Leader election over a coordination.k8s.io/v1 Lease on the real control plane:
electors built by `open_elector` (the daemon's own path, with the Kubernetes
client and a kubeconfig), `reconciler run` processes of which the leader is
killed, and a daemon that deploys only while it leads. Each test's Lease lives
in the test's own namespace; the Lease is read back with the admin's calls, and
faults (an unreachable server, a renewal that hangs, 5xx) come from the proxy.

Durations are short (1-3 s leases, 0.1 s retries) and waits generous: the
assertions are about order and bounds, never about exact timings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.config import (
    DaemonConfig,
    LeaderElectionConfig,
    lease_name,
    parse_config,
)
from reconciler.daemon.leader import LeaderElector, micro_time, open_elector
from reconciler.daemon.service import Daemon
from reconciler.daemon.worker import HANDED_OVER
from reconciler.errors import ConfigError
from reconciler.webhooks import Provider, Trigger, TriggerKind
from tests.daemon.conftest import StateRepo, deploys, history_rows, notes, wait_for
from tests.support.kube_env import KubeTest

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "reconciler-test"
LEASE_S, RENEW_S, RETRY_S = 2.0, 1.5, 0.1
MARGIN = 1.0
"""Beyond lease_duration + retry_period: the follower's jittered waits (client-go's
factor 1.2, on up to two of them: 0.44 s) and requests on a loaded machine."""


def lease_path(kube: KubeTest) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{kube.namespace}/leases/{NAME}"


def lease(kube: KubeTest) -> dict[str, Any]:
    """The Lease as the server has it, read with the admin's credentials."""
    found = kube.env.get(lease_path(kube))
    assert found is not None, f"no lease {kube.namespace}/{NAME}"
    return found


def spec(kube: KubeTest) -> dict[str, Any]:
    found: dict[str, Any] = lease(kube)["spec"]
    return found


def seize(kube: KubeTest, holder: str, **fields: Any) -> dict[str, Any]:
    """Take the Lease as a rival replica would: PUT with the resourceVersion just
    read, read again after a 409 (a renewal came first)."""
    for _ in range(50):
        current = lease(kube)
        current["spec"].update(holderIdentity=holder,
                               renewTime=micro_time(datetime.now(UTC)), **fields)
        status, answer = kube.env.call("PUT", lease_path(kube), current)
        if status == 200:
            return answer
        assert status == 409, f"PUT lease {kube.namespace}/{NAME}: {status} {answer}"
    raise AssertionError(f"lease {kube.namespace}/{NAME}: 50 conflicts in a row")


class Replica:
    """`reconciler run` with leader election, as one pod of a Deployment runs it:
    POD_NAME starts its holderIdentity; JSON log lines go to a file."""

    def __init__(self, name: str, config: Path, tmp: Path) -> None:
        self.name, self.data_dir, self.log = name, tmp / f"{name}-data", tmp / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "POD_NAME": name}
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run", "--config", str(config),
                 "--data-dir", str(self.data_dir), "--listen", "off",
                 "--poll-interval", "0.5s", "--drift-interval", "0", "--log-format", "json"],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=REPO_ROOT)

    def holds(self, kube: KubeTest) -> bool:
        found = kube.env.get(lease_path(kube)) or {}
        holder = str((found.get("spec") or {}).get("holderIdentity") or "")
        return holder.startswith(f"{self.name}_")

    def messages(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line)["message"] for line in lines if line.startswith("{")]

    def rows(self) -> list[tuple[str, str]]:
        """(revision, result) of this replica's deploys, from its own history."""
        return history_rows(self.data_dir)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def election(kube: KubeTest, kubeconfig: Path | None = None, *, lease: float = 3.0,
             renew: float = 2.0, retry: float = RETRY_S) -> LeaderElectionConfig:
    return LeaderElectionConfig(enabled=True, kubeconfig=kubeconfig or kube.kubeconfig(),
                                namespace=kube.namespace, name=NAME, lease_duration=lease,
                                renew_deadline=renew, retry_period=retry)


@pytest.fixture
def electors(kube: KubeTest) -> Iterator[Callable[..., LeaderElector]]:
    made: list[LeaderElector] = []

    def make(identity: str, *, start: bool = True, kubeconfig: Path | None = None,
             **timing: float) -> LeaderElector:
        config = DaemonConfig(repo="/nowhere",
                              leader_election=election(kube, kubeconfig, **timing))
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


@pytest.fixture
def side_door(kube: KubeTest) -> Iterator[Path]:
    """A kubeconfig through a second proxy: a replica whose way to the server
    stays open while the faults of `kube.proxy` cut the other one off."""
    proxy = kube.env.proxy()
    try:
        yield proxy.write_kubeconfig(kube.tmp / "side-kubeconfig", namespace=kube.namespace)
    finally:
        proxy.stop()


def test_one_elector_creates_the_lease_and_keeps_renewing_it(
        kube: KubeTest, electors: Callable[..., LeaderElector]) -> None:
    a = electors("a_1")
    wait_for(a.is_leader, timeout=10)
    first = spec(kube)
    assert first["holderIdentity"] == "a_1"
    assert first["leaseDurationSeconds"] == 3
    assert first["leaseTransitions"] == 0
    assert first["acquireTime"].endswith("Z") and len(first["renewTime"]) == 27  # MicroTime
    wait_for(lambda: spec(kube)["renewTime"] != first["renewTime"], timeout=10)
    assert spec(kube)["acquireTime"] == first["acquireTime"]  # a renewal keeps it
    assert lease(kube)["metadata"]["namespace"] == kube.namespace
    state = a.state()
    assert (state.is_leader, state.holder, state.lease) == (True, "a_1",
                                                            f"{kube.namespace}/{NAME}")
    assert a.calls == ["started"]  # type: ignore[attr-defined]
    # Created once, then only renewed: a PUT of the one object, never a second POST.
    writes = [(method, path) for method, path, _ in kube.proxy.writes()]
    assert writes[0] == ("POST", lease_path(kube).rpartition("/")[0])
    assert set(writes[1:]) == {("PUT", lease_path(kube))}


def test_a_second_elector_waits_and_takes_over_promptly_when_the_first_releases(
        kube: KubeTest, electors: Callable[..., LeaderElector]) -> None:
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
    assert spec(kube)["holderIdentity"] == "b_2"
    assert spec(kube)["leaseTransitions"] == 1


@pytest.fixture
def replicas(kube: KubeTest, state_repo: StateRepo, tmp_path: Path
             ) -> Iterator[Callable[[str], Replica]]:
    """`reconciler run` processes sharing one config file; killed if still running."""
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        f"repo: file://{state_repo.path}\nleader_election:\n  enabled: true\n"
        f"  kubeconfig: {kube.kubeconfig()}\n  namespace: {kube.namespace}\n  name: {NAME}\n"
        f"  lease_duration: {LEASE_S}s\n  renew_deadline: {RENEW_S}s\n"
        f"  retry_period: {RETRY_S}s\n")
    started: list[Replica] = []

    def start(name: str) -> Replica:
        started.append(Replica(name, config, tmp_path))
        return started[-1]

    yield start
    for replica in started:
        replica.kill()


def test_two_daemon_processes_one_leads_and_a_killed_leader_is_replaced_in_time(
        kube: KubeTest, state_repo: StateRepo, replicas: Callable[[str], Replica]) -> None:
    a = replicas("replica-a")
    wait_for(lambda: a.holds(kube), timeout=60)
    wait_for(lambda: any(result == "success" for _, result in a.rows()), timeout=60)
    b = replicas("replica-b")
    wait_for(lambda: "leader election started" in b.messages(), timeout=60)
    # Longer than a lease with both running: A keeps it, B waits and deploys nothing.
    until = time.monotonic() + LEASE_S + 1.0
    while time.monotonic() < until:
        assert a.holds(kube) and spec(kube)["leaseTransitions"] == 0
        time.sleep(0.05)
    assert b.rows() == [] and "became leader" not in b.messages()

    killed = time.monotonic()
    a.proc.send_signal(signal.SIGKILL)  # no release: the Lease must expire
    a.proc.wait(timeout=10)
    wait_for(lambda: b.holds(kube), timeout=30, step=0.01)
    took = time.monotonic() - killed
    assert LEASE_S / 2 <= took <= LEASE_S + RETRY_S + MARGIN, took
    assert spec(kube)["leaseTransitions"] == 1

    # The new leader deploys: a commit made after the handover lands.
    sha = state_repo.commit("second", content="version 2\n")
    wait_for(lambda: (sha, "success") in b.rows(), timeout=60)
    assert state_repo.web_conf() == "version 2\n"
    assert b.stop() == 0
    assert spec(kube).get("holderIdentity", "") == ""  # released on a clean stop


def test_a_conflict_on_renewal_means_another_replica_won(
        kube: KubeTest, electors: Callable[..., LeaderElector]) -> None:
    a = electors("a_1")
    wait_for(a.is_leader, timeout=10)
    raced: list[str] = []

    def race(method: str, path: str, _query: dict[str, str]) -> None:
        # The rival writes just before A's renewal reaches the server: A's PUT
        # carries a stale resourceVersion, and the real server answers 409.
        if method == "PUT" and path == lease_path(kube) and not raced:
            raced.append(seize(kube, "rival_9", leaseTransitions=1)["metadata"]
                         ["resourceVersion"])

    kube.proxy.before_request = race
    wait_for(lambda: raced and not a.is_leader(), timeout=10)
    kube.proxy.before_request = None
    found = lease(kube)
    assert found["spec"]["holderIdentity"] == "rival_9"
    assert found["metadata"]["resourceVersion"] == raced[0]  # A's write was refused
    assert a.state().holder == "rival_9"
    assert a.calls == ["started", "stopped"]  # type: ignore[attr-defined]
    # The rival never renews: A takes the lease back once it expires.
    wait_for(a.is_leader, timeout=15)
    assert spec(kube)["holderIdentity"] == "a_1"
    assert spec(kube)["leaseTransitions"] == 2


def test_the_store_reports_a_stale_write_as_a_conflict(
        kube: KubeTest, electors: Callable[..., LeaderElector]) -> None:
    a = electors("a_1", start=False)
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": NAME, "namespace": kube.namespace},
            "spec": {"holderIdentity": "x", "leaseDurationSeconds": 3}}
    created = a.store.create(body)
    assert created is not None and a.store.create(body) is None  # 409 AlreadyExists
    # The real server stores an unchanged object without a new resourceVersion:
    # only a change makes `created` stale.
    assert a.store.replace(created) == created
    changed = {**created, "spec": {**created["spec"], "holderIdentity": "y"}}
    fresh = a.store.replace(changed)
    assert fresh is not None
    assert fresh["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert a.store.replace(created) is None  # created's resourceVersion is stale now
    assert a.store.get() == fresh == lease(kube)


def _cut_off(kube: KubeTest, electors: Callable[..., LeaderElector], side_door: Path,
             methods: tuple[str, ...], delay: float) -> tuple[LeaderElector, LeaderElector]:
    """A leads through `kube.proxy`, which then fails its Lease requests; B follows
    through the side door. Checks the order of events; returns (A, B) once B leads."""
    a = electors("a_1", lease=LEASE_S, renew=RENEW_S)
    wait_for(a.is_leader, timeout=10)
    b = electors("b_2", kubeconfig=side_door, lease=LEASE_S, renew=RENEW_S)
    wait_for(lambda: b.state().holder == "a_1", timeout=10)
    kube.proxy.fault(lambda m, p, _q: m in methods and p.startswith(lease_path(kube)), 0,
                     times=10**6, delay=delay)
    cut = time.monotonic()
    lost = stopped = won = 0.0
    while not won and time.monotonic() - cut < 20:
        a_leads, b_leads = a.is_leader(), b.is_leader()
        assert not (a_leads and b_leads), "two leaders at once"
        now = time.monotonic() - cut
        lost = lost or (0.0 if a_leads else now)
        stopped = stopped or (now if "stopped" in a.calls else 0.0)  # type: ignore[attr-defined]
        won = won or (now if b_leads else 0.0)
        time.sleep(0.01)
    # A gives up by its own clock, and tells the daemon (which interrupts its
    # rollout) on time even while a request hangs; B leads only once the lease
    # expired, after both.
    assert 0 < lost <= RENEW_S + 0.3, lost
    assert 0 < stopped <= RENEW_S + 0.3, stopped
    assert max(lost, stopped) < won <= LEASE_S + RETRY_S + MARGIN, won
    assert spec(kube)["holderIdentity"] == "b_2" and spec(kube)["leaseTransitions"] == 1
    return a, b


def test_a_leader_cut_off_from_the_server_stops_before_the_follower_takes_over(
        kube: KubeTest, electors: Callable[..., LeaderElector], side_door: Path) -> None:
    a, b = _cut_off(kube, electors, side_door, ("GET", "PUT", "POST"), delay=0.0)
    error = a.state().error or ""
    assert error.startswith(f"GET lease {kube.namespace}/{NAME}: cannot reach the API server")
    kube.proxy.clear_faults()
    wait_for(lambda: a.state().holder == "b_2" and a.state().error is None, timeout=15)
    assert not a.is_leader() and b.is_leader()
    assert a.calls == ["started", "stopped"]  # type: ignore[attr-defined]


def test_a_leader_whose_renewals_hang_stops_on_time(
        kube: KubeTest, electors: Callable[..., LeaderElector], side_door: Path) -> None:
    # Reads answer; every renewal hangs for longer than the renew deadline, then fails.
    a, b = _cut_off(kube, electors, side_door, ("PUT",), delay=5.0)
    wait_for(lambda: a.state().holder == "b_2", timeout=15)  # read, not renewed
    assert not a.is_leader() and b.is_leader()
    assert a.calls == ["started", "stopped"]  # type: ignore[attr-defined]


def test_renewals_answered_only_after_the_deadline_do_not_make_a_leader(
        kube: KubeTest, electors: Callable[..., LeaderElector]) -> None:
    a = electors("a_1", lease=1.0, renew=0.8)  # its requests time out after 0.5 s
    wait_for(a.is_leader, timeout=10)
    # Every answer comes inside the timeout, but a try (GET, then PUT) ends after
    # the 0.8 s deadline: its renewal is too old to lead on when it returns.
    kube.proxy.fault(lambda _m, p, _q: p == lease_path(kube), -1, times=10**6, delay=0.42)
    wait_for(lambda: a.calls == ["started", "stopped"], timeout=10)  # type: ignore[attr-defined]
    renewed = spec(kube)["renewTime"]
    wait_for(lambda: spec(kube)["renewTime"] != renewed, timeout=10)  # renewals still land
    time.sleep(2.0)
    assert not a.is_leader() and a.calls == ["started", "stopped"]  # type: ignore[attr-defined]
    assert spec(kube)["holderIdentity"] == "a_1"
    kube.proxy.clear_faults()
    wait_for(a.is_leader, timeout=10)
    assert a.calls == ["started", "stopped", "started"]  # type: ignore[attr-defined]


def test_a_few_5xx_answers_to_renewals_do_not_cost_the_leadership(
        kube: KubeTest, electors: Callable[..., LeaderElector]) -> None:
    a = electors("a_1")
    wait_for(a.is_leader, timeout=10)
    fault = kube.proxy.fault(lambda m, p, _q: m == "PUT" and p == lease_path(kube), 503,
                             times=5)
    before = spec(kube)["renewTime"]
    while fault.hits < 5 or spec(kube)["renewTime"] == before:
        # Five failed renewals take about 0.5 s, well inside the 2 s renew deadline.
        assert a.is_leader()
        time.sleep(0.01)
    assert a.is_leader() and a.calls == ["started"]  # type: ignore[attr-defined]
    assert spec(kube)["holderIdentity"] == "a_1" and spec(kube)["leaseTransitions"] == 0
    wait_for(lambda: a.state().error is None, timeout=5)


def _daemon_config(repo: StateRepo, data_dir: Path, kube: KubeTest) -> DaemonConfig:
    return DaemonConfig(repo=f"file://{repo.path}", data_dir=data_dir, listen=None,
                        poll_interval=0.5, drift_interval=0.0, log_format="plain",
                        leader_election=election(kube, lease=1.0, renew=0.8))


def test_a_daemon_deploys_only_once_the_foreign_holder_lets_the_lease_expire(
        kube: KubeTest, electors: Callable[..., LeaderElector],
        state_repo: StateRepo, tmp_path: Path) -> None:
    other = electors("other-replica_1", lease=1.0, renew=0.8)
    wait_for(other.is_leader, timeout=10)
    daemon = Daemon(_daemon_config(state_repo, tmp_path / "data", kube), tmp_path / "data")
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
        assert snap.leader.holder == snap.leader.identity == spec(kube)["holderIdentity"]
        wait_for(lambda: deploys(daemon) and deploys(daemon)[-1][1] == "success", timeout=20)
    finally:
        assert daemon.stop(timeout=30)
    assert spec(kube).get("holderIdentity", "") == ""  # released on a clean stop


def test_a_leader_that_loses_the_lease_mid_rollout_stops_after_its_batch_and_syncs_later(
        kube: KubeTest, state_repo: StateRepo, tmp_path: Path) -> None:
    # The gate waits for `ready` for up to two minutes: without the interrupt,
    # the old leader would keep this rollout going beside the new leader's.
    slow = ("target: laptop\ntimeout: 120s\nhealth:\n"
            "  - command: \"test -f $RECONCILER_ROOT/ready\"\n"
            "    retries: 100000\n    interval: 0.1s\n")
    sha = state_repo.commit("slow release", content="version 2\n", app=slow)
    config = replace(_daemon_config(state_repo, tmp_path / "data", kube),
                     leader_election=election(kube, lease=2.0, renew=1.5))
    daemon = Daemon(config, tmp_path / "data")
    daemon.start()
    try:
        wait_for(lambda: daemon.worker.state.running == sha
                 and state_repo.web_conf() == "version 2\n", timeout=30)
        # A rival takes the Lease, as a replica would after our renewals failed.
        seize(kube, "rival_9")
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
        assert spec(kube)["holderIdentity"] == snap.leader.identity
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
