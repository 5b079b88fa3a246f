"""Deleting what this target owns: prune, the delete half of a replace, and
waiting for an object to be gone.

Why a module of its own: every DELETE the backend sends for an object it
applied goes through here, so the checks that make a delete safe live in one
place. Hook objects are deleted by hook_io.py, under its own ownership rule;
they only borrow `wait_gone`.

Invariants:
- An object is deleted only when the live object, read by GET right before,
  carries this target's ownership labels; the DELETE has a uid precondition,
  so an object re-created by someone else in between is never touched.
- Nothing is written for an object that is not ours: a prune skips it (and
  says so), a replace refuses.
- A prune sends no second DELETE to an object already terminating (held by
  finalizers): it waits up to `delete_timeout` for it to go, as a replace
  waits after its own DELETE; the error names the finalizers that hold it.
- Every delete is noted in the live cache (when one is set) before it is
  sent, so the next read never shows the object as still there unchanged.
- Secret objects are requested with `secret`: their bodies never reach an
  error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backends.kubernetes.cache import LiveCache
from backends.kubernetes.client import KubeClient
from backends.kubernetes.discovery import ApiResource, Discovery
from backends.kubernetes.normalize import owner_app
from reconciler.errors import ApiError
from reconciler.model import Change, Resource

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Deleter:
    """The deletes of one backend call (built per call: the cache is set late)."""

    client: KubeClient
    discovery: Discovery
    target: str
    cache: LiveCache | None
    delete_timeout: float

    def prune(self, change: Change, propagation_policy: str) -> bool:
        """Delete an owned object; False (and no write) when it is not ours."""
        api = self._api_for(change)
        if api is None:
            return True  # the kind is gone, and with it every object of that kind
        path = api.path(change.id.namespace if api.namespaced else "", change.id.name)
        secret = (change.id.group, change.id.kind) == ("", "Secret")
        found = self.client.request("GET", path, what=str(change.id), secret=secret, allow=(404,))
        if found.status == 404:
            return True
        if owner_app(found.body, self.target) is None:
            log.warning("not deleting %s: it lacks this target's ownership labels", change.id)
            return False
        if self.cache is not None:
            self.cache.deleted(found.body)
        if (found.body.get("metadata") or {}).get("deletionTimestamp"):
            # Deleted before and held by finalizers: a second DELETE changes nothing.
            self.wait_gone(str(change.id), path, secret, found.body)
            return True
        delete_options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation_policy,
            "preconditions": {"uid": (found.body.get("metadata") or {}).get("uid")},
        }
        self.client.request(
            "DELETE", path, what=str(change.id), body=delete_options, secret=secret, allow=(404,)
        )
        log.info("deleted %s", change.id)
        return True

    def for_replace(self, resource: Resource, path: str, secret: bool) -> None:
        """Delete the live object an immutable change must re-create, and wait
        until it is gone (Foreground: its dependents go first)."""
        found = self.client.request("GET", path, what=str(resource.id), secret=secret,
                                    allow=(404,))
        if found.status == 404:
            return
        if owner_app(found.body, self.target) is None:
            raise ApiError(f"{resource.id}: an immutable field changed, and the live object "
                           "lacks this target's ownership labels: not deleted")
        if self.cache is not None:
            self.cache.deleted(found.body)
        uid = (found.body.get("metadata") or {}).get("uid")
        options = {"apiVersion": "v1", "kind": "DeleteOptions",
                   "propagationPolicy": "Foreground", "preconditions": {"uid": uid}}
        self.client.request("DELETE", path, what=str(resource.id), body=options,
                            secret=secret, allow=(404,))
        self.wait_gone(str(resource.id), path, secret, found.body)

    def wait_gone(self, what: str, path: str, secret: bool, body: Mapping[str, Any]) -> None:
        """Return once GET answers 404; `body` is the object as last seen."""
        deadline = time.monotonic() + self.delete_timeout
        delay = 0.1
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            found = self.client.request("GET", path, what=what, secret=secret, allow=(404,))
            if found.status == 404:
                return
            body = found.body
        finalizers = ", ".join(str(f) for f in (body.get("metadata") or {}).get("finalizers") or ())
        raise ApiError(f"{what}: still terminating after {self.delete_timeout:g}s "
                       f"(delete_timeout), held by finalizers: {finalizers or 'none listed'}")

    def _api_for(self, change: Change) -> ApiResource | None:
        """The collection of the object as it was applied (its live apiVersion),
        else any served version of its kind; None when the kind is not served."""
        api_version = str((change.live or {}).get("apiVersion") or "")
        if api_version:
            api = self.discovery.lookup(api_version, change.id.kind)
            if api is not None:
                return api
        return self.discovery.find(change.id.group, change.id.kind)
