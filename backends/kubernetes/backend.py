"""The Kubernetes backend: bulk reads, server-side apply, owned-only prune, health.

Reading live state costs one LIST per (kind, namespace) the manifests use, one
labelled LIST per kind for owned objects (prune candidates), one discovery call
per apiVersion, and one dry-run apply per object that may change. It never costs
a GET per object, and a no-op sync makes no write at all.

Invariants:
- Only objects labelled `app.kubernetes.io/managed-by: reconciler` whose target
  annotation names this target are reported as owned, and only those are deleted
  (checked again, by uid, right before the DELETE, which prune.py sends).
- Inside an app, Namespaces and CRDs are applied first, and each CRD must be
  Established before the rest of the app is applied.
- Secret values never reach a comparable form, a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from backends.base import ApplyResult, HealthReport, Inventory
from backends.kubernetes import cel_health, prune
from backends.kubernetes import crds as crds_mod
from backends.kubernetes import hooks as hooks_mod
from backends.kubernetes import live as live_mod
from backends.kubernetes.cache import LiveCache
from backends.kubernetes.client import APPLY_PATCH, FIELD_MANAGER, KubeClient
from backends.kubernetes.discovery import Discovery
from backends.kubernetes.health import Health, object_health
from backends.kubernetes.hook_io import ClusterHookIO
from backends.kubernetes.normalize import (
    ignore_pointers,
    is_secret,
    keep_ignored,
    with_ownership,
)
from backends.kubernetes.options import (
    Options,
    app_options_of,
    is_immutable,
    options_of,
    refuse_immutable,
    wants_force,
    wants_replace,
)
from reconciler.errors import ApiError
from reconciler.model import (
    Action,
    App,
    Change,
    HealthExpr,
    HealthStatus,
    LiveResource,
    LiveView,
    Resource,
    ResourceId,
    Target,
    worse,
)

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
        self._immutable: dict[ResourceId, str] = {}
        """Objects whose planned update the server refused as immutable: replaced
        at apply time when allowed, else the apply refuses before any write."""
        self._post: dict[str, hooks_mod.PostSync] = {}
        self._rules: dict[tuple[HealthExpr, ...], cel_health.Rules] = {}

    def close(self) -> None:
        self.client.close()

    # --- reading -------------------------------------------------------------

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        self.discovery.reset()
        self._immutable = {}
        hooks = [r for r in resources if hooks_mod.is_hook(r)]
        refused: dict[str, str] = {}
        plain: list[Resource] = []
        for r in resources:
            glob = self.options.excluded_id(r.id)
            if glob:
                refused.setdefault(r.app, f"{r.location}: {r.id}: its kind is excluded on "
                                          f"target {self.target.name} (exclude: {glob})")
            elif not hooks_mod.is_hook(r):
                plain.append(r)
        reader = live_mod.LiveReader(
            client=self.client,
            discovery=self.discovery,
            target=self.target.name,
            default_namespace=self.options.namespace,
            force=self.options.force_conflicts,
            page_size=self.page_size,
            namespaces=self.options.namespaces,
            lister=self.cache.objects if self.cache is not None else None,
            on_immutable=self._note_immutable,
        )
        owned = [key[1] for key in inventory if not self.options.excluded_id(key[1])]
        try:
            with live_mod.collector_paused():
                view = reader.read(plain, owned)
        except ApiError as exc:
            raise self._as_tenant(exc) from exc
        return _with_hooks(view, hooks, refused)

    def _note_immutable(self, resource: Resource, exc: ApiError) -> bool:
        if not is_immutable(exc):
            return False
        self._immutable[resource.id] = str(exc)
        return True

    def _as_tenant(self, exc: ApiError) -> ApiError:
        """A refusal names the impersonated account: its rights are the ones that count."""
        if exc.status != 403 or not self.options.impersonate:
            return exc
        return ApiError(f"target {self.target.name} (impersonating service account "
                        f"{self.options.impersonate}): {exc}", status=exc.status,
                        reason=exc.reason, conflicts=exc.conflicts)

    # --- writing -------------------------------------------------------------

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        options = self.options.for_app(app_options_of(app))
        upserts = sorted(
            (c for c in changes if c.action is not Action.DELETE), key=lambda c: apply_rank(c.id)
        )
        deletes = sorted(
            (c for c in changes if c.action is Action.DELETE), key=lambda c: -apply_rank(c.id)
        )
        refuse_immutable(upserts, self._immutable, options)
        hooks = [r for r in app.resources if hooks_mod.is_hook(r)] if upserts else []
        crd_scopes = live_mod.crd_scopes(app.resources)
        applied, messages = 0, []
        if options.create_namespace:
            applied += self._create_namespaces(app, upserts, hooks, crd_scopes)
        try:
            pre = hooks_mod.of_phase(hooks, "PreSync")
            if pre:
                self._hooks().run(app.name, "PreSync", pre, app.timeout)
                messages.append(f"PreSync hook(s) succeeded: {_names(pre)}")
            applied += self._apply_upserts(app, upserts, crd_scopes, options)
        except ApiError as exc:
            raise self._as_tenant(exc) from exc
        deleter = self._deleter()
        for change in deletes:
            if deleter.prune(change, options.propagation_policy):
                applied += 1
            else:
                messages.append(f"{change.id}: not owned by this target; left alone")
        post = hooks_mod.of_phase(hooks, "PostSync")
        if post:
            self._post[app.name] = hooks_mod.PostSync(hooks=post)
        else:
            self._post.pop(app.name, None)
        return ApplyResult(applied=applied, messages=tuple(messages))

    def _apply_upserts(self, app: App, upserts: Sequence[Change],
                       crd_scopes: Mapping[tuple[str, str], bool], options: Options) -> int:
        applied = 0
        pending_crds: list[Mapping[str, Any]] = []
        for change in upserts:
            if pending_crds and apply_rank(change.id) > 1:
                self._wait_established(pending_crds)
                pending_crds = []
            if change.resource is None:
                raise ApiError(f"{change.id}: a {change.action.value} change has no manifest")
            try:
                body = self._apply_one(app.name, change.resource, crd_scopes, options)
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
        return applied

    def _create_namespaces(self, app: App, upserts: Sequence[Change],
                           hooks: Sequence[Resource],
                           crd_scopes: Mapping[tuple[str, str], bool]) -> int:
        """Namespaces the app's objects need and neither it nor the cluster has."""
        own = {c.id.name for c in upserts if (c.id.group, c.id.kind) == ("", "Namespace")}
        wanted = [c.resource for c in upserts if c.resource is not None] + list(hooks)
        names = sorted({live_mod.place(r, self.discovery, crd_scopes,
                                       self.options.namespace).namespace for r in wanted})
        return crds_mod.create_namespaces(self.client, [n for n in names if n and n not in own],
                                          f"{self.target.name}/{app.name}")

    def _manifest(self, app: str, resource: Resource,
                  crd_scopes: Mapping[tuple[str, str], bool]) -> tuple[str, dict[str, Any]]:
        place = live_mod.place(resource, self.discovery, crd_scopes, self.options.namespace)
        if place.api is None:
            served = f"{place.api_version} {place.kind}"
            raise ApiError(f"{resource.id}: {served} is not served by the cluster")
        manifest = with_ownership(
            resource.body, app=app, target=self.target.name, namespace=place.namespace
        )
        return place.api.path(place.namespace, place.name), manifest

    def _apply_one(
        self, app: str, resource: Resource, crd_scopes: Mapping[tuple[str, str], bool],
        options: Options,
    ) -> Mapping[str, Any]:
        path, built = self._manifest(app, resource, crd_scopes)
        manifest: Mapping[str, Any] = built
        ignore = ignore_pointers(manifest)
        if ignore:
            # One GET, only for objects that ignore fields: they keep their live values.
            live = self.client.request(
                "GET", path, what=str(resource.id), secret=is_secret(manifest), allow=(404,)
            )
            if live.status != 404:
                manifest = keep_ignored(manifest, live.body, ignore)
        try:
            body = self._patch(resource, path, manifest, force=wants_force(options, manifest))
        except ApiError as exc:
            if not (is_immutable(exc) and wants_replace(options, resource.body)):
                raise
            self._deleter().for_replace(resource, path, is_secret(manifest))
            body = self._patch(resource, path, manifest, force=wants_force(options, manifest))
            log.info("replaced %s (deleted and re-created: an immutable field changed)",
                     resource.id)
            return body
        log.info("applied %s", resource.id)
        return body

    def _patch(self, resource: Resource, path: str, manifest: Mapping[str, Any], *,
               force: bool) -> Mapping[str, Any]:
        query = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        body = self.client.request(
            "PATCH", path, what=str(resource.id), query=query, body=manifest,
            content_type=APPLY_PATCH, secret=is_secret(manifest),
        ).body
        if self.cache is not None:
            self.cache.wrote(body)
        return body

    def _deleter(self) -> prune.Deleter:
        return prune.Deleter(client=self.client, discovery=self.discovery,
                             target=self.target.name, cache=self.cache,
                             delete_timeout=self.options.delete_timeout)

    # --- hooks (hooks_mod.HookIO) ----------------------------------------------

    def _hooks(self) -> hooks_mod.Hooks:
        def manifest(app: str, resource: Resource) -> tuple[str, dict[str, Any]]:
            return self._manifest(app, resource, live_mod.crd_scopes(()))

        def gone(path: str, what: str, body: Mapping[str, Any]) -> None:
            self._deleter().wait_gone(str(ResourceId(kind="hook", name=what)), path, False, body)

        return hooks_mod.Hooks(ClusterHookIO(client=self.client, target=self.target.name,
                                             manifest=manifest, wait_gone=gone))

    def sync_failed(self, app: App, reason: str) -> tuple[str, ...]:
        """Run the app's SyncFail hooks after it failed; notes for the app's message."""
        self._post.pop(app.name, None)
        hooks = hooks_mod.of_phase([r for r in app.resources if hooks_mod.is_hook(r)],
                                   "SyncFail")
        if not hooks:
            return ()
        try:
            self._hooks().run(app.name, "SyncFail", hooks, app.timeout)
        except ApiError as exc:
            return (f"SyncFail hook failed: {exc}",)
        return (f"SyncFail hook(s) ran: {_names(hooks)}",)

    def _wait_established(self, crds: Sequence[Mapping[str, Any]]) -> None:
        crds_mod.wait_established(self.client, self.discovery, crds, self.options.crd_timeout)

    # --- health --------------------------------------------------------------

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        options = self.options.for_app(app_options_of(app))
        rules = self._rules.get(options.health_exprs)
        if rules is None:
            rules = self._rules[options.health_exprs] = cel_health.Rules(options.health_exprs)
        resources = [r for r in app.resources
                     if not hooks_mod.is_hook(r) and not options.excluded_id(r.id)]
        crd_scopes = live_mod.crd_scopes(app.resources)
        places = [
            live_mod.place(r, self.discovery, crd_scopes, self.options.namespace)
            for r in resources
        ]
        try:
            found = live_mod.list_places(self.client, places, page_size=self.page_size)
        except ApiError as exc:
            raise self._as_tenant(exc) from exc
        # One check time for the whole report, so its objects are judged alike.
        now = datetime.now(UTC)
        status, problems = HealthStatus.HEALTHY, []
        for resource, place in zip(resources, places, strict=True):
            obj = found.get(place.key)
            if obj is None:
                state, message = HealthStatus.MISSING, "not found"
            else:
                result = _judge(obj, rules, now)
                state, message = result.status, result.message
            status = worse(status, state)
            if state is not HealthStatus.HEALTHY:
                problems.append(f"{resource.id}: {state.value}{': ' + message if message else ''}")
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        summary = "; ".join(problems[:3]) + more
        if status is HealthStatus.HEALTHY and app.name in self._post:
            return self._post_sync(app)
        return HealthReport(status=status, message=summary)

    def _post_sync(self, app: App) -> HealthReport:
        result = self._post[app.name].step(self._hooks(), app.name)
        if result.status is HealthStatus.HEALTHY:
            del self._post[app.name]
        return HealthReport(status=result.status, message=result.message)


def _judge(obj: Mapping[str, Any], rules: cel_health.Rules, now: datetime) -> Health:
    """A custom rule for the kind, if any, after the deletion check; else the built-in rules."""
    if rules and not (obj.get("metadata") or {}).get("deletionTimestamp"):
        custom = rules.health(obj)
        if custom is not None:
            return custom
    return object_health(obj, now=now)


def _with_hooks(view: LiveView, hooks: Sequence[Resource], refused: Mapping[str, str]) -> LiveView:
    """Hooks compare equal to themselves (the plan never shows them, and no drift
    check does); apps with an excluded kind cannot be planned."""
    desired = dict(view.desired)
    live = dict(view.live)
    for hook in hooks:
        form = {"hook": ",".join(hooks_mod.phases(hook.body))}
        desired[("", hook.id)] = form
        live[("", hook.id)] = LiveResource(id=hook.id, state=form, owner_app=hook.app)
    errors = {**refused, **{a: e for a, e in view.errors.items() if a not in refused}}
    return dataclasses.replace(view, desired=desired, live=live, errors=errors)


def _names(resources: Sequence[Resource]) -> str:
    return ", ".join(str(r.id) for r in resources)
