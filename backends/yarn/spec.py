"""Comparable forms of YARN service specs, and what an update has to do.

Why: the YARN Services API answers a GET with far more than was posted (the
application id, launch time, containers, quicklinks, per-component state) and
fills in server defaults (artifact type DOCKER, restart policy ALWAYS, the
service-level artifact, resource and configuration merged into every
component). A no-op reconcile must compare equal, so both the desired spec and
the live service are reduced to the same comparable form here, with the
server's defaults applied to the desired side the way `ServiceApiUtil`
resolves a spec.

Invariants:
- Every function is pure: no I/O, inputs are never mutated.
- `comparable(desired)` and `comparable(live GET of that spec)` are equal.
- `lifetime` is never compared: a GET reports the *remaining* lifetime.
- The run state is compared only as "STOPPED or not": a spec that says
  `state: STOPPED` wants a stopped service; anything else wants it running.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

KIND = "Service"
STOPPED = "STOPPED"
UPGRADING = "UPGRADING"
"""The run state a live form carries while an upgrade is in flight or stuck."""
UPGRADE_STATES = frozenset(
    {"UPGRADING", "UPGRADING_AUTO_FINALIZE", "EXPRESS_UPGRADING", "CANCEL_UPGRADING"}
)

# Fields of a component that describe what should run; everything else in a
# GET answer (state, containers, quicklinks, decommissioned_instances) is status.
_COMPONENT_FIELDS = (
    "name",
    "number_of_containers",
    "artifact",
    "resource",
    "launch_command",
    "configuration",
    "dependencies",
    "readiness_check",
    "placement_policy",
    "restart_policy",
    "run_privileged_container",
)
_SERVICE_FIELDS = (
    "name",
    "version",
    "description",
    "artifact",
    "resource",
    "configuration",
    "queue",
    "kerberos_principal",
    "docker_client_config",
)
# Values the server reports when the spec left them out.
_COMPONENT_DEFAULTS: Mapping[str, Any] = {
    "restart_policy": "ALWAYS",
    "run_privileged_container": False,
    "dependencies": [],
}


def _prune(value: Any) -> Any:
    """Drop None and empty containers recursively: the server omits or empties
    them interchangeably (Jackson NON_NULL, default empty maps and lists)."""
    if isinstance(value, Mapping):
        out = {str(k): _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list | tuple):
        return [_prune(v) for v in value if v is not None]
    return value


def _artifact(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    art = dict(value)
    art.setdefault("type", "DOCKER")  # the API's documented default
    art["type"] = str(art["type"]).upper()
    return art


def _resource(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    res = dict(value)
    # The API types memory as a string of MB; YAML authors write a number.
    if res.get("memory") is not None:
        res["memory"] = str(res["memory"])
    if res.get("cpus") is not None:
        res["cpus"] = int(res["cpus"])
    return res


def _merge_configuration(component: Any, service: Any) -> dict[str, Any]:
    """Configuration.mergeFrom: the component's keys win, service keys fill in."""
    comp = dict(component) if isinstance(component, Mapping) else {}
    glob = service if isinstance(service, Mapping) else {}
    out: dict[str, Any] = dict(comp)
    for key in ("properties", "env"):
        merged = dict(glob.get(key) or {})
        merged.update(comp.get(key) or {})
        out[key] = {k: str(v) for k, v in merged.items()}
    files = {f.get("dest_file"): f for f in glob.get("files") or [] if isinstance(f, Mapping)}
    files.update({f.get("dest_file"): f for f in comp.get("files") or [] if isinstance(f, Mapping)})
    out["files"] = sorted(files.values(), key=lambda f: str(f.get("dest_file")))
    return out


def _component(comp: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: comp[k] for k in _COMPONENT_FIELDS if k in comp}
    for key, default in _COMPONENT_DEFAULTS.items():
        if out.get(key) == default:
            del out[key]
    glob_art = service.get("artifact")
    # A service-level artifact of type SERVICE is not inherited (ServiceApiUtil).
    if (
        out.get("artifact") is None
        and isinstance(glob_art, Mapping)
        and str(glob_art.get("type", "DOCKER")).upper() != "SERVICE"
    ):
        out["artifact"] = glob_art
    if out.get("resource") is None and service.get("resource") is not None:
        out["resource"] = service["resource"]
    out["artifact"] = _artifact(out.get("artifact"))
    out["resource"] = _resource(out.get("resource"))
    out["configuration"] = _merge_configuration(
        out.get("configuration"), service.get("configuration")
    )
    if "number_of_containers" in out:
        out["number_of_containers"] = int(out["number_of_containers"])
    pruned: dict[str, Any] = _prune(out)
    return pruned


def comparable(service: Mapping[str, Any]) -> dict[str, Any]:
    """The form of a service spec (desired body or live GET) that `plan` compares."""
    out: dict[str, Any] = {k: service[k] for k in _SERVICE_FIELDS if k in service}
    if "version" in out:
        out["version"] = str(out["version"])
    out["artifact"] = _artifact(out.get("artifact"))
    out["resource"] = _resource(out.get("resource"))
    comps = [c for c in service.get("components") or [] if isinstance(c, Mapping)]
    out["components"] = sorted(
        (_component(c, service) for c in comps), key=lambda c: str(c.get("name"))
    )
    state = str(service.get("state", "")).upper()
    if state == STOPPED:
        out["state"] = STOPPED
    elif state in UPGRADE_STATES:
        # A GET during an upgrade shows the old version and spec; the marker
        # keeps such a service from comparing equal to its old spec.
        out["state"] = UPGRADING
    pruned: dict[str, Any] = _prune(out)
    return pruned


def reports_spec(live: Mapping[str, Any]) -> bool:
    """Whether a GET answer carries the service's spec.

    The ResourceManager reads the spec from the running ApplicationMaster. For
    a service that is STOPPED (saved, or stopped later), still ACCEPTED, or
    otherwise not running, it answers only name, id and state: no version, no
    components.
    """
    return bool(live.get("components")) or "version" in live


def assumed(desired: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable form of a live service whose GET carries no spec: the
    desired form with the live run state, so only start and stop can differ."""
    out = {k: v for k, v in desired.items() if k != "state"}
    if str(live.get("state", "")).upper() == STOPPED:
        out["state"] = STOPPED
    return out


def counts(form: Mapping[str, Any]) -> dict[str, int]:
    """Component name -> number_of_containers of a comparable form."""
    return {
        str(c["name"]): int(c.get("number_of_containers", 0)) for c in form.get("components", [])
    }


def _without_counts_and_state(form: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in form.items() if k != "state"}
    out["components"] = [
        {k: v for k, v in c.items() if k != "number_of_containers"}
        for c in form.get("components", [])
    ]
    return out


class Step(str, Enum):
    START = "start"
    STOP = "stop"
    FLEX = "flex"
    UPGRADE = "upgrade"
    RECREATE = "recreate"
    WAIT = "wait"


@dataclass(frozen=True, kw_only=True)
class UpdatePlan:
    """What one update of one service needs, in the order `apply` runs it."""

    steps: tuple[Step, ...]
    flex: Mapping[str, int]
    """Components whose count changes -> the new count."""
    upgrade_components: tuple[str, ...] = ()
    """Components whose spec (not count) changed: their instances get upgraded."""


def changed_components(desired: Mapping[str, Any], live: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of components whose spec, ignoring counts, differs."""
    d = {c["name"]: c for c in _without_counts_and_state(desired)["components"]}
    lv = {c["name"]: c for c in _without_counts_and_state(live)["components"]}
    return tuple(sorted(n for n in d if d[n] != lv.get(n)))


def plan_update(name: str, desired: Mapping[str, Any], live: Mapping[str, Any]) -> UpdatePlan | str:
    """The steps that turn `live` into `desired`, or why YARN cannot do it.

    YARN can flex counts, stop and start, and upgrade a STABLE, running service
    to a *new version* with the same components. Anything else (same version
    with a new spec, added or removed components, changing a stopped service's
    spec) returns a one-line reason instead.
    """
    want_stopped = desired.get("state") == STOPPED
    is_stopped = live.get("state") == STOPPED
    if live.get("state") == UPGRADING:
        return _plan_mid_upgrade(desired, live)
    d_counts, l_counts = counts(desired), counts(live)
    flex = {c: n for c, n in d_counts.items() if l_counts.get(c) != n}
    spec_changed = _without_counts_and_state(desired) != _without_counts_and_state(live)
    if spec_changed:
        if set(d_counts) != set(l_counts):
            return (
                f"service {name}: components cannot be added or removed by an upgrade; "
                "delete and re-create the service under a new name"
            )
        if desired.get("version") == live.get("version"):
            return (
                f"service {name}: the spec changed but version did not; "
                "YARN upgrades need a new version"
            )
        if want_stopped:
            return f"service {name}: a stopped service cannot be upgraded; start it first"
    steps: list[Step] = []
    if is_stopped and not want_stopped:
        steps.append(Step.START)
    if flex:
        steps.append(Step.FLEX)
    if spec_changed:
        steps.append(Step.UPGRADE)
    if want_stopped and not is_stopped:
        steps.append(Step.STOP)
    upgrade = changed_components(desired, live) if spec_changed else ()
    return UpdatePlan(steps=tuple(steps), flex=flex, upgrade_components=upgrade)


def _plan_mid_upgrade(desired: Mapping[str, Any], live: Mapping[str, Any]) -> UpdatePlan:
    """A service caught in an upgrade: wait for an upgrade to the desired
    version; anything else (going back to the version it runs, as a rollback
    of a failed upgrade does) destroys and re-creates it at the desired spec.
    YARN's own cancel-upgrade was seen to hang in CANCEL_UPGRADING (Hadoop
    3.4.2), so it is not used."""
    if desired.get("version") != live.get("version") and desired.get("state") != STOPPED:
        return UpdatePlan(steps=(Step.WAIT,), flex={})
    return UpdatePlan(steps=(Step.RECREATE,), flex={})


def component_names(form: Mapping[str, Any]) -> Sequence[str]:
    return [str(c["name"]) for c in form.get("components", [])]
