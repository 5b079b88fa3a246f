"""One `reconciler sync` across all three backends, run as a user runs it.

Wave 0 is a YARN service (on the real ResourceManager, MiniYARNCluster with the
Services API, through a recording proxy), wave 1 a file on
a real sshd fleet of three hosts with a command health check, wave 2 a
ConfigMap and a Deployment on the real Kubernetes control plane (reached through
the recording proxy with a kubeconfig and a bearer token; the real Deployment
controller and kwok's nodes make it Available). The sync is the real
`python -m reconciler sync` in a subprocess; the servers and the proxy run in
this process, so the test reads their request logs afterwards.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.events import Event, EventKind
from reconciler.history import DeployRecord, History
from tests.engine import support_targets as st
from tests.support.kube_env import KubeTest
from tests.support.sshd import SshFleet
from tests.support.yarn_cluster import RmClient
from tests.support.yarn_proxy import YarnProxy

PROJECT = Path(__file__).resolve().parents[2]
APPS = {"ingest": 0, "web": 1, "frontend": 2}
YARN_ROOT = "/app/v1/services"
_serial = itertools.count(1)


@dataclass
class World:
    repo: st.Repo
    data: Path
    roots: Path
    fleet: SshFleet
    yarn: YarnProxy
    rm: RmClient
    service: str
    """The YARN service's name: unique in the session, which shares one RM."""
    kube: KubeTest

    @property
    def hosts(self) -> list[str]:
        return [h.address for h in self.fleet.hosts]

    def served(self) -> list[str]:
        pages = [self.roots / h / "srv/web/index.html" for h in self.hosts]
        return [p.read_text().strip() if p.exists() else "" for p in pages]

    def release(self, version: str, containers: int = 1) -> str:
        """Every app at `version`: ingest with `containers`, web serving it, frontend on it."""
        self.repo.write("apps/ingest/ingest.yaml",
                        st.yarn_service(self.service, "1.0.0", containers))
        # A release is broken on every host whose root holds `broken-<release>`.
        self.repo.app("web", "fleet", wave=1, extra=(
            "timeout: 20s\nhealth:\n"
            f"  - command: \"test ! -e {self.roots}/{{host}}/broken-{version}\"\n"
            "    interval: 50ms\n    retries: 1\n"))
        self.repo.write("apps/web/site.yaml", "kind: File\npath: /srv/web/index.html\n"
                        f"content: \"{version}\\n\"\nmode: \"0644\"\n")
        ns = self.kube.namespace
        self.repo.write("apps/frontend/config.yaml",
                        st.configmap("frontend", {"release": version}, ns))
        self.repo.write("apps/frontend/deploy.yaml",
                        st.deployment("frontend", f"registry.test/frontend:{version}", ns))
        return self.repo.commit(f"release {version}")

    def sync(self) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reconciler", "sync", "--repo", self.repo.url,
                   "--rev", "main", "--data-dir", str(self.data)]
        return subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(PROJECT)})

    def last_deploy(self) -> DeployRecord:
        history = History(self.data)
        try:
            record = history.deploy(history.deploys(1)[0].id)
        finally:
            history.close()
        assert record is not None
        return record


@pytest.fixture
def world(tmp_path: Path, ssh_fleet_factory: Callable[..., SshFleet],
          kube: KubeTest, yarn: YarnProxy, rm: RmClient) -> Iterator[World]:
    fleet = ssh_fleet_factory(3)
    roots = tmp_path / "roots"
    service = f"x{next(_serial)}-ingest"
    repo = st.create_repo(tmp_path)
    repo.yarn("analytics", yarn)
    repo.vm("fleet", fleet, roots)
    repo.kubernetes("prod", kube)
    for host in fleet.hosts:
        (roots / host.address).mkdir(parents=True)
    repo.app("ingest", "analytics", wave=0, extra="timeout: 150s\n")
    repo.app("frontend", "prod", wave=2, extra="timeout: 60s\n")
    try:
        yield World(repo=repo, data=tmp_path / "data", roots=roots, fleet=fleet,
                    yarn=yarn, rm=rm, service=service, kube=kube)
    finally:
        rm.destroy(service)


def _index(events: list[Event], kind: EventKind, **match: object) -> int:
    """Position of the first event of `kind` whose fields equal `match`."""
    for index, event in enumerate(events):
        if event.kind is kind and all(getattr(event, k) == v for k, v in match.items()):
            return index
    raise AssertionError(f"no {kind.value} event with {match}")


def test_one_sync_runs_yarn_then_vm_then_kubernetes_each_after_the_last_was_healthy(
    world: World,
) -> None:
    revision = world.release("v1")
    done = world.sync()

    assert done.returncode == 0, done.stderr
    record = world.last_deploy()
    assert (record.revision, record.result) == (revision, "success")
    assert {a.app: (a.wave, a.status) for a in record.apps} == {
        app: (wave, "success") for app, wave in APPS.items()}
    events = list(record.events)
    started = [e.wave for e in events if e.kind is EventKind.WAVE_STARTED]
    assert started == [0, 1, 2]
    for app, wave in APPS.items():
        begin = _index(events, EventKind.WAVE_STARTED, wave=wave)
        applied = _index(events, EventKind.BATCH_APPLIED, app=app)
        healthy = _index(events, EventKind.HEALTH_CHECKED, app=app, status="Healthy")
        finished = _index(events, EventKind.WAVE_DONE, wave=wave, status="success")
        assert begin < applied < healthy < finished
        assert events[begin].timestamp <= events[healthy].timestamp <= events[finished].timestamp
        if wave < 2:  # the next wave starts only after this one was healthy
            after = _index(events, EventKind.WAVE_STARTED, wave=wave + 1)
            assert finished < after
            assert events[healthy].timestamp <= events[after].timestamp

    # Every backend holds what the commit says.
    live = world.rm.service(world.service)
    assert live is not None and (live["state"], live["version"]) == ("STABLE", "1.0.0")
    assert world.served() == ["v1"] * 3
    assert st.image_of(world.kube, "frontend") == "registry.test/frontend:v1"
    config = st.live_object(world.kube, "configmaps", "frontend")
    assert config is not None and config["data"] == {"release": "v1"}


def test_a_failed_vm_wave_leaves_kubernetes_untouched_and_rolls_yarn_back(
    world: World,
) -> None:
    good = world.release("v1", containers=1)
    engine = st.engine(world.repo, world.data)  # the good release, quickly, in-process
    try:
        assert engine.sync().result == "success"
    finally:
        engine.close()
    assert world.served() == ["v1"] * 3

    (world.roots / world.hosts[1] / "broken-v2").write_text("")
    bad = world.release("v2", containers=2)
    world.kube.proxy.reset_counts()
    world.yarn.reset()
    failed = world.sync()

    assert failed.returncode == 1
    assert failed.stderr.startswith("reconciler sync: failed (rolled back): web: 1 host(s) failed")
    assert world.hosts[1] in failed.stderr
    # Wave 2 never ran: the Kubernetes server received no write at all.
    assert world.kube.proxy.writes() == []
    assert st.image_of(world.kube, "frontend") == "registry.test/frontend:v1"
    # Wave 1 is back at v1 on every host, wave 0 (which this sync flexed) at 1 container.
    assert world.served() == ["v1"] * 3
    flex = ("PUT", f"{YARN_ROOT}/{world.service}/components/worker")
    assert world.yarn.writes() == [flex, flex]
    live = world.rm.service(world.service)
    assert live is not None and live["state"] == "STABLE"
    assert [c["number_of_containers"] for c in live["components"]] == [1]

    record = world.last_deploy()
    assert (record.revision, record.result, record.rolled_back) == (bad, "failure", True)
    apps = {a.app: a for a in record.apps}
    assert set(apps) == {"ingest", "web"}
    assert apps["web"].status == "failure" and apps["web"].rollback.startswith("success")
    assert apps["ingest"].status == "success" and apps["ingest"].rollback.startswith("success")
    rollbacks = [e.app for e in record.events if e.kind is EventKind.ROLLBACK_STARTED]
    assert rollbacks == ["web", "ingest"]  # reverse wave order
    assert not [e for e in record.events if e.app == "frontend" or e.wave == 2]
    history = History(world.data)
    try:
        assert [history.last_good(app) for app in APPS] == [good] * 3
    finally:
        history.close()
