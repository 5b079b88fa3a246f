"""Targets spread over shards, one Lease per shard, held by the replicas.

Why: one leader syncing every target makes one replica do all the work and
leaves the others idle; with `leader_election.shards: N`, each target belongs
to one shard by a stable hash of its name (FNV-1a, 32 bits, modulo N, as Argo
CD spreads clusters over controller replicas), so every replica computes the
same map without talking, and each shard has its own Lease
(`<lease name>-<i>`) elected as `daemon.leader` elects one.

Fair share: every replica says it is alive in the shared history
(`History.heartbeat`, every `retry_period`), and counts the live ones (seen
within `lease_duration`). A replica tries to take a free shard only while it
holds fewer than ceil(N / live replicas); holding more than that, it hands its
highest-numbered idle shard back (releases that Lease), and some replica
below its share takes it at its next try. Three replicas and three shards
therefore end at one shard each, whatever the order they started in; a
replica that dies stops renewing, its Leases expire after `lease_duration`,
and the others (now fewer, so with a larger share) take them within
`lease_duration + retry_period`.

Liveness is the writer's wall clock read by the reader's: clocks more than
`lease_duration` apart make a replica count one too many or too few, which
only changes how shards are balanced, never who may sync a target (that is
the Lease, then the fence, `daemon.fence`).

Webhooks: a delivery reaches whichever replica the Service picked, which may
hold none of the shards the commit concerns. It stores a request in the
history (`History.relay`); every replica reads new requests at each
heartbeat (`on_requests`), so the holders fetch within about `retry_period`
instead of at their next poll.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence

from reconciler.daemon.config import DaemonConfig, lease_name, lease_seconds
from reconciler.daemon.leader import LeaderElector, LeaderState, open_elector
from reconciler.daemon.logging import fields
from reconciler.errors import HistoryError
from reconciler.history import History
from reconciler.history.records import RelayedRequest

log = logging.getLogger("reconciler.daemon")

FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193


def shard_of(target: str, shards: int) -> int:
    """The shard of `target`: FNV-1a (32 bits) of its UTF-8 name, modulo `shards`."""
    value = FNV_OFFSET
    for byte in target.encode("utf-8"):
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value % max(1, shards)


def in_shard(targets: Sequence[str], shard: int, shards: int) -> list[str]:
    return sorted(t for t in targets if shard_of(t, shards) == shard)


def fair_share(shards: int, live: int) -> int:
    """How many shards one replica may hold when `live` replicas share them."""
    return math.ceil(shards / max(1, live))


def shard_lease(config: DaemonConfig, index: int) -> str:
    return f"{lease_name(config)}-{index}"


class ShardSet:
    """This replica's electors, one per shard, and the heartbeat that balances them.

    `on_started(i)` / `on_stopped(i)` run on shard i's election threads (see
    `LeaderElector`); `busy(i)` says a rollout of shard i runs here, and such a
    shard is never handed back to balance (only lost)."""

    def __init__(self, config: DaemonConfig, history: History, *, identity: str,
                 on_started: Callable[[int], None], on_stopped: Callable[[int], None],
                 busy: Callable[[int], bool], address: Callable[[], str] = lambda: "",
                 on_requests: Callable[[list[RelayedRequest]], None] = lambda _r: None,
                 ) -> None:
        le = config.leader_election
        self.count = le.shards or 1
        self.identity = identity
        self.history = history
        self._busy = busy
        self._address = address
        self._period = le.retry_period
        self._alive_within = float(lease_seconds(le)) + le.retry_period
        self._live = 1
        self._on_requests = on_requests
        self._seen: int | None = None
        """The newest relayed request read; None until the first read."""
        self._stop = threading.Event()
        self._heart = threading.Thread(target=self._beat, name="shard-heartbeat", daemon=True)
        self.electors: list[LeaderElector] = [
            open_elector(config, identity=identity, name=shard_lease(config, i),
                         on_started=lambda i=i: on_started(i),  # type: ignore[misc]
                         on_stopped=lambda i=i: on_stopped(i),  # type: ignore[misc]
                         wants=lambda i=i: self._wants(i))  # type: ignore[misc]
            for i in range(self.count)]

    def holds(self, index: int) -> bool:
        return self.electors[index].is_leader()

    def held(self) -> list[int]:
        return [i for i, e in enumerate(self.electors) if e.is_leader()]

    def states(self) -> list[LeaderState]:
        return [e.state() for e in self.electors]

    @property
    def live(self) -> int:
        return self._live

    def start(self) -> None:
        self._heartbeat()  # before any elector tries: others count this replica at once
        self._heart.start()
        for elector in self.electors:
            elector.start()

    def stop(self, *, release: bool = True, timeout: float | None = None) -> None:
        self._stop.set()
        if self._heart.is_alive():
            self._heart.join(timeout)
        for elector in self.electors:
            elector.stop(release=release, timeout=timeout)
        try:
            self.history.forget_replica(self.identity)
        except HistoryError as err:
            log.warning("cannot remove this replica from the history", extra=fields(
                identity=self.identity, error=str(err)))

    def _wants(self, index: int) -> bool:
        held = self.held()
        share = fair_share(self.count, self._live)
        if index not in held:
            return len(held) < share
        if len(held) <= share or self._busy(index):
            return True
        # One shard too many: hand back the highest idle one, one per try.
        idle = [i for i in held if not self._busy(i)]
        return not idle or index != max(idle)

    def _read_requests(self) -> None:
        try:
            self._seen, found = self.history.requests_after(self._seen)
        except HistoryError as err:
            log.warning("shards: cannot read relayed requests", extra=fields(error=str(err)))
            return
        mine = [r for r in found if r.sender != self.identity]
        if mine:
            try:
                self._on_requests(mine)
            except Exception:
                log.exception("shards: a relayed request failed")

    def _beat(self) -> None:
        while not self._stop.wait(self._period):
            self._heartbeat()

    def _heartbeat(self) -> None:
        try:
            self.history.heartbeat(self.identity, self._address(), self.held())
            live = self.history.replicas(self._alive_within)
        except HistoryError as err:
            # Keep the last count: shards stay as they are until the store is back.
            log.warning("shards: cannot reach the history to count replicas",
                        extra=fields(error=str(err)))
            return
        self._read_requests()
        count = max(1, len(live))
        if count != self._live:
            log.info("shards: live replicas changed", extra=fields(
                live=count, share=fair_share(self.count, count)))
        self._live = count
