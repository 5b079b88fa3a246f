"""The health gate: poll an app's health on a batch of hosts until it passes.

A batch passes when every host in it reports Healthy. The gate polls with
backoff (starting at the checks' shortest `interval`, growing by half each
round, capped) until the app's `timeout`. A host fails early once it reported
Degraded on `retries + 1` consecutive probes (the largest `retries` of the
app's checks), so a plainly broken release does not hold the rollout for the
whole timeout; Progressing, Missing and Unknown keep the gate waiting until the
deadline. A probe that raises counts as Degraded for every host it asked about.

A stop request (`stop`) abandons the gate at its next poll: hosts still
pending are neither passed nor failed, so their inventory stays "applied"
and the next sync gates them again. The probe in flight is never cut short,
and at least one probe runs, so hosts already healthy are recorded as such.

The clock and the sleep are parameters, so the gate is tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from backends.base import HealthReport
from reconciler.errors import ReconcilerError
from reconciler.model import App, HealthStatus

Probe = Callable[[Sequence[str]], HealthReport]


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    timeout: float
    interval: float = 1.0
    max_interval: float = 5.0
    failure_threshold: int = 4

    @classmethod
    def for_app(cls, app: App) -> GatePolicy:
        if not app.health:
            return cls(timeout=app.timeout)
        interval = max(0.01, min(c.interval for c in app.health))
        return cls(
            timeout=app.timeout,
            interval=interval,
            max_interval=max(interval, min(5.0, interval * 8)),
            failure_threshold=max(c.retries for c in app.health) + 1,
        )


@dataclass(frozen=True, kw_only=True)
class GateResult:
    statuses: Mapping[str, HealthStatus]
    failed: tuple[str, ...]
    message: str
    probes: int
    abandoned: bool = False
    """A stop request ended the gate with hosts still pending (neither passed nor failed)."""

    @property
    def healthy(self) -> bool:
        return not self.failed and not self.abandoned

    @property
    def passed(self) -> tuple[str, ...]:
        return tuple(h for h, s in self.statuses.items() if s is HealthStatus.HEALTHY)


def _probe(probe: Probe, hosts: Sequence[str]) -> HealthReport:
    try:
        return probe(hosts)
    except ReconcilerError as err:
        return HealthReport(status=HealthStatus.DEGRADED, message=str(err))


def wait_healthy(
    probe: Probe,
    hosts: Sequence[str],
    policy: GatePolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> GateResult:
    statuses = {h: HealthStatus.UNKNOWN for h in hosts}
    strikes = dict.fromkeys(hosts, 0)
    failed: list[str] = []
    pending = list(hosts)
    deadline = clock() + policy.timeout
    pause, probes, message = policy.interval, 0, ""
    abandoned = False
    while pending:
        report = _probe(probe, pending)
        probes += 1
        message = report.message or message
        for host in pending:
            status = report.hosts.get(host, report.status) if report.hosts else report.status
            statuses[host] = status
            strikes[host] = strikes[host] + 1 if status is HealthStatus.DEGRADED else 0
        failed.extend(h for h in pending if strikes[h] >= policy.failure_threshold)
        pending = [h for h in pending
                   if statuses[h] is not HealthStatus.HEALTHY and h not in failed]
        if pending and stop is not None and stop.is_set():
            abandoned = True
            message = "stop requested: health gate abandoned" + (
                f" ({message})" if message else "")
            break
        remaining = deadline - clock()
        if pending and remaining <= 0:
            failed.extend(pending)
            message = f"timed out after {policy.timeout:g}s" + (f": {message}" if message else "")
            break
        if pending:
            sleep(min(pause, remaining))
            pause = min(pause * 1.5, policy.max_interval)
    order = {h: i for i, h in enumerate(hosts)}
    return GateResult(
        statuses=statuses, failed=tuple(sorted(failed, key=order.__getitem__)),
        message=message if failed or abandoned else "healthy", probes=probes,
        abandoned=abandoned,
    )
