"""Pure health rules for live Kubernetes objects, in kstatus's order.

`object_health` applies, in order: deletion in progress, generation versus
status.observedGeneration, the Stalled/Reconciling conditions, one small
function per kind, and finally a generic Ready condition. An object that exists
and matches none of these is Healthy. Each per-kind function says its known gaps;
docs/kubernetes.md lists where and why the rules differ from kstatus.

Invariants: no I/O and no clock (the caller passes the check time, so the
same object and time always give the same answer); input objects are never
mutated; messages never quote object data (only names, counts, reasons and
condition messages).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.model import HealthStatus

Obj = Mapping[str, Any]

# kstatus' ScheduleWindow: the scheduler may need a few passes (e.g. while the
# cluster autoscaler adds a node) before an Unschedulable pod finds a place.
SCHEDULE_GRACE = timedelta(seconds=15)


@dataclass(frozen=True, kw_only=True)
class Health:
    status: HealthStatus
    message: str = ""


HEALTHY = Health(status=HealthStatus.HEALTHY)


def _progressing(message: str) -> Health:
    return Health(status=HealthStatus.PROGRESSING, message=message)


def _degraded(message: str) -> Health:
    return Health(status=HealthStatus.DEGRADED, message=message)


def condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _is_true(cond: Mapping[str, Any] | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def deployment_health(obj: Obj) -> Health:
    """Counts first, then the controller's Available and Progressing conditions, as
    kstatus. Gaps: ignores minReadySeconds beyond what availableReplicas already
    counts; a condition the Deployment does not report is not waited for."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("paused"):
        return Health(status=HealthStatus.SUSPENDED, message="rollout paused")
    progress = condition(obj, "Progressing")
    if progress and progress.get("reason") == "ProgressDeadlineExceeded":
        return _degraded(f"progress deadline exceeded: {progress.get('message', '')}".strip())
    replicas = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    if updated < replicas:
        return _progressing(f"{updated} of {replicas} replicas updated")
    if _int(status.get("replicas")) > updated:
        old = _int(status.get("replicas")) - updated
        return _progressing(f"{old} old replicas pending termination")
    if available < updated:
        return _progressing(f"{available} of {updated} updated replicas available")
    # The counts can all match while the controller has not finished: it reports
    # NewReplicaSetAvailable only once the new ReplicaSet is the complete rollout
    # (before that: ReplicaSetUpdated, FoundNewReplicaSet, NewReplicaSetCreated).
    # An absent condition is not waited for: the controller drops Progressing when
    # progressDeadlineSeconds is unset, and would then never report it.
    if progress is not None and not (
        _is_true(progress) and progress.get("reason") == "NewReplicaSetAvailable"
    ):
        return _progressing(f"rollout not complete: {progress.get('reason', '')}".strip())
    # Available=False means fewer than the minimum (replicas - maxUnavailable)
    # are available by the controller's own count, which can lag or lead ours.
    avail = condition(obj, "Available")
    if avail is not None and not _is_true(avail):
        return _progressing(f"not available: {avail.get('reason', '')}".strip())
    return HEALTHY


def statefulset_health(obj: Obj) -> Health:
    """Gaps: OnDelete updates are Healthy once ready (pods update only when deleted);
    kstatus calls them Current at once, which would let a gate pass with no pod ready."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    replicas = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < replicas:
        return _progressing(f"{ready} of {replicas} replicas ready")
    extra = _int(status.get("replicas")) - replicas
    if extra > 0:
        return _progressing(f"{extra} replicas pending termination")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return HEALTHY
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    updated = _int(status.get("updatedReplicas"))
    if updated < replicas - partition:
        return _progressing(f"{updated} of {replicas - partition} replicas updated")
    if partition == 0 and status.get("currentRevision") != status.get("updateRevision"):
        return _progressing("rolling update in progress")
    return HEALTHY


def daemonset_health(obj: Obj) -> Health:
    """Gaps: OnDelete updates are Healthy once the pods are available (kstatus waits
    for every pod to be updated, which OnDelete leaves to whoever deletes them)."""
    status = obj.get("status") or {}
    # Unlike the generic check, a DaemonSet without observedGeneration or
    # desiredNumberScheduled has not been seen by its controller yet: its zero
    # counts mean nothing (kstatus: NoObservedGeneration, NoDesiredNumber).
    if not isinstance(status.get("observedGeneration"), int):
        return _progressing("not observed by the DaemonSet controller yet")
    if not isinstance(status.get("desiredNumberScheduled"), int):
        return _progressing("desired number of pods not computed yet")
    desired = _int(status.get("desiredNumberScheduled"))
    current = _int(status.get("currentNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    strategy = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type")
    if current < desired:
        return _progressing(f"{current} of {desired} pods scheduled")
    if strategy != "OnDelete" and updated < desired:
        return _progressing(f"{updated} of {desired} pods updated")
    if available < desired:
        return _progressing(f"{available} of {desired} pods available")
    return HEALTHY


def replicaset_health(obj: Obj) -> Health:
    """kstatus' ReplicaSet rule. Gaps: a ReplicaFailure (quota, admission) stays
    Progressing, as in kstatus, until the gate's timeout."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    failure = condition(obj, "ReplicaFailure")
    if _is_true(failure):
        return _progressing(f"replica failure: {(failure or {}).get('message', '')}".strip())
    replicas = _int(spec.get("replicas"), 1)
    labelled = _int(status.get("fullyLabeledReplicas"))
    available = _int(status.get("availableReplicas"))
    if labelled < replicas:
        return _progressing(f"{labelled} of {replicas} replicas labelled")
    if available < replicas:
        return _progressing(f"{available} of {replicas} replicas available")
    extra = _int(status.get("replicas")) - replicas
    if extra > 0:
        return _progressing(f"{extra} replicas pending termination")
    return HEALTHY


def job_health(obj: Obj) -> Health:
    """Gaps: a Job with completions unset and parallelism > 1 is judged by conditions only."""
    if (obj.get("spec") or {}).get("suspend"):
        return Health(status=HealthStatus.SUSPENDED, message="job suspended")
    failed = condition(obj, "Failed")
    if _is_true(failed):
        return _degraded(f"job failed: {(failed or {}).get('reason', '')}".strip())
    if _is_true(condition(obj, "Complete")):
        return HEALTHY
    return _progressing("job running")


def _timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time as the API server writes it; naive times are taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def pod_health(obj: Obj, now: datetime | None = None) -> Health:
    """`now` is the check time; without it (or without a creationTimestamp) an
    Unschedulable pod stays Progressing, since its age is unknown. Gaps:
    restartPolicy Always pods that crash-loop only show once a container waits."""
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return HEALTHY
    if phase == "Failed":
        return _degraded(f"pod failed: {status.get('reason', '')}".strip())
    for container in status.get("containerStatuses") or ():
        reason = ((container.get("state") or {}).get("waiting") or {}).get("reason")
        if reason in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"):
            return _degraded(f"container {container.get('name')}: {reason}")
    if phase == "Running" and _is_true(condition(obj, "Ready")):
        return HEALTHY
    scheduled = condition(obj, "PodScheduled")
    if (
        phase == "Pending"
        and scheduled is not None
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    ):
        message = f"unschedulable: {scheduled.get('message', '')}".strip()
        created = _timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
        if now is not None and created is not None and now - created >= SCHEDULE_GRACE:
            return _degraded(message)
        return _progressing(message)
    return _progressing(f"pod {phase or 'Pending'}, not ready")


def pvc_health(obj: Obj) -> Health:
    """Gaps: WaitForFirstConsumer claims stay Progressing until a pod uses them."""
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return HEALTHY
    if phase == "Lost":
        return _degraded("claim lost its volume")
    return _progressing(f"claim {phase or 'Pending'}")


def service_health(obj: Obj) -> Health:
    """Gaps: only LoadBalancer services wait (for an ingress address); others are Healthy."""
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return HEALTHY
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return HEALTHY if ingress else _progressing("waiting for a load balancer address")


def crd_health(obj: Obj) -> Health:
    """kstatus' rule: names rejected, or not Established for a reason other than
    Installing, is a failure. Gaps: does not check that every served version is
    storage-compatible."""
    names = condition(obj, "NamesAccepted")
    if names is not None and names.get("status") == "False":
        return _degraded(f"names not accepted: {names.get('message') or names.get('reason')}")
    established = condition(obj, "Established")
    if _is_true(established):
        return HEALTHY
    failed = established is not None and established.get("status") == "False"
    if failed and (established or {}).get("reason") != "Installing":
        reason = (established or {}).get("message") or (established or {}).get("reason")
        return _degraded(f"not established: {reason}")
    return _progressing("definition not established yet")


_BY_KIND: Mapping[tuple[str, str], Callable[[Obj], Health]] = {
    ("apps", "Deployment"): deployment_health,
    ("apps", "StatefulSet"): statefulset_health,
    ("apps", "DaemonSet"): daemonset_health,
    ("apps", "ReplicaSet"): replicaset_health,
    ("batch", "Job"): job_health,
    ("", "PersistentVolumeClaim"): pvc_health,
    ("", "Service"): service_health,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd_health,
}


def _generic(obj: Obj) -> Health | None:
    """kstatus' steps before the per-kind table; None when they say nothing."""
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return _progressing("being deleted")
    observed = (obj.get("status") or {}).get("observedGeneration")
    generation = metadata.get("generation")
    if isinstance(observed, int) and isinstance(generation, int) and observed != generation:
        return _progressing(f"generation {generation} not observed yet (at {observed})")
    # kstatus takes whichever of Reconciling/Stalled comes first in the list;
    # Stalled wins here, so an object that reports both never passes as merely busy.
    stalled = condition(obj, "Stalled")
    if _is_true(stalled):
        return _degraded(f"stalled: {(stalled or {}).get('message', '')}".strip())
    reconciling = condition(obj, "Reconciling")
    if _is_true(reconciling):
        return _progressing(f"reconciling: {(reconciling or {}).get('message', '')}".strip())
    return None


def object_health(obj: Obj, *, now: datetime | None = None) -> Health:
    """Health of one live object (never None: an existing object is at least Healthy).

    `now` (timezone-aware) is the time of the check; only rules that depend on an
    object's age use it, and they assume the youngest age when it is None."""
    early = _generic(obj)
    if early is not None:
        return early
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", ""))
    if (group, kind) == ("", "Pod"):
        # The one rule that needs the check time; the table keeps one signature.
        return pod_health(obj, now)
    rule = _BY_KIND.get((group, kind))
    if rule is not None:
        return rule(obj)
    ready = condition(obj, "Ready")
    if ready is not None and not _is_true(ready):
        return _progressing(f"not ready: {ready.get('reason', '')}".strip())
    return HEALTHY
