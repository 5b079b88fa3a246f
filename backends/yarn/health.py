"""Health of YARN services, from the service state and its component instances.

Why: the rollout engine gates every wave on one `HealthStatus`; YARN speaks in
service states (ACCEPTED ... STABLE, FAILED, STOPPED) and container states
(INIT, STARTED, READY, ...). This module maps one onto the other, in the order
kstatus teaches: the service state first, then the version the spec asks for,
then component instances (READY containers against number_of_containers).

Invariants: pure functions of GET answers; no I/O. Results fold with
`model.worse`, so one failed service makes the app Degraded.

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


def component_health(component: Mapping[str, Any]) -> ServiceHealth:
    """READY containers against the wanted count; a FAILED component is Degraded."""
    name = str(component.get("name", "?"))
    if str(component.get("state", "")).upper() == "FAILED":
        return ServiceHealth(status=HealthStatus.DEGRADED, message=f"component {name} FAILED")
    containers = [c for c in component.get("containers") or [] if isinstance(c, Mapping)]
    failed = sum(1 for c in containers if str(c.get("state", "")).upper() == "FAILED")
    if failed:
        return ServiceHealth(
            status=HealthStatus.DEGRADED, message=f"component {name}: {failed} container(s) FAILED"
        )
    wanted = int(component.get("number_of_containers") or 0)
    ready = sum(1 for c in containers if str(c.get("state", "")).upper() == "READY")
    if ready < wanted:
        return ServiceHealth(
            status=HealthStatus.PROGRESSING, message=f"component {name}: {ready}/{wanted} ready"
        )
    return ServiceHealth(status=HealthStatus.HEALTHY, message="")


def service_health(
    live: Mapping[str, Any] | None, *, name: str, version: str | None = None
) -> ServiceHealth:
    """One service's health; `live` is its GET answer, None when it does not exist.

    `version`, when given, is the version the desired spec asks for: until the
    live service reports it, an upgrade is still under way.
    """
    if live is None:
        return ServiceHealth(status=HealthStatus.MISSING, message=f"service {name} does not exist")
    state = str(live.get("state", "")).upper()
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
        found = component_health(comp)
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
