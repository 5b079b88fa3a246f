"""A small Kubernetes API server for tests: real HTTP on 127.0.0.1, documented semantics.

It serves what the Kubernetes backend uses, the way the API documents it:
discovery (/api, /api/v1, /apis, /apis/<group>/<version>) including kinds that
CustomResourceDefinition objects register, and 503 for group-versions listed in
`unavailable`; GET and LIST (labelSelector with `k=v`, `k==v`, `k!=v`, `k`,
`!k`; `limit` and `continue` with `remainingItemCount`, 410 Expired for tokens
older than `api.compact()`; list items without apiVersion/kind, as the real
server sends them); POST (409 AlreadyExists); PUT; PATCH as server-side
apply (application/apply-patch+yaml, fieldManager, force) and as JSON merge
patch; DELETE (with uid preconditions); the /status subresource; dryRun=All;
Status objects for errors; resourceVersion bumped on every write, generation on
every change outside metadata and status; a few server defaults (Deployment
strategy, Service clusterIP, Secret stringData folding...); bearer-token auth;
coordination.k8s.io/v1 Lease, and 409 Conflict for a PUT whose
metadata.resourceVersion is stale (`leases.py`).

Field ownership is modelled per manager as a set of leaf paths (lists are
atomic): apply conflicts (409) when another manager owns a field with a
different value and force is not set; fields a manager applied before and no
longer applies are removed unless someone else owns them.

Every request is recorded (method, path, query) for tests and benchmarks.
"""

from tests.support.kube.server import KubeApiServer

__all__ = ["KubeApiServer"]
