"""What an app's objects need to exist first: CRDs served, namespaces present.

An app may carry a CRD and objects of its kind; they can only be applied
once the definition is Established and its kind is discoverable (which can
lag Established by a moment). Both waits share one deadline, `crd_timeout`.
With `create_namespace`, a missing namespace is created unowned (annotated
CREATED_FOR), so no prune ever deletes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from backends.kubernetes.client import KubeClient
from backends.kubernetes.discovery import Discovery
from backends.kubernetes.health import object_health
from reconciler.errors import ApiError
from reconciler.model import HealthStatus

log = logging.getLogger(__name__)

CREATED_FOR = "reconciler.io/created-for"
"""On a namespace made by `create_namespace`: the target/app it was made for."""


def create_namespaces(client: KubeClient, names: Sequence[str], created_for: str) -> int:
    """Create each of `names` that does not exist; the number created."""
    created = 0
    for name in sorted(set(names)):
        what = f"Namespace/{name}"
        if client.request("GET", f"/api/v1/namespaces/{name}", what=what,
                          allow=(404,)).status != 404:
            continue
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "annotations": {CREATED_FOR: created_for}}}
        client.request("POST", "/api/v1/namespaces", what=what, body=body, allow=(409,))
        log.info("created namespace %s for %s (create_namespace)", name, created_for)
        created += 1
    return created


def wait_established(client: KubeClient, discovery: Discovery,
                     crds: Sequence[Mapping[str, Any]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for crd in crds:
        name = str((crd.get("metadata") or {}).get("name", ""))
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        what = f"CustomResourceDefinition/{name}"

        def established(path: str = path, what: str = what) -> bool:
            body = client.request("GET", path, what=what).body
            return object_health(body).status is HealthStatus.HEALTHY

        if not poll(established, deadline):
            raise ApiError(f"CustomResourceDefinition/{name}: not Established in time")
        _wait_discoverable(discovery, crd, deadline, timeout)


def _wait_discoverable(discovery: Discovery, crd: Mapping[str, Any], deadline: float,
                       timeout: float) -> None:
    """Established is not yet served: the group-version's discovery can miss the
    kind (404, or a list without it) for a moment afterwards."""
    spec = crd.get("spec") or {}
    group = str(spec.get("group", ""))
    kind = str((spec.get("names") or {}).get("kind", ""))
    versions = [str(v.get("name")) for v in spec.get("versions") or () if v.get("served")]

    def served() -> bool:
        discovery.forget_group(group)
        return all(discovery.lookup(f"{group}/{v}", kind) for v in versions)

    if not poll(served, deadline):
        raise ApiError(f"{kind}.{group}: Established, but not served by the API "
                       f"server within crd_timeout ({timeout:g}s)")


def poll(done: Callable[[], bool], deadline: float) -> bool:
    """Ask `done` until it is true (True) or `deadline` has passed (False), backing
    off from 50 ms to 1 s between asks."""
    delay = 0.05
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    return True
