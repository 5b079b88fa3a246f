"""Prometheus metrics of deploys, fed by engine events, on a registry of their own.

Each `Metrics` owns a `CollectorRegistry`, so two servers in one process (and
tests) never share or collide on a counter. It is the one registry `/metrics`
renders: the process-wide counters (the daemon's `reconciler_daemon_*`, on
prometheus_client's default registry, and the Python process's own) are
included in it (`include=`), read at scrape time, never copied. Counters and histograms move as
events arrive (`observe` is an EventBus listener); the two facts that are not
events (drifted resources, reporter errors) are read when Prometheus scrapes.

Metric names (all prefixed `reconciler_`):
- `deploys_total{result}`: finished deploys, by result;
- `rollout_duration_seconds`, `wave_duration_seconds`: histograms;
- `health_check_failures_total{target,app}`: health gates that did not pass;
- `drifted_resources{target}`: resources the last drift check found changed;
- `last_successful_sync_timestamp_seconds{target}`: when a sync last succeeded;
- `reporter_errors_total{reporter}`: commit statuses a reporter failed to post.
Labels hold only target, app, reporter names and results: bounded sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reconciler.events import Event, EventKind
from reconciler.model import HealthStatus
from reconciler.outcomes import DeployResult

_DURATIONS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class _Pulled(Collector):
    """A labelled value family read from a callable at scrape time."""

    def __init__(self, name: str, doc: str, label: str, read: Callable[[], Mapping[str, float]],
                 counter: bool) -> None:
        self._name, self._doc, self._label = name, doc, label
        self._read, self._counter = read, counter

    def collect(self) -> Iterator[Metric]:
        family: CounterMetricFamily | GaugeMetricFamily
        if self._counter:
            family = CounterMetricFamily(self._name, self._doc, labels=[self._label])
        else:
            family = GaugeMetricFamily(self._name, self._doc, labels=[self._label])
        try:
            values = dict(self._read())
        except Exception:
            values = {}  # a scrape must not fail because one fact is unavailable
        for key, value in sorted(values.items()):
            family.add_metric([key], value)
        yield family


class _Included(Collector):
    """Every family of another registry, read at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> list[Metric]:
        # Its names are the other registry's to keep unique; none are claimed here.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


class Metrics:
    def __init__(
        self,
        *,
        targets_of: Callable[[str], Sequence[str]] = lambda _revision: (),
        drifted: Callable[[], Mapping[str, float]] = dict,
        reporter_errors: Callable[[], Mapping[str, float]] = dict,
        include: CollectorRegistry | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deploys = Counter("reconciler_deploys", "Finished deploys by result",
                               ["result"], registry=r)
        self.rollout_seconds = Histogram("reconciler_rollout_duration_seconds",
                                         "Duration of a deploy from start to finish",
                                         buckets=_DURATIONS, registry=r)
        self.wave_seconds = Histogram("reconciler_wave_duration_seconds",
                                      "Duration of one wave, health gates included",
                                      buckets=_DURATIONS, registry=r)
        self.health_failures = Counter("reconciler_health_check_failures",
                                       "Health gates that did not pass", ["target", "app"],
                                       registry=r)
        self.last_success = Gauge("reconciler_last_successful_sync_timestamp_seconds",
                                  "Unix time of the last successful sync per target",
                                  ["target"], registry=r)
        r.register(_Pulled("reconciler_drifted_resources",
                           "Resources whose live state differs from Git, per target",
                           "target", drifted, counter=False))
        r.register(_Pulled("reconciler_reporter_errors",
                           "Commit statuses a reporter failed to post", "reporter",
                           reporter_errors, counter=True))
        if include is not None:
            r.register(_Included(include))
        self._targets_of = targets_of
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self._waves: dict[tuple[int, int], float] = {}
        self._seen: dict[int, set[str]] = {}

    def observe(self, event: Event) -> None:
        """An EventBus listener."""
        kind = event.kind
        with self._lock:
            if event.target:
                self._seen.setdefault(event.deploy_id, set()).add(event.target)
            if kind is EventKind.DEPLOY_STARTED:
                self._started[event.deploy_id] = event.timestamp
            elif kind is EventKind.WAVE_STARTED and event.wave is not None:
                self._waves[(event.deploy_id, event.wave)] = event.timestamp
            elif kind is EventKind.WAVE_DONE and event.wave is not None:
                began = self._waves.pop((event.deploy_id, event.wave), None)
                if began is not None:
                    self.wave_seconds.observe(max(0.0, event.timestamp - began))
            elif kind is EventKind.HEALTH_CHECKED and event.status != HealthStatus.HEALTHY:
                self.health_failures.labels(target=event.target, app=event.app).inc()
            elif kind is EventKind.DEPLOY_FINISHED:
                self._finished(event)

    def _finished(self, event: Event) -> None:
        self.deploys.labels(result=event.status or "unknown").inc()
        began = self._started.pop(event.deploy_id, None)
        if began is not None:
            self.rollout_seconds.observe(max(0.0, event.timestamp - began))
        seen = self._seen.pop(event.deploy_id, set())
        self._waves = {k: v for k, v in self._waves.items() if k[0] != event.deploy_id}
        if event.status == DeployResult.SUCCESS:
            try:
                targets = seen | set(self._targets_of(event.revision))
            except Exception:
                targets = seen
            for target in targets:
                self.last_success.labels(target=target).set(event.timestamp)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
