"""Leadership on the status page and in `/api/v1/status`, from a real daemon over
real HTTP: a follower names the replica that holds the Lease (escaped), the
leader says so, and a daemon without leader election says that instead. With
shards, every shard's Lease is listed with its holder and this replica's marks.

The Lease lives on the real control plane, in the test's own namespace; a second
elector (the daemon's own `open_elector`) plays the other replica, and the page
is checked against the Lease the server holds."""

from __future__ import annotations

import html
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon.config import DaemonConfig, LeaderElectionConfig
from reconciler.daemon.leader import LeaderElector, LeaderState, open_elector
from reconciler.daemon.service import Daemon
from reconciler.history import History
from reconciler.web import pages, wiring
from reconciler.web.live import RolloutTracker
from reconciler.web.status import HistorySource, Hooks
from tests.support.kube_env import KubeTest
from tests.web.conftest import Web
from tests.web.staterepo import StateRepo

# Characters the page must escape: a holderIdentity is whatever a replica wrote.
RIVAL = 'other<b>&"replica"_1'


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def status(daemon: Daemon) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fetch(f"{daemon.web_url}/api/v1/status"))
    return data


def wait_for(check: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def lease_spec(kube: KubeTest, name: str) -> dict[str, Any]:
    """The Lease's spec as the server has it, read with the admin's credentials."""
    found = kube.env.get(f"/apis/coordination.k8s.io/v1/namespaces/{kube.namespace}"
                         f"/leases/{name}")
    assert found is not None, f"no lease {kube.namespace}/{name}"
    spec: dict[str, Any] = found["spec"]
    return spec


def config(state_repo: StateRepo, election: LeaderElectionConfig) -> DaemonConfig:
    return DaemonConfig(repo=str(state_repo.path), branch="main", listen="127.0.0.1:0",
                        poll_interval=3600, drift_interval=0, leader_election=election)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[DaemonConfig], Daemon]]:
    started: list[Daemon] = []

    def start(cfg: DaemonConfig) -> Daemon:
        daemon = Daemon(cfg, tmp_path / "daemon-data")
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        assert daemon.stop(timeout=30)


def test_a_follower_names_the_leader_and_the_leader_says_it_leads(
        kube: KubeTest, state_repo: StateRepo,
        daemons: Callable[[DaemonConfig], Daemon]) -> None:
    election = LeaderElectionConfig(enabled=True, kubeconfig=kube.kubeconfig(),
                                    namespace=kube.namespace,
                                    name="reconciler-web", lease_duration=3.0,
                                    renew_deadline=2.0, retry_period=0.1)
    cfg = config(state_repo, election)
    rival: LeaderElector = open_elector(cfg, identity=RIVAL, on_started=lambda: None,
                                        on_stopped=lambda: None)
    rival.start()
    try:
        wait_for(rival.is_leader, timeout=10)
        daemon = daemons(cfg)
        wait_for(lambda: status(daemon)["leader"]["holder"] == RIVAL, timeout=10)

        follower = status(daemon)["leader"]
        assert follower["is_leader"] is False
        assert follower["lease"] == f"{kube.namespace}/reconciler-web"
        assert lease_spec(kube, "reconciler-web")["holderIdentity"] == RIVAL
        assert follower["identity"] and follower["identity"] != RIVAL
        assert follower["error"] is None and follower["observed"] > 0
        page = fetch(f"{daemon.web_url}/")
        line = f'<p class="leader" id="leader">leader: {html.escape(RIVAL)}</p>'
        assert line in page and RIVAL not in page
    finally:
        rival.stop(release=True, timeout=10)

    # Released: the daemon takes the Lease at its next try.
    wait_for(lambda: status(daemon)["leader"]["is_leader"], timeout=15)
    leading = status(daemon)["leader"]
    assert leading["holder"] == leading["identity"] and leading["transitions"] == 1
    spec = lease_spec(kube, "reconciler-web")
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (leading["identity"], 1)
    assert '<p class="leader" id="leader">this replica leads</p>' in fetch(f"{daemon.web_url}/")


def test_without_leader_election_the_page_renders_and_says_so(
        state_repo: StateRepo, daemons: Callable[[DaemonConfig], Daemon]) -> None:
    daemon = daemons(config(state_repo, LeaderElectionConfig()))
    wait_for(lambda: status(daemon)["ready"], timeout=30)
    assert status(daemon)["leader"] is None
    assert status(daemon)["shards"] is None
    page = fetch(f"{daemon.web_url}/")
    assert '<p class="leader" id="leader">leader election off</p>' in page
    assert 'id="shards"' not in page
    assert "Deployments" in page and "web 1.0: first release" in page


def test_an_unreadable_leadership_shows_as_unknown_not_as_off(tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("snapshot failed")

    history = History(tmp_path / "data")
    try:
        source = HistorySource(repo="r", branch="main", path=".", history=history,
                               tracker=RolloutTracker(lambda sha: ()),
                               hooks=Hooks(leader=broken))
        assert pages.site_of(source.overview()).leader == "leader: unknown"
    finally:
        history.close()


def test_every_shard_shows_its_lease_holder_and_which_this_replica_holds(web: Web) -> None:
    """Three shards as `ShardSet.states()` gives them: this replica holds 0 and 2,
    the rival holds 1, and shard 2's last renewal failed."""
    me = "pod-a_1f2e"
    error = 'PUT lease: timed out <after> 2.0s & "retrying"'
    states = [
        LeaderState(identity=me, lease="ns/reconciler-0", is_leader=True, holder=me,
                    transitions=1, observed=100.0),
        LeaderState(identity=me, lease="ns/reconciler-1", holder=RIVAL, observed=100.0),
        LeaderState(identity=me, lease="ns/reconciler-2", is_leader=True, holder=me,
                    error=error),
    ]
    source = web.app.source
    assert isinstance(source, HistorySource)
    source.hooks = replace(source.hooks, leader=lambda: wiring.leadership(states[0]),
                           shards=lambda: wiring.shard_leases(states))

    shards = json.loads(web.get("/api/v1/status").text)["shards"]
    assert [(s["index"], s["lease"], s["holder"], s["is_leader"], s["error"])
            for s in shards] == [(0, "ns/reconciler-0", me, True, None),
                                 (1, "ns/reconciler-1", RIVAL, False, None),
                                 (2, "ns/reconciler-2", me, True, error)]
    assert shards[0]["identity"] == me and shards[0]["transitions"] == 1

    page = web.get("/").text
    assert RIVAL not in page and error not in page  # escaped, both of them
    rows = page.split('<section id="shards"', 1)[1].split("</section>", 1)[0]
    held = '<span class="badge ok">this replica</span>'
    mine = '<tr data-shard="0" data-held="true"><th scope="row" data-label="Shard">0</th>'
    assert mine in rows and '<tr data-shard="1"><th' in rows
    assert f"<code>{html.escape(RIVAL)}</code></td>" in rows
    assert f'<span class="reason">{html.escape(error)}</span>' in rows
    assert rows.count(held) == 2 and rows.count("ns/reconciler-") == 3
    assert '<p class="leader" id="leader">this replica leads</p>' in page
