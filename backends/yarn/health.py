"""Health of YARN services, from the service state and its component instances.

Why: the rollout engine gates every wave on one `HealthStatus`; YARN speaks in
service states (ACCEPTED ... STABLE, FAILED, STOPPED) and container states
(INIT, STARTED, READY, ...). This module maps one onto the other, in the order
kstatus teaches: the service state first, then the version the spec asks for,
then component instances (READY containers against number_of_containers).

Invariants: pure functions of GET answers; no I/O. Results fold with
`model.worse`, so one failed service makes the app Degraded.

A READY container counts only once it has been up for `min_ready` seconds
(by its `launch_time`): YARN's default readiness check passes as soon as a
container has an IP, so a command that exits at once shows READY for a moment,
and a crash-looping component even turns STABLE between two restarts. A
container that has exited (SUCCEEDED, FAILED, STOPPED) in a component that
restarts ALWAYS (the default) is Degraded: a service's processes should run.

Known gaps: a STABLE service whose readiness check is disabled reports its
containers READY as soon as they have an IP; that is what YARN believes too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model import HealthStatus, worse

_BY_SERVICE_STATE = {
    "STABLE": HealthStatus.HEALTHY,
    "SUCCEEDED": HealthStatus.HEALTHY,
    "ACCEPTED": HealthStatus.PROGRESSING,
    "STARTED": HealthStatus.PROGRESSING,
    "FLEX": HealthStatus.PROGRESSING,
    "UPGRADING": HealthStatus.PROGRESSING,
    "UPGRADING_AUTO_FINALIZE": HealthStatus.PROGRESSING,
    "EXPRESS_UPGRADING": HealthStatus.PROGRESSING,
    "CANCEL_UPGRADING": HealthStatus.PROGRESSING,
    "FAILED": HealthStatus.DEGRADED,
    "STOPPED": HealthStatus.SUSPENDED,
}


@dataclass(frozen=True, kw_only=True)
class ServiceHealth:
    status: HealthStatus
    message: str


_EXITED = frozenset({"SUCCEEDED", "STOPPED"})


def _up_long_enough(container: Mapping[str, Any], now_ms: float | None, min_ready: float) -> bool:
    if now_ms is None or min_ready <= 0:
        return True
    launched = container.get("launch_time")
    if not isinstance(launched, int | float):
        return True
    return now_ms - float(launched) >= min_ready * 1000.0


def component_health(
    component: Mapping[str, Any], *, now_ms: float | None = None, min_ready: float = 0.0
) -> ServiceHealth:
    """READY containers against the wanted count; a FAILED component is Degraded.

    `now_ms` (milliseconds since the epoch) and `min_ready` (seconds): a READY
    container launched less than `min_ready` ago does not count yet.
    """
    name = str(component.get("name", "?"))
    if str(component.get("state", "")).upper() == "FAILED":
        return ServiceHealth(status=HealthStatus.DEGRADED, message=f"component {name} FAILED")
    containers = [c for c in component.get("containers") or [] if isinstance(c, Mapping)]
    states = [str(c.get("state", "")).upper() for c in containers]
    failed = [s for s in states if s in ("FAILED", "FAILED_UPGRADE")]
    if failed:
        return ServiceHealth(
            status=HealthStatus.DEGRADED,
            message=f"component {name}: {len(failed)} container(s) {'/'.join(sorted(set(failed)))}",
        )
    always = str(component.get("restart_policy") or "ALWAYS").upper() == "ALWAYS"
    exited = [s for s in states if s in _EXITED]
    if always and exited:
        return ServiceHealth(
            status=HealthStatus.DEGRADED,
            message=f"component {name}: {len(exited)} container(s) exited ({', '.join(exited)})",
        )
    wanted = int(component.get("number_of_containers") or 0)
    ready = sum(1 for c, s in zip(containers, states, strict=True) if s == "READY")
    proven = sum(
        1
        for c, s in zip(containers, states, strict=True)
        if s == "READY" and _up_long_enough(c, now_ms, min_ready)
    )
    if ready < wanted:
        return ServiceHealth(
            status=HealthStatus.PROGRESSING, message=f"component {name}: {ready}/{wanted} ready"
        )
    if proven < wanted:
        return ServiceHealth(
            status=HealthStatus.PROGRESSING,
            message=f"component {name}: {proven}/{wanted} ready for {min_ready:g}s",
        )
    return ServiceHealth(status=HealthStatus.HEALTHY, message="")


def service_health(
    live: Mapping[str, Any] | None,
    *,
    name: str,
    version: str | None = None,
    now_ms: float | None = None,
    min_ready: float = 0.0,
    want_stopped: bool = False,
) -> ServiceHealth:
    """One service's health; `live` is its GET answer, None when it does not exist.

    `version`, when given, is the version the desired spec asks for: until the
    live service reports it, an upgrade is still under way. `now_ms` and
    `min_ready` as for `component_health`. With `want_stopped` (the spec says
    `state: STOPPED`) a STOPPED service is Healthy: it is as declared.
    """
    if live is None:
        return ServiceHealth(status=HealthStatus.MISSING, message=f"service {name} does not exist")
    state = str(live.get("state", "")).upper()
    if want_stopped:
        if state == "STOPPED":
            return ServiceHealth(status=HealthStatus.HEALTHY, message="")
        return ServiceHealth(
            status=HealthStatus.PROGRESSING, message=f"service {name} is {state}, not STOPPED yet"
        )
    status = _BY_SERVICE_STATE.get(state, HealthStatus.UNKNOWN)
    message = f"service {name} is {state or 'in no state'}"
    if status in (HealthStatus.DEGRADED, HealthStatus.SUSPENDED):
        return ServiceHealth(status=status, message=message)
    behind = version is not None and str(live.get("version")) != version
    if behind and status == HealthStatus.HEALTHY:
        status = HealthStatus.PROGRESSING
        message = f"service {name} runs version {live.get('version')}, not {version} yet"
    for comp in live.get("components") or []:
        if not isinstance(comp, Mapping):
            continue
        found = component_health(comp, now_ms=now_ms, min_ready=min_ready)
        if worse(found.status, status) is found.status and found.status != status:
            status, message = found.status, f"service {name}: {found.message}"
    return ServiceHealth(status=status, message=message)


def fold(results: Iterable[ServiceHealth]) -> ServiceHealth:
    """The worst of several results; its message names what made it so."""
    status, messages = HealthStatus.HEALTHY, []
    for r in results:
        status = worse(status, r.status)
        if r.status != HealthStatus.HEALTHY and r.message:
            messages.append(r.message)
    return ServiceHealth(status=status, message="; ".join(messages))
