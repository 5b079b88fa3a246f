"""Bulk reading of live state and of the desired comparable forms.

Call budget of one `read`: one discovery call per apiVersion, one LIST per
(kind, namespace) the manifests use of objects no reconciler manages, one
labelled cluster-wide LIST per kind of those it does (per listed namespace
with the `namespaces` option; each LIST one request per page of PAGE_SIZE
items), so each live object is read once, and
one dry-run apply only per object whose live fields differ from its manifest
(checked locally first). Never one GET per object.

Invariants:
- Live objects that a manifest names are keyed by that manifest's ResourceId
  (its namespace may be implicit), so the plan matches them; other live objects
  appear only when owned by this target (prune candidates).
- A dry-run changes nothing; it runs with the same force setting as apply, so a
  conflict shows in the plan rather than in the rollout.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from backends.kubernetes.client import APPLY_PATCH, FIELD_MANAGER, KubeClient, object_path
from backends.kubernetes.discovery import ApiResource, Discovery, split_api_version
from backends.kubernetes.normalize import (
    OWNED_SELECTOR,
    UNOWNED_SELECTOR,
    comparable,
    ignore_pointers,
    is_secret,
    keep_ignored,
    may_differ,
    owner_app,
    with_ownership,
)
from reconciler.errors import ApiError
from reconciler.model import HostKey, LiveResource, LiveView, Resource, ResourceId

log = logging.getLogger(__name__)

ObjKey = tuple[str, str, str, str]
"""(group, kind, namespace, name) of a live object."""


@dataclass(frozen=True, kw_only=True)
class Place:
    """Where a manifest lives on the cluster; `api` is None while its kind is not served."""

    api_version: str
    kind: str
    api: ApiResource | None
    namespace: str
    name: str

    @property
    def key(self) -> ObjKey:
        group = split_api_version(self.api_version)[0]
        return (group, self.kind, self.namespace, self.name)


def crd_scopes(resources: Iterable[Resource]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for CRDs among `resources` (before they exist)."""
    out: dict[tuple[str, str], bool] = {}
    for r in resources:
        if (r.id.group, r.id.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            spec = r.body.get("spec") or {}
            kind = str((spec.get("names") or {}).get("kind", ""))
            out[(str(spec.get("group", "")), kind)] = spec.get("scope") != "Cluster"
    return out


def place(
    resource: Resource,
    discovery: Discovery,
    crds: Mapping[tuple[str, str], bool],
    default_namespace: str,
) -> Place:
    body = resource.body
    api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    api = discovery.lookup(api_version, kind)
    if api is not None:
        namespaced = api.namespaced
    else:
        group = split_api_version(api_version)[0]
        namespaced = crds.get((group, kind), bool(resource.id.namespace))
    namespace = ""
    if namespaced:
        namespace = str((body.get("metadata") or {}).get("namespace") or default_namespace)
    name = str((body.get("metadata") or {}).get("name", resource.id.name))
    return Place(api_version=api_version, kind=kind, api=api, namespace=namespace, name=name)


_REFUSALS = (400, 403, 404, 409, 422)
"""Statuses of a dry-run that judge the object, not the server's health."""

PAGE_SIZE = 500
"""Items per LIST page (kubectl's default chunk size): bounds the size of one
response, and the server's memory for it, in very large namespaces."""


def list_objects(
    client: KubeClient, api: ApiResource, namespace: str, selector: str = "", *,
    page_size: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """One LIST, page by page (`limit` + `continue`); items get apiVersion/kind,
    which real API servers leave out of list items."""
    return list_collection(client, api, namespace, selector, page_size=page_size)[0]


def list_collection(
    client: KubeClient, api: ApiResource, namespace: str, selector: str = "", *,
    page_size: int = PAGE_SIZE,
) -> tuple[list[dict[str, Any]], str]:
    """`list_objects`, and the resourceVersion of the snapshot the items are from
    (a WATCH from it misses nothing after them)."""
    path = object_path(group=api.group, version=api.version, plural=api.plural, namespace=namespace)
    what = f"{api.kind} list in {namespace or 'all namespaces'}"
    items: list[dict[str, Any]] = []
    token, version = "", ""
    while True:
        query = [("limit", str(page_size))] if page_size > 0 else []
        if selector:
            query.append(("labelSelector", selector))
        if token:
            query.append(("continue", token))
        response = client.request("GET", path, what=what, query=query, allow=(410,))
        if response.status == 410 and token:
            # The token expired (etcd compacted its revision) between pages: start
            # over with one unpaged list, a consistent snapshot, as client-go's
            # pager does; pages already read may be stale, so they are dropped.
            items, token, page_size = [], "", 0
            continue
        if response.status == 410:
            raise ApiError(f"GET {what}: 410 Expired", status=410)
        for item in response.body.get("items") or ():
            items.append({"apiVersion": api.api_version, "kind": api.kind, **item})
        metadata = response.body.get("metadata") or {}
        if not token:
            # Every page of one LIST is of the first page's snapshot.
            version = str(metadata.get("resourceVersion") or "")
        token = str(metadata.get("continue") or "")
        if not token:
            return items, version


def obj_key(obj: Mapping[str, Any]) -> ObjKey:
    """(group, kind, namespace, name) of a live object or of an API server's answer."""
    metadata = obj.get("metadata") or {}
    return (
        split_api_version(str(obj.get("apiVersion", "")))[0],
        str(obj.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name", "")),
    )


ListJob = tuple[ApiResource, str, str]
"""One LIST: the kind's resource, the namespace ("" = all), the label selector."""

Lister = Callable[[Sequence[ListJob]], Mapping[ObjKey, Mapping[str, Any]]]
"""What a read gets its live objects from: the objects of every job, keyed
(`list_many`, or a watch-fed cache's `objects`)."""

LIST_WORKERS = 4
"""LISTs in flight at once: the server answers one while the client decodes
another, instead of the two taking turns."""


def place_jobs(places: Sequence[Place], selector: str = "") -> list[ListJob]:
    """One LIST per (kind, namespace) of `places`, in their order."""
    jobs: dict[tuple[str, str, str], ListJob] = {}
    for p in places:
        if p.api is not None:
            jobs.setdefault((p.api_version, p.kind, p.namespace), (p.api, p.namespace, selector))
    return list(jobs.values())


def list_many(
    client: KubeClient, jobs: Sequence[ListJob], *, page_size: int = PAGE_SIZE
) -> dict[ObjKey, dict[str, Any]]:
    """The objects of every job, keyed; LISTs run on up to LIST_WORKERS threads
    (each one's pages in order), and the first error is raised."""
    def run(job: ListJob) -> list[dict[str, Any]]:
        return list_objects(client, job[0], job[1], job[2], page_size=page_size)

    if len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(jobs))) as pool:
            results = list(pool.map(run, jobs))
    else:
        results = [run(job) for job in jobs]
    return {obj_key(obj): obj for items in results for obj in items}


def list_places(
    client: KubeClient, places: Sequence[Place], *, page_size: int = PAGE_SIZE
) -> dict[ObjKey, dict[str, Any]]:
    """Live objects for `places`, with one LIST (of one or more pages) per (kind, namespace)."""
    return list_many(client, place_jobs(places), page_size=page_size)


_paused = 0
_paused_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a read builds its objects.

    A no-op plan of 10,000 objects decodes ~30 MiB of JSON into objects that all
    stay alive; the collector rescans that growing heap again and again (1.3 s
    of a 4.2 s plan, measured in bench/bench_kube_plan.py) and frees nothing.
    Reads on several threads share one pause: the last one out re-enables it.
    """
    global _paused
    with _paused_lock:
        ours = _paused > 0 or gc.isenabled()  # else someone else turned it off
        if ours:
            _paused += 1
            gc.disable()
    if not ours:
        yield
        return
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0:
                gc.enable()


class LiveReader:
    """One target's read: state of desired and owned objects, desired comparable forms."""

    def __init__(
        self,
        *,
        client: KubeClient,
        discovery: Discovery,
        target: str,
        default_namespace: str,
        force: bool,
        page_size: int = PAGE_SIZE,
        namespaces: Sequence[str] = (),
        lister: Lister | None = None,
        on_immutable: Callable[[Resource, ApiError], bool] | None = None,
    ) -> None:
        self.lister = lister
        """Where the objects come from; None: one LIST per job, now."""
        self.on_immutable = on_immutable
        """Told of a dry-run the server refused as immutable; True: plan the
        manifest as it is, and not an error of the app."""
        self.namespaces = tuple(namespaces)
        """Empty: owned objects are listed cluster-wide. Otherwise only these are read."""
        self.client = client
        self.discovery = discovery
        self.target = target
        self.default_namespace = default_namespace
        self.force = force
        self.page_size = page_size
        self.dry_runs = 0
        self.errors: dict[str, str] = {}
        """App -> the first object of it the server refused to dry-run."""

    def read(self, resources: Sequence[Resource], inventory: Sequence[ResourceId]) -> LiveView:
        crds = crd_scopes(resources)
        places = [place(r, self.discovery, crds, self.default_namespace) for r in resources]
        self._check_namespaces(resources, places)
        # Objects a reconciler manages come from the owned lists, the rest from
        # the places' lists: each is read and decoded once (half the bytes of a
        # no-op plan otherwise). The owned lists are the long ones: first.
        jobs = self._owned_jobs(places, inventory) + place_jobs(places, UNOWNED_SELECTOR)
        found: Mapping[ObjKey, Mapping[str, Any]] = (
            self.lister(jobs) if self.lister is not None
            else list_many(self.client, jobs, page_size=self.page_size))
        by_place = {p.key: r.id for r, p in zip(resources, places, strict=True)}
        live: dict[HostKey, LiveResource] = {}
        for key, obj in found.items():
            rid = by_place.get(key)
            owner = owner_app(obj, self.target)
            if rid is None and owner is None:
                continue  # neither named by Git nor ours: none of our business
            rid = rid or ResourceId(group=key[0], kind=key[1], namespace=key[2], name=key[3])
            ignore = ignore_pointers(obj)
            state = comparable(obj, ignore=ignore)
            live[("", rid)] = LiveResource(id=rid, state=state, owner_app=owner)
        desired = {
            ("", r.id): self._desired(r, p, found.get(p.key), live.get(("", r.id)))
            for r, p in zip(resources, places, strict=True)
        }
        return LiveView(target=self.target, hosts=("",), desired=desired, live=live,
                        errors=dict(self.errors))

    def _owned_jobs(
        self, places: Sequence[Place], inventory: Sequence[ResourceId]
    ) -> list[ListJob]:
        """LISTs of reconciler-managed objects, one cluster-wide per kind (or one
        per listed namespace); this target's or another's: the places' lists leave
        them out, and a manifest may name either."""
        apis: dict[tuple[str, str], ApiResource] = {}
        for p in places:
            if p.api is not None:
                apis.setdefault((p.api.group, p.kind), p.api)
        for rid in inventory:
            # The inventory is the memory of every kind this target applied, so a
            # kind that left Git entirely is still listed and its objects pruned.
            if (rid.group, rid.kind) in apis:
                continue
            api = self.discovery.find(rid.group, rid.kind)
            if api is not None:  # None: the kind is gone, and its objects with it
                apis[(rid.group, rid.kind)] = api
        jobs: list[ListJob] = []
        for _, api in sorted(apis.items()):
            scopes = self.namespaces if self.namespaces and api.namespaced else ("",)
            jobs.extend((api, namespace, OWNED_SELECTOR) for namespace in scopes)
        return jobs

    def _check_namespaces(self, resources: Sequence[Resource], places: Sequence[Place]) -> None:
        """With `namespaces` set, a manifest elsewhere is refused before any call."""
        if not self.namespaces:
            return
        for r, p in zip(resources, places, strict=True):
            if p.namespace and p.namespace not in self.namespaces:
                allowed = ", ".join(self.namespaces)
                raise ApiError(f"{r.location}: {r.id} is in namespace {p.namespace!r}, which "
                               f"target {self.target} does not list (namespaces: {allowed})")

    def _desired(
        self,
        resource: Resource,
        where: Place,
        live_obj: Mapping[str, Any] | None,
        live_form: LiveResource | None,
    ) -> Mapping[str, Any]:
        manifest = with_ownership(
            resource.body, app=resource.app, target=self.target, namespace=where.namespace
        )
        ignore = ignore_pointers(manifest)
        if live_obj is None or where.api is None:
            return comparable(manifest, ignore=ignore)
        # As apply will send it: ignored fields keep their live values.
        manifest = dict(keep_ignored(manifest, live_obj, ignore))
        if not may_differ(manifest, live_obj, FIELD_MANAGER):
            if live_form is not None and ignore == ignore_pointers(live_obj):
                # Nothing would change: the live form is the answer, already built.
                return live_form.state
            return comparable(live_obj, ignore=ignore)
        try:
            answer = self._dry_run(resource, where, manifest, live_obj)
        except ApiError as exc:
            if exc.status not in _REFUSALS:
                raise  # the server or the connection failed: nothing can be planned
            if self.on_immutable is not None and self.on_immutable(resource, exc):
                # The caller decides at apply time (replace, or refuse with the reason).
                return comparable(manifest, ignore=ignore)
            # The server refused this object (an immutable field, a rule, RBAC in
            # one namespace): only its app is unplannable.
            self.errors.setdefault(resource.app, f"{resource.location}: {exc}")
            return comparable(manifest, ignore=ignore)
        return comparable(answer, ignore=ignore)

    def _dry_run(
        self,
        resource: Resource,
        where: Place,
        manifest: Mapping[str, Any],
        live_obj: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        """What the server would make of the manifest, without changing anything."""
        assert where.api is not None
        path = object_path(
            group=where.api.group,
            version=where.api.version,
            plural=where.api.plural,
            namespace=where.namespace,
            name=where.name,
        )
        query = [("fieldManager", FIELD_MANAGER), ("dryRun", "All")]
        if self.force:
            query.append(("force", "true"))
        self.dry_runs += 1
        try:
            response = self.client.request(
                "PATCH",
                path,
                what=f"{resource.id} (dry run)",
                query=query,
                body=manifest,
                content_type=APPLY_PATCH,
                secret=is_secret(manifest),
            )
        except ApiError as exc:
            if exc.status != 409 or not exc.conflicts:
                # Not a field conflict (a stale resourceVersion, AlreadyExists...):
                # the plan cannot know the outcome, so it says so.
                raise
            # A field conflict: the plan still shows the intended change; the
            # rollout will report the conflict unless force_conflicts is set.
            owners = ", ".join(f"{field} (owned by {manager})" for field, manager in exc.conflicts)
            log.warning("%s: fields another manager owns: %s", resource.id, owners)
            overlaid: Mapping[str, Any] = _overlay(live_obj, manifest)
            return overlaid
        return response.body


def _overlay(base: Any, top: Any) -> Any:
    """`top` laid over `base`, keeping base fields top does not set (server defaults),
    also inside list items at the same positions."""
    if isinstance(top, Mapping) and isinstance(base, Mapping):
        out = dict(base)
        for key, value in top.items():
            out[key] = _overlay(base.get(key), value)
        return out
    if isinstance(top, list) and isinstance(base, list) and len(top) == len(base):
        return [_overlay(b, t) for b, t in zip(base, top, strict=True)]
    return top
