"""Leader election between daemon replicas over a coordination.k8s.io/v1 Lease.

Why a Lease: it is how Kubernetes controllers elect a leader (client-go's
`tools/leaderelection`), it needs nothing but the API server the replicas
already reach, and `kubectl get lease` shows who leads. This module follows
client-go's algorithm:

- A candidate reads the Lease every `retry_period` (jittered, so candidates do
  not write in lockstep). It takes the Lease when there is none (create), when
  `holderIdentity` is empty (a leader released it), or when the record has not
  changed for `leaseDurationSeconds` (the holder stopped renewing). Taking over
  from another holder increments `leaseTransitions`.
- The leader renews (`renewTime`) every `retry_period`. Every write is a PUT
  carrying the `resourceVersion` it read: a 409 means another replica wrote
  first, and this one did not win (optimistic concurrency; no lock of our own).
- The leader stops acting as leader when it has not renewed for
  `renew_deadline`, or at once when the Lease names another holder.
  `is_leader()` checks the deadline itself, and a watch thread calls
  `on_stopped` at the deadline, so both happen on time even while a request
  hangs (client-go cancels the request at the deadline; a blocking Python
  request cannot be cancelled, and one try may outlast the deadline).
- `stop(release=True)` writes an empty `holderIdentity` (and a 1 s lease), so
  another replica takes over at its next try instead of after
  `lease_duration`.
- `wants` (shards, `daemon.shards`): while it answers False a candidate does
  not try to take the Lease, and a leader stops leading and releases it, so
  replicas can hand shards to one another to balance them.

Expiry is measured as client-go measures it: from when this replica last saw
the record change, on its own monotonic clock, not by comparing the record's
`renewTime` with the local wall clock. Clock skew between replicas therefore
cannot make two leaders; the price is that a replica starting next to a long
dead lease waits one `lease_duration` before it takes it.

Safety rests on `renew_deadline < lease_duration` (checked by the config): a
leader gives up before any follower may take over. The Kubernetes client is
imported only by `open_elector`, so a daemon without leader election never
loads it.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import Gauge

from reconciler.daemon.config import DaemonConfig, lease_name, lease_seconds
from reconciler.daemon.logging import fields
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:  # the client itself is imported only when an elector is opened
    from backends.kubernetes.client import KubeClient

log = logging.getLogger("reconciler.daemon")

LEADER = Gauge("reconciler_daemon_leader", "1 while this replica holds the leader Lease")

API_VERSION = "coordination.k8s.io/v1"
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
JITTER = 1.2
"""client-go's JitterFactor: candidates wait retry_period * (1 + [0, 1.2))."""

Lease = Mapping[str, Any]


class LeaseStore(Protocol):
    """One Lease object on the API server. Conflicts are answers, not errors:
    `create` and `replace` return None on 409; other failures raise ReconcilerError."""

    def get(self) -> Lease | None: ...
    def create(self, body: Lease) -> Lease | None: ...
    def replace(self, body: Lease) -> Lease | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class LeaderState:
    """What the status page and `/api/v1/status` may show about leadership."""

    identity: str
    """This replica's holderIdentity."""
    lease: str
    """namespace/name of the Lease."""
    is_leader: bool = False
    holder: str | None = None
    """Who holds the Lease as last read ("" released, None not read yet)."""
    transitions: int = 0
    observed: float | None = None
    """time.time() of the last successful read or write of the Lease."""
    error: str | None = None
    """The last failure talking to the API server, until the next success."""


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """The pod name (the Downward API's POD_NAME, else the hostname, which is the
    pod name in a pod) plus a random suffix, so a restarted process never
    mistakes its predecessor's lease for its own."""
    name = os.environ.get("POD_NAME") or socket.gethostname() or "reconciler"
    return f"{name}_{uuid.uuid4().hex[:8]}"


def _spec(lease: Lease | None) -> Mapping[str, Any]:
    spec = (lease or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _version(lease: Lease | None) -> str:
    return str(((lease or {}).get("metadata") or {}).get("resourceVersion") or "")


class LeaderElector:
    """Runs the election on its own thread; `is_leader()` is safe from any thread.

    `on_started` runs on the election thread, `on_stopped` on it or on the
    deadline watch thread; neither may block for long: a slow callback delays
    the next renewal.
    """

    def __init__(
        self, store: LeaseStore, *, identity: str, namespace: str, name: str,
        lease_duration: float, renew_deadline: float, retry_period: float,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wants: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.identity = identity
        self.namespace, self.name = namespace, name
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started, self._on_stopped = on_started, on_stopped
        self._clock = clock
        self._wants = wants
        self._lock = threading.Lock()
        self._state = LeaderState(identity=identity, lease=f"{namespace}/{name}")
        self._leading = False
        self._renewed_at = 0.0
        """clock() when the last successful write was sent: the leader's deadline counts
        from there, because the server may have stored it at any moment after."""
        self._record: Lease | None = None
        self._observed_version = ""
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._watch = threading.Thread(target=self._watch_deadline, name="leader-deadline",
                                       daemon=True)

    # --- any thread --------------------------------------------------------------

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self._clock() - self._renewed_at <= self.renew_deadline

    def state(self) -> LeaderState:
        with self._lock:
            return replace(self._state, is_leader=self._leading and
                           self._clock() - self._renewed_at <= self.renew_deadline)

    def start(self) -> None:
        log.info("leader election started", extra=fields(
            identity=self.identity, lease=f"{self.namespace}/{self.name}"))
        self._thread.start()
        self._watch.start()

    def stop(self, *, release: bool = True, timeout: float | None = None) -> None:
        """Stop renewing; with `release`, hand the Lease over at once when this
        replica holds it. Without, it expires after `lease_duration` (a caller whose
        rollout is still running must not let another replica start one)."""
        if self._stop.is_set():
            return  # stopped before: the store is closed
        self._stop.set()
        for thread in (self._thread, self._watch):
            if thread.is_alive():
                thread.join(timeout)
        was_leading = self._leading
        self._lose("stopped")
        try:
            if release and was_leading:
                self._release()
        finally:
            self.store.close()

    # --- the election thread -----------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wanted() and not self._orphaned():
                self._stop.wait(self.retry_period * (1 + random.random() * JITTER))
                continue
            sent = self._clock()
            try:
                won = self._try_acquire_or_renew()
            except ReconcilerError as err:
                won = False
                self._failed(str(err))
            except Exception as err:
                # The thread must outlive a bug or an odd answer: losing it would
                # leave a leader that never renews, or a follower that never leads.
                won = False
                log.exception("leader election attempt failed")
                self._failed(type(err).__name__)
            self._after_attempt(won, sent)
            wait = self.retry_period
            if not self._leading:
                wait *= 1 + random.random() * JITTER
            self._stop.wait(wait)

    def _wanted(self) -> bool:
        """False when this replica should not hold the Lease now; a leader then
        stops acting as one first and releases the Lease after."""
        try:
            wanted = self._wants()
        except Exception:
            log.exception("leader election: wants() failed")
            wanted = True
        if not wanted and self._leading:
            self._lose("handed over to balance shards")
            try:
                self._release()
            except Exception:
                log.exception("leader election: release failed")
        return wanted

    def _orphaned(self) -> bool:
        """A Lease whose holder stopped renewing (not one released): taken even
        when not wanted, so a dead replica's shard never waits for the balance
        to notice it is gone; the balance hands it on later if need be."""
        if self._leading:
            return False
        try:
            current = self.store.get()
        except Exception:
            return False  # the next try says what failed
        if current is None:
            return False
        self._observe(current)
        holder = str(_spec(current).get("holderIdentity") or "")
        return bool(holder) and holder != self.identity and self._expired(current)

    def _watch_deadline(self) -> None:
        """Ends leadership at the renew deadline while a try is still running: the
        election thread looks at the deadline only between tries."""
        while not self._stop.is_set():
            with self._lock:
                leading = self._leading
                left = self._renewed_at + self.renew_deadline - self._clock()
            if leading and left < 0:
                self._lose(f"not renewed for {self.renew_deadline:g}s", expired_only=True)
                continue
            self._stop.wait(min(max(left, 0.01), self.retry_period) if leading
                            else self.retry_period)

    def _after_attempt(self, won: bool, sent: float) -> None:
        if won and self._clock() - sent > self.renew_deadline:
            # A renewal that took longer than the deadline counts from when it
            # was sent: too old to lead on. The next try renews again.
            won = False
        if won:
            with self._lock:
                started = not self._leading
                self._leading, self._renewed_at = True, sent
            if started:
                LEADER.set(1)
                log.info("became leader", extra=fields(
                    identity=self.identity, lease=f"{self.namespace}/{self.name}"))
                self._call(self._on_started)
            return
        with self._lock:
            holder = self._state.holder
        if self._leading and holder not in (None, "", self.identity):
            self._lose(f"the lease is held by {holder}")
        elif self._leading and self._clock() - self._renewed_at > self.renew_deadline:
            self._lose(f"not renewed for {self.renew_deadline:g}s")

    def _lose(self, why: str, *, expired_only: bool = False) -> None:
        with self._lock:
            if expired_only and self._clock() - self._renewed_at <= self.renew_deadline:
                return  # renewed meanwhile
            was, self._leading = self._leading, False
        if was:
            LEADER.set(0)
            level = logging.INFO if why == "stopped" else logging.WARNING
            log.log(level, "stopped leading", extra=fields(
                identity=self.identity, lease=f"{self.namespace}/{self.name}", why=why))
            self._call(self._on_stopped)

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("leader election callback failed")

    def _failed(self, error: str) -> None:
        log.warning("leader election: cannot reach the lease", extra=fields(
            lease=f"{self.namespace}/{self.name}", error=error))
        with self._lock:
            self._state = replace(self._state, error=error)

    def _observe(self, lease: Lease) -> None:
        """Remember the record and, when it changed, when we saw it change: the
        local clock that expiry is measured on."""
        version = _version(lease)
        spec = _spec(lease)
        with self._lock:
            if version != self._observed_version:
                self._observed_version, self._observed_at = version, self._clock()
            self._record = lease
            self._state = replace(
                self._state, holder=str(spec.get("holderIdentity") or ""),
                transitions=int(spec.get("leaseTransitions") or 0),
                observed=time.time(), error=None)

    def _expired(self, lease: Lease) -> bool:
        seconds = _spec(lease).get("leaseDurationSeconds")
        duration = float(seconds) if isinstance(seconds, int | float) else self.lease_duration
        return self._clock() > self._observed_at + duration

    def _try_acquire_or_renew(self) -> bool:
        """One try, as client-go's tryAcquireOrRenew: True when this replica holds
        the Lease afterwards."""
        stamp = micro_time(datetime.now(UTC))
        current = self.store.get()
        if current is None:
            created = self.store.create(self._body(None, stamp))
            if created is None:
                return False  # another replica created it first
            self._observe(created)
            return True
        self._observe(current)
        holder = str(_spec(current).get("holderIdentity") or "")
        if holder and holder != self.identity and not self._expired(current):
            return False
        updated = self.store.replace(self._body(current, stamp))
        if updated is None:
            log.info("leader election: lost a write race (409)", extra=fields(
                lease=f"{self.namespace}/{self.name}"))
            return False
        self._observe(updated)
        return True

    def _body(self, current: Lease | None, stamp: str) -> dict[str, Any]:
        """The Lease as this replica writes it: ours, renewed now."""
        body: dict[str, Any] = copy.deepcopy(dict(current)) if current else {
            "apiVersion": API_VERSION, "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace}}
        spec = _spec(current)
        ours = spec.get("holderIdentity") == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        body["spec"] = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": spec.get("acquireTime") if ours else stamp,
            "renewTime": stamp,
            # A fresh lease starts at 0; every change of holder counts one.
            "leaseTransitions": transitions + (1 if current is not None and not ours else 0),
        }
        return body

    def _release(self) -> None:
        """client-go's release: empty holder, a 1 s lease, renewed now; a 409 means
        someone else wrote since, and then there is nothing of ours to release."""
        record = self._record
        if record is None or _spec(record).get("holderIdentity") != self.identity:
            return
        stamp = micro_time(datetime.now(UTC))
        body: dict[str, Any] = copy.deepcopy(dict(record))
        body["spec"] = {**_spec(record), "holderIdentity": "", "leaseDurationSeconds": 1,
                        "acquireTime": stamp, "renewTime": stamp}
        try:
            if self.store.replace(body) is not None:
                log.info("leader lease released", extra=fields(
                    lease=f"{self.namespace}/{self.name}"))
        except ReconcilerError as err:
            log.warning("cannot release the leader lease; it expires on its own",
                        extra=fields(lease=f"{self.namespace}/{self.name}", error=str(err)))


class KubeLeaseStore:
    """`LeaseStore` over the Kubernetes backend's HTTP seam (`KubeClient`)."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        from backends.kubernetes.client import object_path

        self._client = client
        self._what = f"lease {namespace}/{name}"
        self._collection = object_path(group="coordination.k8s.io", version="v1",
                                       plural="leases", namespace=namespace)
        self._path = f"{self._collection}/{name}"

    def get(self) -> Lease | None:
        answer = self._client.request("GET", self._path, what=self._what, allow=(404,))
        return None if answer.status == 404 else dict(answer.body)

    def create(self, body: Lease) -> Lease | None:
        answer = self._client.request("POST", self._collection, what=self._what, body=body,
                                      allow=(409,))
        return None if answer.status == 409 else dict(answer.body)

    def replace(self, body: Lease) -> Lease | None:
        answer = self._client.request("PUT", self._path, what=self._what, body=body,
                                      allow=(409,))
        return None if answer.status == 409 else dict(answer.body)

    def close(self) -> None:
        self._client.close()


def open_elector(
    config: DaemonConfig, *, on_started: Callable[[], None], on_stopped: Callable[[], None],
    identity: str | None = None, name: str | None = None,
    wants: Callable[[], bool] = lambda: True,
) -> LeaderElector:
    """An elector for `config.leader_election` (enabled), not started yet. Loads the
    Kubernetes client; raises BackendError when the kubeconfig cannot be loaded."""
    from backends.kubernetes.client import KubeClient, load_configuration

    le = config.leader_election
    kubeconfig = str(le.kubeconfig) if le.kubeconfig is not None else None
    configuration = load_configuration(kubeconfig=kubeconfig, context=le.context,
                                       in_cluster=le.in_cluster)
    namespace = le.namespace or _default_namespace(kubeconfig, le.context, le.in_cluster)
    name = name or lease_name(config)
    # A try must end well inside the renew deadline, or a hung request would use it up.
    client = KubeClient(configuration, timeout=max(0.5, le.renew_deadline / 2))
    return LeaderElector(
        KubeLeaseStore(client, namespace, name), identity=identity or default_identity(),
        namespace=namespace, name=name, lease_duration=float(lease_seconds(le)),
        renew_deadline=le.renew_deadline, retry_period=le.retry_period,
        on_started=on_started, on_stopped=on_stopped, wants=wants)


def _default_namespace(kubeconfig: str | None, context: str | None, in_cluster: bool) -> str:
    """Where a controller's Lease usually lives: its own namespace."""
    if in_cluster:
        try:
            return SA_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"
    from kubernetes import config as _k8s_config

    k8s_config: Any = _k8s_config  # the client's loaders carry no annotations
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:  # the client's loaders raise several unrelated types
        return "default"
    chosen = next((c for c in contexts or () if c.get("name") == context), None) \
        if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"
