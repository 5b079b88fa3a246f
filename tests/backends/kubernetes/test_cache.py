"""The daemon's watch-fed live-state cache, against the real control plane through
the recording, fault-injecting proxy: no LIST on a warm plan, others' changes and
deletions seen, our own writes seen at once, dropped watches and 410s recovered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.base import BackendContext, Keeper
from backends.kubernetes import KubernetesBackend
from backends.kubernetes import open as open_backend
from backends.kubernetes.cache import LiveCache
from reconciler.model import Action, BackendKind, Change, Location, Target
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource

pytestmark = pytest.mark.kubeconfig

Manifest = dict[str, Any]


def configmap(ns: str, name: str, value: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"k": value}}


def deployment(ns: str, name: str) -> Manifest:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main",
                                                           "image": "nginx:1.27"}]}}}}


class Daemonish:
    """Backends opened as the daemon opens them: one Keeper for the process, a new
    backend per plan or sync, all sharing the target's cache."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.keeper = Keeper()
        # Written once: the cache is keyed by the kubeconfig's content too.
        self.kubeconfig: Path = cluster.kube.kubeconfig("kubeconfig-cache")

    def backend(self, **options: Any) -> KubernetesBackend:
        opts = {"kubeconfig": str(self.kubeconfig), "namespace": self.cluster.namespace,
                **options}
        target = Target(name=self.cluster.target, backend=BackendKind.KUBERNETES,
                        options=opts, location=Location(file="reconciler.yaml"))
        return open_backend(target, BackendContext(data_dir=self.cluster.tmp,
                                                   keeper=self.keeper))

    def cache(self) -> LiveCache:
        backend = self.backend()
        assert backend.cache is not None
        backend.close()
        return backend.cache

    def plan(self, manifests: list[Manifest]) -> list[Change]:
        backend = self.backend()
        try:
            resources = [resource("web", m) for m in manifests]
            return plan_changes(backend.read_live(resources, {}), resources)
        finally:
            backend.close()

    def sync(self, manifests: list[Manifest]) -> list[Change]:
        backend = self.backend()
        try:
            resources = [resource("web", m) for m in manifests]
            changes = plan_changes(backend.read_live(resources, {}), resources)
            backend.apply(make_app("web", resources, target=self.cluster.target), changes)
            return changes
        finally:
            backend.close()


@pytest.fixture
def daemon(cluster: Cluster) -> Iterator[Daemonish]:
    made = Daemonish(cluster)
    try:
        yield made
    finally:
        made.keeper.close()


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """`check()` until it is truthy; its last value either way. For what the watch
    delivers asynchronously (others' changes): milliseconds, unless the machine
    is very busy."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps/{name}"


def test_a_second_noop_plan_makes_no_list_and_no_write(cluster: Cluster,
                                                       daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1"), deployment(ns, "web")]
    first = daemon.sync(manifests)
    assert [c.action for c in first] == [Action.CREATE, Action.CREATE]
    assert cluster.proxy.lists(), "the first read lists"
    assert until(lambda: cluster.proxy.open_watches() >= 2)

    cluster.proxy.reset_counts()
    assert daemon.plan(manifests) == []
    assert daemon.plan(manifests) == []
    assert cluster.proxy.lists() == []
    assert cluster.proxy.writes() == []
    assert cluster.proxy.counts()["PATCH dryRun"] == 0


def test_one_shot_backends_still_list(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend()
    assert backend.cache is None
    resources = [resource("web", configmap(ns, "cfg", "1"))]
    backend.read_live(resources, {})
    backend.read_live(resources, {})
    assert len(cluster.proxy.lists()) >= 4 and cluster.proxy.watches() == []


def test_our_own_apply_is_seen_by_the_very_next_plan(cluster: Cluster,
                                                     daemon: Daemonish) -> None:
    ns = cluster.namespace
    daemon.sync([configmap(ns, "cfg", "1")])
    added: list[Manifest] = []
    for value in ("2", "3", "4"):
        added.append(configmap(ns, f"new-{value}", "x"))
        changes = daemon.sync([configmap(ns, "cfg", value), *added])
        assert {(c.id.name, c.action) for c in changes} == {
            ("cfg", Action.UPDATE), (f"new-{value}", Action.CREATE)}
        # No wait: the next plan must already see both writes.
        cluster.proxy.reset_counts()
        assert daemon.plan([configmap(ns, "cfg", value), *added]) == []
        assert cluster.proxy.lists() == [], "seen through the watch, not by listing again"


def test_adopting_an_object_moves_it_between_scopes_at_once(cluster: Cluster,
                                                            daemon: Daemonish) -> None:
    ns = cluster.namespace
    cluster.env.create(f"/api/v1/namespaces/{ns}/configmaps",
                       {"metadata": {"name": "found", "labels": {"team": "a"}}})
    manifests = [configmap(ns, "found", "new")]
    assert [c.action for c in daemon.plan(manifests)] == [Action.UPDATE]
    # Applying adds our labels: the object leaves the unowned objects' watch (a
    # DELETED event there) and enters the owned ones' (ADDED).
    assert [c.action for c in daemon.sync(manifests)] == [Action.UPDATE]
    cluster.proxy.reset_counts()
    began = time.monotonic()
    assert daemon.plan(manifests) == []
    assert cluster.proxy.lists() == []
    assert time.monotonic() - began < 2.0, "no wait for a settle timeout"


def test_our_own_prune_is_seen_by_the_next_plan(cluster: Cluster, daemon: Daemonish) -> None:
    ns = cluster.namespace
    daemon.sync([configmap(ns, "keep", "1"), configmap(ns, "gone", "1")])
    pruned = daemon.sync([configmap(ns, "keep", "1")])
    assert [(c.id.name, c.action) for c in pruned] == [("gone", Action.DELETE)]
    assert daemon.plan([configmap(ns, "keep", "1")]) == []


def test_a_change_by_another_client_is_seen_without_listing(cluster: Cluster,
                                                           daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1")]
    daemon.sync(manifests)
    cluster.proxy.reset_counts()
    cluster.env.apply(path(ns, "cfg"), {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cfg"}, "data": {"k": "edited"}},
                      manager="kubectl", force=True)
    changes = until(lambda: daemon.plan(manifests))
    assert [(c.id.name, c.action) for c in changes] == [("cfg", Action.UPDATE)]
    assert changes[0].live is not None and changes[0].live["data"] == {"k": "edited"}
    assert cluster.proxy.lists() == []


def test_a_deletion_by_another_client_is_seen(cluster: Cluster, daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1"), configmap(ns, "other", "1")]
    daemon.sync(manifests)
    cluster.proxy.reset_counts()
    cluster.env.delete(path(ns, "other"))
    changes = until(lambda: daemon.plan(manifests))
    assert [(c.id.name, c.action) for c in changes] == [("other", Action.CREATE)]
    assert cluster.proxy.lists() == []


def test_a_new_kind_is_listed_then_watched(cluster: Cluster, daemon: Daemonish) -> None:
    ns = cluster.namespace
    daemon.sync([configmap(ns, "cfg", "1")])
    watched = daemon.cache().watching()
    with_deployment = [configmap(ns, "cfg", "1"), deployment(ns, "web")]
    cluster.proxy.reset_counts()
    assert [c.action for c in daemon.sync(with_deployment)] == [Action.CREATE]
    listed = {p for _, p, _ in cluster.proxy.lists()}
    assert listed and all("deployments" in p for p in listed), listed
    assert daemon.cache().watching() > watched
    cluster.proxy.reset_counts()
    assert daemon.plan(with_deployment) == []
    assert cluster.proxy.lists() == []


def test_a_dropped_watch_recovers_and_relists(cluster: Cluster, daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1")]
    daemon.sync(manifests)
    cache = daemon.cache()
    cache.backoff = (0.2, 1.0)
    assert until(lambda: all_watched(cluster, cache))
    scopes = cache.watching()
    cluster.proxy.reset_counts()
    # The watches drop, and so does the first try to open each again.
    cluster.proxy.fault(lambda m, p, q: "watch" in q, 0, times=scopes)
    assert cluster.proxy.cut_watches() >= 2
    cluster.env.apply(path(ns, "cfg"), {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cfg"}, "data": {"k": "while down"}},
                      manager="kubectl", force=True)
    changes = until(lambda: daemon.plan(manifests))
    assert [(c.id.name, c.action) for c in changes] == [("cfg", Action.UPDATE)]
    assert changes[0].live is not None and changes[0].live["data"] == {"k": "while down"}
    assert cluster.proxy.lists(), "a broken watch makes its scope list again"
    # Watching again: a plan after that lists nothing.
    assert until(lambda: cluster.proxy.open_watches() >= scopes and cache.watching() == scopes)
    assert until(lambda: not cache_relisting(cache))
    cluster.proxy.reset_counts()
    assert [c.action for c in daemon.plan(manifests)] == [Action.UPDATE]
    assert cluster.proxy.lists() == []


def all_watched(cluster: Cluster, cache: LiveCache) -> bool:
    """Every scope has its watch thread, and every watch streams through the proxy."""
    scopes = cache.scopes()
    return bool(scopes) and cache.watching() == scopes and cluster.proxy.open_watches() == scopes


def cache_relisting(cache: LiveCache) -> bool:
    """Whether any scope is stale (waiting for its re-list)."""
    return cache.stale() > 0


def test_a_watch_answered_410_relists(cluster: Cluster, daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1")]
    cache = daemon.cache()
    cache.watch_seconds = (1, 1)  # the server ends each watch at once: it is resumed
    daemon.sync(manifests)
    lists = len(cluster.proxy.lists())
    # The resumed watch is told its version is gone, as after a compaction.
    fault = cluster.proxy.fault(lambda m, p, q: "watch" in q and "configmaps" in p, 410,
                                times=1)
    assert until(lambda: fault.hits == 1, timeout=15)
    assert until(lambda: len(cluster.proxy.lists()) > lists and not cache_relisting(cache))
    assert cache.stats.relists >= 1
    cluster.env.apply(path(ns, "cfg"), {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cfg"}, "data": {"k": "after"}},
                      manager="kubectl", force=True)
    changes = until(lambda: daemon.plan(manifests))
    assert changes and changes[0].live is not None and changes[0].live["data"] == {"k": "after"}


def test_watches_the_server_ends_resume_without_listing(cluster: Cluster,
                                                        daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1"), deployment(ns, "web")]
    cache = daemon.cache()
    cache.watch_seconds = (1, 1)  # each watch ends after a second, and is resumed
    daemon.sync(manifests)
    assert until(lambda: all_watched(cluster, cache))
    cluster.proxy.reset_counts()
    time.sleep(5)
    # The proxy closes the connection after each watch, as some load balancers
    # do: the next watch must not fail on the pooled connection it closed.
    assert len(cluster.proxy.watches()) >= 3 * cache.scopes()
    assert cluster.proxy.lists() == [] and cache.stats.relists == 0
    assert daemon.plan(manifests) == []
    assert cluster.proxy.lists() == []


def test_a_list_expired_by_compaction_between_pages_recovers(cluster: Cluster,
                                                             daemon: Daemonish) -> None:
    plane = cluster.env.plane
    if plane is None:
        pytest.skip("compacting etcd needs the test control plane")
    ns = cluster.namespace
    manifests = [configmap(ns, f"cfg-{i}", "1") for i in range(5)]
    daemon.sync(manifests)
    cache = daemon.cache()
    cache.close()  # a fresh cache, whose first LISTs go two objects a page
    daemon.keeper.close()
    daemon.keeper = Keeper()
    cache = daemon.cache()
    cache.page_size = 2
    compacted: list[str] = []

    def compact_once(method: str, p: str, query: dict[str, str]) -> None:
        if "continue" in query and not compacted:
            compacted.append(p)
            # A write after the first page, then a compaction past it: the
            # token's revision is gone, as after the server's periodic compaction.
            cluster.env.create(f"/api/v1/namespaces/{ns}/configmaps",
                               {"metadata": {"name": "late"}, "data": {}})
            plane.compact()

    cluster.proxy.before_request = compact_once
    cluster.proxy.reset_counts()
    assert daemon.plan(manifests) == []
    assert compacted, "a LIST went past its first page"
    unpaged = [q for _, p, q in cluster.proxy.lists() if "limit" not in q]
    assert unpaged, "the expired LIST started over as one unpaged list"
    cluster.proxy.before_request = None
    cluster.proxy.reset_counts()
    assert daemon.plan(manifests) == []
    assert cluster.proxy.lists() == []


def test_a_stopped_watch_thread_leaves_no_stale_scope(cluster: Cluster,
                                                       daemon: Daemonish) -> None:
    ns = cluster.namespace
    manifests = [configmap(ns, "cfg", "1")]
    daemon.sync(manifests)
    cache = daemon.cache()
    assert until(lambda: all_watched(cluster, cache))
    # Watches refused for good (credentials that may list but not watch): each
    # thread stops, and the reads list instead of serving what they last saw.
    cluster.proxy.fault(lambda m, p, q: "watch" in q, 403, times=1000)
    cluster.proxy.cut_watches()
    assert until(lambda: cache.watching() == 0)
    cluster.env.apply(path(ns, "cfg"), {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cfg"}, "data": {"k": "unwatched"}},
                      manager="kubectl", force=True)
    cluster.proxy.reset_counts()
    changes = daemon.plan(manifests)
    assert changes and changes[0].live is not None
    assert changes[0].live["data"] == {"k": "unwatched"}
    assert cluster.proxy.lists()


def test_scopes_no_read_asks_for_are_dropped_with_their_watch(cluster: Cluster,
                                                              daemon: Daemonish) -> None:
    ns = cluster.namespace
    daemon.plan([configmap(ns, "cfg", "1")])
    cache = daemon.cache()
    assert until(lambda: all_watched(cluster, cache))
    configmap_scopes = cache.scopes()
    cache.idle_after = 0.0  # everything not read by the next plan is idle
    daemon.plan([deployment(ns, "web")])
    assert cache.scopes() == 2  # the Deployments': owned ones, and this namespace's others
    # (The proxy notices a closed watch only when it next forwards bytes on it.)
    assert until(lambda: cache.watching() == 2)
    cluster.proxy.reset_counts()
    cache.idle_after = 3600.0
    assert [c.action for c in daemon.plan([configmap(ns, "cfg", "1")])] == [Action.CREATE]
    assert len(cluster.proxy.lists()) == configmap_scopes, "dropped scopes are listed anew"


def test_watch_false_keeps_the_list_path(cluster: Cluster, daemon: Daemonish) -> None:
    backend = daemon.backend(watch=False)
    assert backend.cache is None
    backend.close()


def test_a_long_running_engine_syncs_then_plans_without_listing(cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    """The daemon's path end to end: Engine(long_running=True), a real state repo."""
    from reconciler.engine import Engine, EngineSettings
    from tests.engine import support_targets as st

    ns = cluster.namespace
    repo = st.create_repo(tmp_path)
    repo.kubernetes("prod", cluster.kube)
    repo.app("web", "prod")
    repo.write("apps/web/config.yaml", st.configmap("web", {"mode": "blue"}, ns))
    repo.write("apps/web/deploy.yaml", st.deployment("web", "nginx:1.27", ns, replicas=0))
    repo.commit("web")
    engine = Engine(EngineSettings(repo=repo.url, rev="main", data_dir=tmp_path / "data"),
                    long_running=True)
    try:
        assert engine.sync().summary == {"create": 2, "update": 0, "delete": 0}
        repo.write("apps/web/config.yaml", st.configmap("web", {"mode": "green"}, ns))
        repo.commit("green")
        cluster.proxy.reset_counts()
        updated = engine.sync()
        assert updated.summary == {"create": 0, "update": 1, "delete": 0}, updated.message
        # The read came from the cache; the health gate lists (it reads status,
        # which the cache does not keep), without a label selector.
        assert [q for _, _, q in cluster.proxy.lists() if "labelSelector" in q] == []
        cluster.proxy.reset_counts()
        again = engine.sync()
        assert (again.result, again.message) == ("success", "in sync: nothing to do")
        assert engine.plan().changes() == [] and engine.drift().changes() == []
        assert cluster.proxy.lists() == [] and cluster.proxy.writes() == []
    finally:
        engine.close()


class _Item:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_keeper_keeps_one_item_per_name_until_its_identity_changes() -> None:
    keeper = Keeper()
    first = keeper.get("prod", ("kubeconfig", 1.0), _Item)
    assert keeper.get("prod", ("kubeconfig", 1.0), _Item) is first
    other = keeper.get("staging", ("kubeconfig", 1.0), _Item)
    changed = keeper.get("prod", ("kubeconfig", 2.0), _Item)
    assert changed is not first and first.closed and not other.closed
    keeper.close()
    assert changed.closed and other.closed


def test_only_a_long_running_engine_hands_backends_a_keeper(tmp_path: Path) -> None:
    from reconciler.engine import Engine, EngineSettings
    from reconciler.model import DesiredState

    target = Target(name="prod", backend=BackendKind.KUBERNETES, options={},
                    location=Location(file="reconciler.yaml"))
    desired = DesiredState(revision="r", targets={"prod": target}, apps={})
    seen: list[BackendContext] = []

    def opener(t: Target, context: BackendContext) -> Any:
        seen.append(context)
        return _Item()

    for long_running in (False, True):
        engine = Engine(EngineSettings(repo=str(tmp_path), data_dir=tmp_path / str(long_running)),
                        opener=opener, long_running=long_running)
        with engine.backends(desired, ["prod"]):
            pass
        engine.close()
    assert seen[0].keeper is None and isinstance(seen[1].keeper, Keeper)
