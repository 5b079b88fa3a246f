"""coordination.k8s.io/v1 Lease for the test API server, and the optimistic
concurrency that leader election rests on.

What it adds, as the API documents it:
- The `Lease` kind (namespaced, `leases` in `coordination.k8s.io/v1`), served like
  every other kind: discovery, GET, LIST, POST (409 AlreadyExists), PUT, DELETE.
- Its spec checked as the real server validates it: `leaseDurationSeconds` a
  positive integer, `leaseTransitions` not negative, `acquireTime` and `renewTime`
  in MicroTime form (RFC 3339 with microseconds, e.g. 2024-05-01T10:00:00.000000Z).
- The resourceVersion precondition of an update: a PUT whose
  `metadata.resourceVersion` is not the stored one answers 409 Conflict, the
  "object has been modified" error that tells an elector another replica wrote
  first. An empty resourceVersion is an unconditional update. The real server does
  this for every kind, so it applies to every kind here too (nothing else PUTs).
"""

from __future__ import annotations

import datetime

from tests.support.kube.objects import HttpError, Kind, Obj

LEASE = Kind("coordination.k8s.io", "v1", "Lease", "leases", True)
KINDS = (LEASE,)
_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"


def check_update(kind: Kind, name: str, old: Obj, body: Obj) -> None:
    """Raise 409 Conflict when `body` names a resourceVersion that is not `old`'s."""
    wanted = str((body.get("metadata") or {}).get("resourceVersion") or "")
    current = str((old.get("metadata") or {}).get("resourceVersion") or "")
    if wanted and wanted != current:
        raise HttpError(409, "Conflict", (
            f'Operation cannot be fulfilled on {kind.plural}.{kind.group or "core"} '
            f'"{name}": the object has been modified; please apply your changes to the '
            "latest version and try again"))


def validate(kind: Kind, body: Obj) -> None:
    """400 BadRequest / 422 Invalid for a Lease spec the real server would refuse."""
    if kind != LEASE:
        return
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise HttpError(400, "BadRequest", "spec must be an object")
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and not _micro_time(value):
            raise HttpError(400, "BadRequest",
                            f"spec.{key}: cannot parse {value!r} as a MicroTime")
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (type(duration) is not int or duration <= 0):
        raise HttpError(422, "Invalid", "spec.leaseDurationSeconds: must be greater than 0")
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (type(transitions) is not int or transitions < 0):
        raise HttpError(422, "Invalid", "spec.leaseTransitions: must be greater than or equal to 0")


def _micro_time(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.datetime.strptime(value.replace("Z", "+0000"), _MICRO_TIME)
    except ValueError:
        return False
    return True
