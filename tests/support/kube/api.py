"""The object store of the test API server: discovery, reads and writes with
server-side apply field ownership, under one lock."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
import uuid

from tests.support.kube import leases
from tests.support.kube.defaults import Defaults
from tests.support.kube.objects import (
    BUILTINS,
    HttpError,
    Kind,
    Obj,
    del_path,
    get_path,
    leaf_paths,
    matches,
    merge_patch,
    now,
    overlaps,
    read_managers,
    set_path,
    write_managers,
)


class Api:
    """Objects by (group, plural) then (namespace, name); one lock for everything."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self.rv = itertools.count(1)
        self.compacted = 0
        self.defaults = Defaults()

    # discovery
    def kinds(self) -> list[Kind]:
        out = [*BUILTINS, *leases.KINDS]
        crds = self.objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
        for crd in crds.values():
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            for version in spec.get("versions") or ():
                if version.get("served", True):
                    out.append(Kind(spec["group"], version["name"], names["kind"],
                                    names["plural"], spec.get("scope") != "Cluster"))
        return out

    def discovery(self, parts: list[str]) -> Obj | None:
        kinds = self.kinds()
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"]}
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for k in kinds:
                if k.group and k.version not in groups.setdefault(k.group, []):
                    groups[k.group].append(k.version)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in groups.items()]}
        if parts[:1] == ["api"] and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[:1] == ["apis"] and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None
        served = [k for k in kinds if (k.group, k.version) == (group, version)]
        if not served:
            raise HttpError(404, "NotFound", f"the server could not find {'/'.join(parts)}")
        resources = []
        for k in served:
            verbs = ["create", "delete", "get", "list", "patch", "update"]
            resources.append({"name": k.plural, "singularName": k.kind.lower(),
                              "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs})
            resources.append({"name": f"{k.plural}/status", "namespaced": k.namespaced,
                              "kind": k.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": resources}

    def route(self, parts: list[str]) -> tuple[Kind, str, str, str]:
        """(kind, namespace, name, subresource) for an object or collection path."""
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in ("status", "finalize")
        ):
            namespace, rest = rest[1], rest[2:]
        for k in self.kinds():
            if (k.group, k.version, k.plural) == (group, version, rest[0]):
                if namespace and not k.namespaced:
                    break
                name = rest[1] if len(rest) > 1 else ""
                return k, namespace, name, rest[2] if len(rest) > 2 else ""
        raise HttpError(404, "NotFound", "the server could not find the requested resource")

    # reads
    def list(self, kind: Kind, namespace: str, selector: str, *, limit: int = 0,
             token: str = "") -> Obj:
        """A LIST, paged when `limit` > 0: `metadata.continue` names where the next
        page starts and `remainingItemCount` counts what is left. A token older
        than the last `compact()` answers 410 Expired, as after etcd compaction.

        Unlike a real server, later pages are not served from the first page's
        snapshot: an object written between pages shows up or not by its place
        in (namespace, name) order.
        """
        start, rv = decode_continue(token) if token else (None, 0)
        with self.lock:
            if token and rv <= self.compacted:
                raise HttpError(410, "Expired", "The provided continue parameter is too old "
                                "to display a consistent list result.")
            bucket = self.objects.get((kind.group, kind.plural), {})
            # Filter before sorting: sorting a whole kind per namespace LIST dominated
            # the server's time with thousands of objects.
            keys = sorted(key for key in bucket
                          if (not namespace or key[0] == namespace)
                          and (start is None or key > start))
            keys = [key for key in keys
                    if matches((bucket[key].get("metadata") or {}).get("labels") or {}, selector)]
            page = keys[:limit] if limit > 0 else keys
            # Stored objects are replaced on every write, never changed in place, so
            # items can share them until they are encoded (a deep copy per item was
            # most of the server's time in benchmarks).
            items = [{k: v for k, v in bucket[key].items() if k not in ("apiVersion", "kind")}
                     for key in page]
            list_rv = rv or next(self.rv)
        meta: Obj = {"resourceVersion": str(list_rv)}
        if len(page) < len(keys):
            meta["continue"] = encode_continue(page[-1], list_rv)
            meta["remainingItemCount"] = len(keys) - len(page)
        return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                "metadata": meta, "items": items}

    def compact(self) -> None:
        """Expire every continue token handed out so far."""
        with self.lock:
            self.compacted = next(self.rv)

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        obj = self.objects.get((kind.group, kind.plural), {}).get((namespace, name))
        if obj is None:
            raise HttpError(404, "NotFound", f'{kind.plural} "{name}" not found')
        out = copy.deepcopy(obj)
        out["apiVersion"] = kind.api_version
        return out

    # writes
    def write(self, kind: Kind, namespace: str, name: str, new: Obj, *,
              old: Obj | None, dry_run: bool) -> Obj:
        """Store `new` (defaults, bookkeeping) unless dry_run; returns the result."""
        if kind.namespaced and not self.objects.get(("", "namespaces"), {}).get(("", namespace)):
            raise HttpError(404, "NotFound", f'namespaces "{namespace}" not found')
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        meta = new.setdefault("metadata", {})
        meta["name"] = name
        if kind.namespaced:
            meta["namespace"] = namespace
        self.defaults.apply(kind, new)
        old_meta = (old or {}).get("metadata") or {}
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or now()
        generation = int(old_meta.get("generation") or 0)

        def content(o: Obj | None) -> Obj:
            skip = ("metadata", "status", "apiVersion")
            return {k: v for k, v in (o or {}).items() if k not in skip}

        changed = old is None or content(old) != content(new)
        meta["generation"] = generation + 1 if changed else generation
        if dry_run:
            meta["resourceVersion"] = old_meta.get("resourceVersion", "0")
            return copy.deepcopy(new)
        meta["resourceVersion"] = str(next(self.rv))
        self.objects.setdefault((kind.group, kind.plural), {})[(namespace, name)] = new
        return copy.deepcopy(new)

    def create(self, kind: Kind, namespace: str, body: Obj, manager: str, dry_run: bool) -> Obj:
        name = str((body.get("metadata") or {}).get("name", ""))
        with self.lock:
            if (namespace, name) in self.objects.get((kind.group, kind.plural), {}):
                raise HttpError(409, "AlreadyExists", f'{kind.plural} "{name}" already exists')
            leases.validate(kind, body)
            new = copy.deepcopy(body)
            write_managers(new, {(manager, "Update"): leaf_paths(body)})
            return self.write(kind, namespace, name, new, old=None, dry_run=dry_run)

    def apply(self, kind: Kind, namespace: str, name: str, patch: Obj, *,
              manager: str, force: bool, dry_run: bool) -> Obj:
        with self.lock:
            old = self.objects.get((kind.group, kind.plural), {}).get((namespace, name))
            managers = read_managers(old)
            applied = leaf_paths(patch)
            conflicts = []
            for (other, op), paths in managers.items():
                if (other, op) == (manager, "Apply"):
                    continue
                for p in list(paths):
                    clashing = [q for q in applied if overlaps(p, q)
                                and get_path(old, q) != get_path(patch, q)]
                    if clashing and not force:
                        conflicts.append(f'conflict with "{other}": .{".".join(p)}')
                    elif clashing:
                        paths.discard(p)
            if conflicts:
                message = "Apply failed with conflicts: " + "; ".join(conflicts)
                raise HttpError(409, "Conflict", message)
            new = copy.deepcopy(old) if old else {}
            others = set().union(*(v for k, v in managers.items() if k != (manager, "Apply")))
            for p in managers.get((manager, "Apply"), set()) - applied:
                if not any(overlaps(p, o) for o in others):
                    del_path(new, p)
            for q in applied:
                set_path(new, q, get_path(patch, q))
            managers[(manager, "Apply")] = applied
            write_managers(new, managers)
            return self.write(kind, namespace, name, new, old=old, dry_run=dry_run)

    def update(self, kind: Kind, namespace: str, name: str, body: Obj, *, merge: bool,
               manager: str, subresource: str, dry_run: bool) -> Obj:
        with self.lock:
            old = self.get(kind, namespace, name)
            if subresource == "status":
                status = body.get("status")
                if merge:
                    status = merge_patch(old.get("status"), status)
                new = {**copy.deepcopy(old), "status": status}
            else:
                if not merge:
                    leases.check_update(kind, name, old, body)
                new = merge_patch(old, body) if merge else copy.deepcopy(body)
                leases.validate(kind, new)
                new["status"] = old.get("status")
                managers = read_managers(old)
                touched = leaf_paths(body)
                for paths in managers.values():
                    paths -= {p for p in paths if any(overlaps(p, t) for t in touched)}
                managers[(manager, "Update")] = managers.get((manager, "Update"), set()) | touched
                write_managers(new, managers)
            if new.get("status") is None:
                new.pop("status", None)
            return self.write(kind, namespace, name, new, old=old, dry_run=dry_run)

    def delete(self, kind: Kind, namespace: str, name: str, options: Obj, dry_run: bool) -> Obj:
        with self.lock:
            old = self.get(kind, namespace, name)
            uid = (options.get("preconditions") or {}).get("uid")
            if uid and uid != old["metadata"]["uid"]:
                message = f'{kind.plural} "{name}": precondition failed: uid'
                raise HttpError(409, "Conflict", message)
            if dry_run:
                return old
            del self.objects[(kind.group, kind.plural)][(namespace, name)]
            if kind.kind == "Namespace":
                for bucket in self.objects.values():
                    for key in [k for k in bucket if k[0] == name]:
                        del bucket[key]
            if kind.kind == "CustomResourceDefinition":
                spec = old.get("spec") or {}
                plural = (spec.get("names") or {}).get("plural", "")
                self.objects.pop((spec.get("group", ""), plural), None)
            return {"kind": "Status", "apiVersion": "v1", "status": "Success",
                    "details": {"name": name, "kind": kind.plural, "uid": old["metadata"]["uid"]}}


def encode_continue(last: tuple[str, str], rv: int) -> str:
    """An opaque token, as the real server's: where the page ended, and when."""
    raw = json.dumps({"rv": rv, "start": list(last)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[tuple[str, str], int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = data["start"]
        return (str(namespace), str(name)), int(data["rv"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HttpError(400, "BadRequest", "invalid continue token") from exc
