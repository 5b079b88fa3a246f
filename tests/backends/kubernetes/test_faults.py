"""Transient faults and error detail of the Kubernetes client, on the real control plane.

The faults the real server cannot be made to produce on demand (429 with
Retry-After, 5xx, dropped connections, slow answers) come from the recording
proxy in front of it; conflicts and validation errors (409, 422) come from the
real server itself. Most tests inject the client's sleep, so a Retry-After of
seconds costs nothing; the engine-level test keeps the real clock.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s_client

from backends.kubernetes.backend import KubernetesBackend
from backends.kubernetes.client import KubeClient, RetryPolicy, load_configuration
from reconciler.errors import ApiError
from reconciler.model import Action, BackendKind, Location, Target
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource
from tests.backends.kubernetes.test_backend import configmap, deployment, sync

pytestmark = pytest.mark.kubeconfig

Match = Callable[[str, str, dict[str, str]], bool]
RETRY_AFTER_1 = (("Retry-After", "1"),)


class FakeClock:
    """Sleeps are recorded and advance the clock the deadline is measured on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def own(cluster: Cluster) -> str:
    """A target name of this test's own: objects other tests left behind in
    namespaces still being deleted are never this target's to prune."""
    return f"t-{cluster.suffix}"


def backend_with(cluster: Cluster, clock: FakeClock, *, retry: RetryPolicy | None = None,
                 timeout: float = 30.0) -> KubernetesBackend:
    """A backend whose client waits on `clock` instead of the real one."""
    kubeconfig = cluster.kube.kubeconfig("kubeconfig-faults")
    configuration = load_configuration(kubeconfig=str(kubeconfig), context=None,
                                       in_cluster=False)
    client = KubeClient(configuration, timeout=timeout, retry=retry or RetryPolicy(),
                        sleep=clock.sleep,
                        clock=clock.monotonic)
    target = Target(name=own(cluster), backend=BackendKind.KUBERNETES,
                    options={"kubeconfig": str(kubeconfig), "namespace": cluster.namespace},
                    location=Location(file="reconciler.yaml"))
    return KubernetesBackend(target, client)


def sync_with(backend: KubernetesBackend, manifests: list[dict[str, Any]],
              app: str = "web") -> Any:
    resources = [resource(app, m) for m in manifests]
    changes = plan_changes(backend.read_live(resources, {}), resources, app)
    return changes, backend.apply(make_app(app, resources), changes)


def hits(cluster: Cluster, method: str, path: str, *, dry_run: bool | None = None) -> int:
    """Requests the proxy saw for (method, path); dry_run None counts both kinds."""
    return sum(1 for m, p, q in cluster.proxy.requests
               if m == method and p == path and (dry_run is None or ("dryRun=" in q) == dry_run))


def on(method: str, path: str, *, dry_run: bool | None = None) -> Match:
    def match(m: str, p: str, query: dict[str, str]) -> bool:
        return m == method and p == path and (dry_run is None or ("dryRun" in query) == dry_run)

    return match


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "backends.kubernetes.client" and r.levelno == logging.INFO]


# --- 429 and 5xx with Retry-After ----------------------------------------------------


def test_a_429_on_a_list_is_retried_after_retry_after(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="backends.kubernetes.client")
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", cm_path(ns)), 429, times=2, headers=(("Retry-After", "3"),))
    changes, result = sync_with(backend_with(cluster, clock),
                                [configmap(ns, "cfg", {"k": "a-value-never-logged"})])
    assert [c.action for c in changes] == [Action.CREATE] and result.applied == 1
    assert hits(cluster, "GET", cm_path(ns)) == 3
    assert clock.sleeps == [3.0, 3.0]
    lines = retry_lines(caplog)
    assert len(lines) == 2
    # Method, object, wait and reason; never a body.
    assert lines == [f"retrying GET ConfigMap list in {ns} in 3 s (retry 1): 429 TooManyRequests",
                     f"retrying GET ConfigMap list in {ns} in 3 s (retry 2): 429 TooManyRequests"]
    assert "a-value-never-logged" not in caplog.text


def test_a_429_on_an_apply_is_retried_and_the_sync_succeeds(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    path = cm_path(ns, "cfg")
    cluster.proxy.fault(on("PATCH", path, dry_run=False), 429, times=3, headers=RETRY_AFTER_1)
    _, result = sync_with(backend_with(cluster, clock), [configmap(ns, "cfg", {"k": "v"})])
    assert result.applied == 1
    assert hits(cluster, "PATCH", path, dry_run=False) == 4
    assert clock.sleeps == [1.0, 1.0, 1.0]
    live = cluster.env.get(path)
    assert live is not None and live["data"] == {"k": "v"}


def test_a_503_with_retry_after_on_discovery_is_retried(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", "/apis/apps/v1"), 503, times=1, headers=(("Retry-After", "2"),))
    _, result = sync_with(backend_with(cluster, clock), [deployment(ns, "web")])
    assert result.applied == 1
    assert hits(cluster, "GET", "/apis/apps/v1") == 2
    assert clock.sleeps == [2.0]
    assert cluster.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web") is not None


def test_a_500_without_retry_after_is_not_retried(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", cm_path(ns)), 500, times=5)
    backend = backend_with(cluster, clock)
    with pytest.raises(ApiError) as failed:
        backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    assert failed.value.status == 500 and failed.value.reason == "InternalError"
    assert str(failed.value) == (f"GET ConfigMap list in {ns}: "
                                 "500 injected by the test proxy: InternalError")
    assert hits(cluster, "GET", cm_path(ns)) == 1
    assert clock.sleeps == []


def test_more_429s_than_the_limit_fail_with_the_status(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", cm_path(ns)), 429, times=50, headers=RETRY_AFTER_1)
    backend = backend_with(cluster, clock)
    with pytest.raises(ApiError) as failed:
        backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    # client-go's limit: 10 retries, so 11 requests, then the last answer's error.
    assert hits(cluster, "GET", cm_path(ns)) == 11
    assert clock.sleeps == [1.0] * 10
    assert failed.value.status == 429 and failed.value.reason == "TooManyRequests"
    assert "429" in str(failed.value) and "after 10 retries" in str(failed.value)


def test_the_retry_limit_and_the_wait_cap_are_settings(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    for header in (("Retry-After", "120"), ("Retry-After", "soon"), None):
        cluster.proxy.fault(on("GET", cm_path(ns)), 429, headers=(header,) if header else ())
    backend = backend_with(cluster, clock, retry=RetryPolicy(max_retries=2, max_wait=5.0))
    with pytest.raises(ApiError, match=r"429 .*after 2 retries"):
        backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    # 120 s is capped; a garbled header, like a missing one, means 1 s.
    assert clock.sleeps == [5.0, 1.0]
    assert hits(cluster, "GET", cm_path(ns)) == 3


def test_the_deadline_bounds_all_retries_of_a_request(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", cm_path(ns)), 503, times=10, headers=(("Retry-After", "4"),))
    backend = backend_with(cluster, clock, retry=RetryPolicy(deadline=10.0))
    with pytest.raises(ApiError) as failed:
        backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    assert clock.sleeps == [4.0, 4.0]
    assert hits(cluster, "GET", cm_path(ns)) == 3
    assert failed.value.status == 503
    assert "after 2 retries; gave up" in str(failed.value)
    assert "10 s deadline" in str(failed.value)


# --- no answer ------------------------------------------------------------------------


def test_a_dropped_connection_on_a_get_is_retried(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="backends.kubernetes.client")
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", cm_path(ns)), 0, times=2)
    backend = backend_with(cluster, clock)
    view = backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    assert view.live == {}
    assert hits(cluster, "GET", cm_path(ns)) == 3
    assert clock.sleeps == [0.25, 0.5]
    lines = retry_lines(caplog)
    assert len(lines) == 2 and all("ProtocolError" in line for line in lines), lines


def test_a_dropped_connection_on_an_apply_is_retried(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    path = cm_path(ns, "cfg")
    cluster.proxy.fault(on("PATCH", path, dry_run=False), 0, times=1)
    _, result = sync_with(backend_with(cluster, clock), [configmap(ns, "cfg", {"k": "v"})])
    assert result.applied == 1
    assert hits(cluster, "PATCH", path, dry_run=False) == 2
    assert cluster.env.get(path) is not None


def test_a_dropped_connection_on_a_post_is_not_retried(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("POST", cm_path(ns)), 0, times=1)
    backend = backend_with(cluster, clock)
    with pytest.raises(ApiError, match=r"POST cm: cannot reach the API server: ProtocolError"):
        backend.client.request("POST", cm_path(ns), what="cm",
                               body=configmap(ns, "made-once", {"k": "v"}))
    assert hits(cluster, "POST", cm_path(ns)) == 1
    assert clock.sleeps == []


def test_a_read_timeout_on_a_get_is_retried(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    # The first answer comes after the client's 0.5 s timeout; the next is on time.
    cluster.proxy.fault(on("GET", cm_path(ns)), -1, times=1, delay=1.5)
    backend = backend_with(cluster, clock, timeout=0.5)
    view = backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    assert view.live == {}
    assert hits(cluster, "GET", cm_path(ns)) == 2
    assert clock.sleeps == [0.25]


def test_connection_retries_are_bounded(cluster: Cluster) -> None:
    ns, clock = cluster.namespace, FakeClock()
    cluster.proxy.fault(on("GET", cm_path(ns)), 0, times=10)
    backend = backend_with(cluster, clock, retry=RetryPolicy(connection_retries=2))
    with pytest.raises(ApiError, match=r"cannot reach the API server: .*after 2 retries") as e:
        backend.read_live([resource("web", configmap(ns, "cfg", {}))], {})
    assert e.value.status == 0
    assert hits(cluster, "GET", cm_path(ns)) == 3


def test_a_refused_connect_is_retried_even_for_a_post() -> None:
    """Nothing was sent, so nothing can be created twice."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    configuration = k8s_client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    clock = FakeClock()
    client = KubeClient(configuration, sleep=clock.sleep, clock=clock.monotonic)
    with pytest.raises(ApiError, match=r"POST ns: cannot reach the API server: "
                       r"NewConnectionError \(.*Connection refused\) \(after 3 retries\)"):
        client.request("POST", "/api/v1/namespaces", what="ns", body={"metadata": {}})
    assert clock.sleeps == [0.25, 0.5, 1.0]


# --- the engine-level effect, on the real clock ------------------------------------------


def test_a_transient_429_during_an_apply_does_not_fail_the_sync(cluster: Cluster) -> None:
    ns = cluster.namespace
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    cluster.proxy.fault(on("PATCH", path, dry_run=False), 429, times=1, headers=RETRY_AFTER_1)
    began = time.monotonic()
    manifests = [deployment(ns, "web"), configmap(ns, "cfg", {"k": "v"})]
    changes, result = sync(cluster, manifests, name=own(cluster))
    waited = time.monotonic() - began
    assert sorted(c.action for c in changes) == [Action.CREATE] * 2 and result.applied == 2
    assert hits(cluster, "PATCH", path, dry_run=False) == 2
    assert waited >= 1.0
    assert cluster.env.get(path) is not None


# --- error detail from the real server ---------------------------------------------------


def _autoscale(cluster: Cluster, replicas: int) -> None:
    """Another field manager takes spec.replicas, as an autoscaler does."""
    cluster.env.apply(f"/apis/apps/v1/namespaces/{cluster.namespace}/deployments/web", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": cluster.namespace},
        "spec": {"replicas": replicas}}, "autoscaler", force=True)


def test_a_field_conflict_names_each_field_and_its_manager(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [deployment(ns, "web", replicas=2)], name=own(cluster))
    _autoscale(cluster, 5)
    with pytest.raises(ApiError) as failed:
        sync(cluster, [deployment(ns, "web", replicas=3)], name=own(cluster))
    error = failed.value
    assert error.status == 409 and error.reason == "Conflict"
    assert error.conflicts == ((".spec.replicas", "autoscaler"),)
    assert f"PATCH Deployment.apps/{ns}/web: 409" in str(error)
    assert 'conflict with "autoscaler": .spec.replicas' in str(error)


def test_several_conflicts_name_every_field_and_manager(cluster: Cluster) -> None:
    ns = cluster.namespace
    sync(cluster, [deployment(ns, "web", replicas=2, labels={"team": "a"})], name=own(cluster))
    _autoscale(cluster, 5)
    # An Update (not an apply) by another tool: the server words it differently.
    status, answer = cluster.env.call(
        "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/web?fieldManager=kubectl-edit",
        {"metadata": {"labels": {"team": "b"}}}, content_type="application/merge-patch+json")
    assert status == 200, answer
    with pytest.raises(ApiError) as failed:
        sync(cluster, [deployment(ns, "web", replicas=3, labels={"team": "c"})],
             name=own(cluster))
    assert failed.value.reason == "Conflict"
    assert sorted(failed.value.conflicts) == [(".metadata.labels.team", "kubectl-edit"),
                                              (".spec.replicas", "autoscaler")]
    text = str(failed.value)
    assert "Apply failed with 2 conflicts: " in text and "\n" not in text
    assert 'conflict with "kubectl-edit" using apps/v1' in text


def test_other_409s_carry_no_field_conflicts(cluster: Cluster) -> None:
    ns = cluster.namespace
    backend = cluster.backend(own(cluster))
    body = configmap(ns, "cfg", {"k": "v"})
    made = backend.client.request("POST", cm_path(ns), what="cm", body=body).body
    with pytest.raises(ApiError) as exists:
        backend.client.request("POST", cm_path(ns), what="cm", body=body)
    assert (exists.value.status, exists.value.reason) == (409, "AlreadyExists")
    assert exists.value.conflicts == ()
    backend.client.request("PUT", cm_path(ns, "cfg"), what="cm", body={**made, "data": {"k": "2"}})
    with pytest.raises(ApiError) as stale:  # the resourceVersion read before the PUT above
        backend.client.request("PUT", cm_path(ns, "cfg"), what="cm",
                               body={**made, "data": {"k": "3"}})
    assert (stale.value.status, stale.value.reason) == (409, "Conflict")
    assert stale.value.conflicts == ()
    assert "the object has been modified" in str(stale.value)


def _server_message(cluster: Cluster, path: str, manifest: dict[str, Any]) -> str:
    status, answer = cluster.env.call("PATCH", path + "?fieldManager=probe", manifest,
                                      content_type="application/apply-patch+yaml")
    assert status == 422, (status, answer)
    return str(answer["message"]).splitlines()[0]


def test_a_rejected_name_gives_invalid_and_the_server_message(cluster: Cluster) -> None:
    ns = cluster.namespace
    manifest = configmap(ns, "Bad_Name", {"k": "v"})
    expected = _server_message(cluster, cm_path(ns, "Bad_Name"), manifest)
    with pytest.raises(ApiError) as failed:
        sync(cluster, [manifest], name=own(cluster))
    assert failed.value.status == 422 and failed.value.reason == "Invalid"
    assert failed.value.conflicts == ()
    assert 'metadata.name: Invalid value: "Bad_Name"' in expected
    # The whole first line, however long (the RFC 1123 rule runs past 300 characters),
    # after the manifest's file:line.
    assert len(expected) > 300
    assert str(failed.value) == f"apps/web/x.yaml: PATCH ConfigMap/{ns}/Bad_Name: 422 {expected}"


def test_a_rejected_value_names_the_field_and_the_value(cluster: Cluster) -> None:
    ns = cluster.namespace
    with pytest.raises(ApiError) as failed:
        sync(cluster, [deployment(ns, "web", replicas=-1)], name=own(cluster))
    assert failed.value.status == 422 and failed.value.reason == "Invalid"
    assert "spec.replicas: Invalid value: -1" in str(failed.value)
    assert "Deployment.apps/" in str(failed.value) and "/web" in str(failed.value)


def test_a_rejected_secret_gives_invalid_without_the_message(cluster: Cluster) -> None:
    ns = cluster.namespace
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"bad key!": "hunter2-never-shown"}}
    with pytest.raises(ApiError) as failed:
        sync(cluster, [secret], name=own(cluster))
    assert failed.value.status == 422 and failed.value.reason == "Invalid"
    assert str(failed.value) == f"apps/web/x.yaml: PATCH Secret/{ns}/creds: 422 Invalid"
