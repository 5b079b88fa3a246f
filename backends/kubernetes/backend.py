"""The Kubernetes backend: bulk reads, server-side apply, owned-only prune, health.

Reading live state costs one LIST per (kind, namespace) the manifests use, one
labelled LIST per kind for owned objects (prune candidates), one discovery call
per apiVersion, and one dry-run apply per object that may change. It never costs
a GET per object, and a no-op sync makes no write at all.

Invariants:
- Only objects labelled `app.kubernetes.io/managed-by: reconciler` whose target
  annotation names this target are reported as owned, and only those are deleted
  (checked again, by uid, right before the DELETE).
- Inside an app, Namespaces and CRDs are applied first, and each CRD must be
  Established before the rest of the app is applied.
- Secret values never reach a comparable form, a log line or an error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from backends.base import ApplyResult, HealthReport, Inventory
from backends.kubernetes import live as live_mod
from backends.kubernetes.cache import LiveCache
from backends.kubernetes.client import APPLY_PATCH, FIELD_MANAGER, KubeClient, object_path
from backends.kubernetes.discovery import ApiResource, Discovery
from backends.kubernetes.health import object_health
from backends.kubernetes.normalize import (
    ignore_pointers,
    is_secret,
    keep_ignored,
    owner_app,
    with_ownership,
)
from backends.kubernetes.options import options_of
from reconciler.errors import ApiError
from reconciler.model import Action, App, Change, HealthStatus, LiveView, Resource, Target, worse

log = logging.getLogger(__name__)

_FIRST_KINDS = {("", "Namespace"): 0, ("apiextensions.k8s.io", "CustomResourceDefinition"): 1}
_CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")


def apply_rank(resource_id: Any) -> int:
    """Namespaces, then CRDs, then everything else (reversed for deletes)."""
    return _FIRST_KINDS.get((resource_id.group, resource_id.kind), 2)


class KubernetesBackend:
    def __init__(self, target: Target, client: KubeClient) -> None:
        self.target = target
        self.options = options_of(target)
        self.client = client
        self.discovery = Discovery(client)
        self.page_size = live_mod.PAGE_SIZE
        self.cache: LiveCache | None = None
        """Set in a long-running process: reads come from it, writes are noted in it."""

    def close(self) -> None:
        self.client.close()

    # --- reading -------------------------------------------------------------

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        self.discovery.reset()
        reader = live_mod.LiveReader(
            client=self.client,
            discovery=self.discovery,
            target=self.target.name,
            default_namespace=self.options.namespace,
            force=self.options.force_conflicts,
            page_size=self.page_size,
            namespaces=self.options.namespaces,
            lister=self.cache.objects if self.cache is not None else None,
        )
        with live_mod.collector_paused():
            return reader.read(resources, [key[1] for key in inventory])

    # --- writing -------------------------------------------------------------

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        upserts = sorted(
            (c for c in changes if c.action is not Action.DELETE), key=lambda c: apply_rank(c.id)
        )
        deletes = sorted(
            (c for c in changes if c.action is Action.DELETE), key=lambda c: -apply_rank(c.id)
        )
        crd_scopes = live_mod.crd_scopes(app.resources)
        applied, messages = 0, []
        pending_crds: list[Mapping[str, Any]] = []
        for change in upserts:
            if pending_crds and apply_rank(change.id) > 1:
                self._wait_established(pending_crds)
                pending_crds = []
            if change.resource is None:
                raise ApiError(f"{change.id}: a {change.action.value} change has no manifest")
            try:
                body = self._apply_one(app.name, change.resource, crd_scopes)
            except ApiError as exc:
                # The manifest's file:line first: that is where the fix goes. The
                # rest of the app is not applied after it.
                raise ApiError(f"{change.resource.location}: {exc}", status=exc.status,
                               reason=exc.reason, conflicts=exc.conflicts) from exc
            applied += 1
            if (change.id.group, change.id.kind) == _CRD:
                pending_crds.append(body)
        if pending_crds:
            self._wait_established(pending_crds)
        for change in deletes:
            if self._delete_one(change):
                applied += 1
            else:
                messages.append(f"{change.id}: not owned by this target; left alone")
        return ApplyResult(applied=applied, messages=tuple(messages))

    def _apply_one(
        self, app: str, resource: Resource, crd_scopes: Mapping[tuple[str, str], bool]
    ) -> Mapping[str, Any]:
        place = live_mod.place(resource, self.discovery, crd_scopes, self.options.namespace)
        if place.api is None:
            served = f"{place.api_version} {place.kind}"
            raise ApiError(f"{resource.id}: {served} is not served by the cluster")
        manifest: Mapping[str, Any] = with_ownership(
            resource.body, app=app, target=self.target.name, namespace=place.namespace
        )
        path = _path(place.api, place.namespace, place.name)
        ignore = ignore_pointers(manifest)
        if ignore:
            # One GET, only for objects that ignore fields: they keep their live values.
            live = self.client.request(
                "GET", path, what=str(resource.id), secret=is_secret(manifest), allow=(404,)
            )
            if live.status != 404:
                manifest = keep_ignored(manifest, live.body, ignore)
        query = [("fieldManager", FIELD_MANAGER)]
        if self.options.force_conflicts:
            query.append(("force", "true"))
        response = self.client.request(
            "PATCH",
            path,
            what=str(resource.id),
            query=query,
            body=manifest,
            content_type=APPLY_PATCH,
            secret=is_secret(manifest),
        )
        log.info("applied %s", resource.id)
        if self.cache is not None:
            self.cache.wrote(response.body)
        return response.body

    def _wait_established(self, crds: Sequence[Mapping[str, Any]]) -> None:
        deadline = time.monotonic() + self.options.crd_timeout
        for crd in crds:
            name = str((crd.get("metadata") or {}).get("name", ""))
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            what = f"CustomResourceDefinition/{name}"

            def established(path: str = path, what: str = what) -> bool:
                body = self.client.request("GET", path, what=what).body
                return object_health(body).status is HealthStatus.HEALTHY

            if not _poll(established, deadline):
                raise ApiError(f"CustomResourceDefinition/{name}: not Established in time")
            self._wait_discoverable(crd, deadline)

    def _wait_discoverable(self, crd: Mapping[str, Any], deadline: float) -> None:
        """Established is not yet served: the group-version's discovery can miss the
        kind (404, or a list without it) for a moment afterwards."""
        spec = crd.get("spec") or {}
        group = str(spec.get("group", ""))
        kind = str((spec.get("names") or {}).get("kind", ""))
        versions = [str(v.get("name")) for v in spec.get("versions") or () if v.get("served")]

        def served() -> bool:
            self.discovery.forget_group(group)
            return all(self.discovery.lookup(f"{group}/{v}", kind) for v in versions)

        if not _poll(served, deadline):
            raise ApiError(f"{kind}.{group}: Established, but not served by the API "
                           f"server within crd_timeout ({self.options.crd_timeout:g}s)")

    def _delete_one(self, change: Change) -> bool:
        """Delete an owned object; False (and no write) when it is not ours."""
        api = self._api_for_delete(change)
        if api is None:
            return True  # the kind is gone, and with it every object of that kind
        path = _path(api, change.id.namespace if api.namespaced else "", change.id.name)
        secret = (change.id.group, change.id.kind) == ("", "Secret")
        found = self.client.request("GET", path, what=str(change.id), secret=secret, allow=(404,))
        if found.status == 404:
            return True
        if owner_app(found.body, self.target.name) is None:
            log.warning("not deleting %s: it lacks this target's ownership labels", change.id)
            return False
        if self.cache is not None:
            self.cache.deleted(found.body)
        if (found.body.get("metadata") or {}).get("deletionTimestamp"):
            # Deleted before and held by finalizers: a second DELETE changes nothing.
            self._wait_gone(change, path, secret, found.body)
            return True
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": self.options.propagation_policy,
            "preconditions": {"uid": (found.body.get("metadata") or {}).get("uid")},
        }
        self.client.request(
            "DELETE", path, what=str(change.id), body=options, secret=secret, allow=(404,)
        )
        log.info("deleted %s", change.id)
        return True

    def _wait_gone(
        self, change: Change, path: str, secret: bool, body: Mapping[str, Any]
    ) -> None:
        deadline = time.monotonic() + self.options.delete_timeout
        delay = 0.1
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            found = self.client.request(
                "GET", path, what=str(change.id), secret=secret, allow=(404,))
            if found.status == 404:
                return
            body = found.body
        finalizers = ", ".join(str(f) for f in (body.get("metadata") or {}).get("finalizers") or ())
        raise ApiError(f"{change.id}: still terminating after {self.options.delete_timeout:g}s "
                       f"(delete_timeout), held by finalizers: {finalizers or 'none listed'}")

    def _api_for_delete(self, change: Change) -> ApiResource | None:
        api_version = str((change.live or {}).get("apiVersion") or "")
        if api_version:
            api = self.discovery.lookup(api_version, change.id.kind)
            if api is not None:
                return api
        return self.discovery.find(change.id.group, change.id.kind)

    # --- health --------------------------------------------------------------

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        crd_scopes = live_mod.crd_scopes(app.resources)
        places = [
            live_mod.place(r, self.discovery, crd_scopes, self.options.namespace)
            for r in app.resources
        ]
        found = live_mod.list_places(self.client, places, page_size=self.page_size)
        # One check time for the whole report, so its objects are judged alike.
        now = datetime.now(UTC)
        status, problems = HealthStatus.HEALTHY, []
        for resource, place in zip(app.resources, places, strict=True):
            obj = found.get(place.key)
            if obj is None:
                state, message = HealthStatus.MISSING, "not found"
            else:
                result = object_health(obj, now=now)
                state, message = result.status, result.message
            status = worse(status, state)
            if state is not HealthStatus.HEALTHY:
                problems.append(f"{resource.id}: {state.value}{': ' + message if message else ''}")
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        summary = "; ".join(problems[:3]) + more
        return HealthReport(status=status, message=summary)


def _poll(done: Callable[[], bool], deadline: float) -> bool:
    """Ask `done` until it is true (True) or `deadline` has passed (False), backing
    off from 50 ms to 1 s between asks."""
    delay = 0.05
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    return True


def _path(api: ApiResource, namespace: str, name: str) -> str:
    return object_path(
        group=api.group, version=api.version, plural=api.plural, namespace=namespace, name=name
    )
