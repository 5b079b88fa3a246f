"""The cluster side of hooks (hooks.HookIO): apply, read and delete hook objects.

Invariants: a hook object is applied with `app.kubernetes.io/managed-by:
reconciler-hook` (so the owned lists never see it) and this target's
annotation; only an object carrying both is ever deleted, with a uid
precondition, so a hook never removes something it did not make.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from backends.kubernetes.client import APPLY_PATCH, FIELD_MANAGER, KubeClient
from backends.kubernetes.hooks import HOOK_MANAGED_BY
from backends.kubernetes.normalize import MANAGED_BY_LABEL, TARGET_ANNOTATION
from reconciler.errors import ApiError
from reconciler.model import Resource

log = logging.getLogger(__name__)

Manifest = Callable[[str, Resource], tuple[str, dict[str, Any]]]
"""(app, resource) -> (the object's path, the manifest as applied, ownership set)."""
WaitGone = Callable[[str, str, Mapping[str, Any]], None]
"""(path, what, the object as last seen): return once it is gone, raise if it stays."""


class ClusterHookIO:
    def __init__(self, *, client: KubeClient, target: str, manifest: Manifest,
                 wait_gone: WaitGone) -> None:
        self.client = client
        self.target = target
        self._manifest = manifest
        self._wait_gone = wait_gone

    def path_of(self, resource: Resource) -> str:
        return self._manifest(resource.app, resource)[0]

    def apply_hook(self, app: str, resource: Resource) -> tuple[str, Mapping[str, Any]]:
        path, manifest = self._manifest(app, resource)
        labels = {**manifest["metadata"]["labels"], MANAGED_BY_LABEL: HOOK_MANAGED_BY}
        manifest["metadata"] = {**manifest["metadata"], "labels": labels}
        # Forced: a hook object is this target's alone, whoever touched it since.
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        body = self.client.request("PATCH", path, what=str(resource.id), query=query,
                                   body=manifest, content_type=APPLY_PATCH).body
        log.info("started hook %s", resource.id)
        return path, body

    def get(self, path: str, what: str) -> Mapping[str, Any] | None:
        found = self.client.request("GET", path, what=what, allow=(404,))
        return None if found.status == 404 else found.body

    def delete(self, path: str, what: str, wait: bool) -> None:
        """Delete a hook object of this target's (never anything else)."""
        found = self.get(path, what)
        if found is None:
            return
        metadata = found.get("metadata") or {}
        ours = ((metadata.get("labels") or {}).get(MANAGED_BY_LABEL) == HOOK_MANAGED_BY
                and (metadata.get("annotations") or {}).get(TARGET_ANNOTATION) == self.target)
        if not ours:
            raise ApiError(f"{what}: exists and is not a hook of target {self.target}; "
                           "not replaced")
        options = {"apiVersion": "v1", "kind": "DeleteOptions",
                   "propagationPolicy": "Background",
                   "preconditions": {"uid": metadata.get("uid")}}
        self.client.request("DELETE", path, what=what, body=options, allow=(404, 409))
        if wait:
            self._wait_gone(path, what, found)
