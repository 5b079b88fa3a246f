"""A small Kubernetes API server for tests: real HTTP on 127.0.0.1, documented semantics.

It serves what the Kubernetes backend uses, the way the API documents it:
discovery (/api, /api/v1, /apis, /apis/<group>/<version>) including kinds that
CustomResourceDefinition objects register; GET and LIST (labelSelector with
`k=v`, `k==v`, `k!=v`, `k`, `!k`; list items without apiVersion/kind, as the
real server sends them); POST (409 AlreadyExists); PUT; PATCH as server-side
apply (application/apply-patch+yaml, fieldManager, force) and as JSON merge
patch; DELETE (with uid preconditions); the /status subresource; dryRun=All;
Status objects for errors; resourceVersion bumped on every write, generation on
every change outside metadata and status; a few server defaults (Deployment
strategy, Service clusterIP, Secret stringData folding...); bearer-token auth.

Field ownership is modelled per manager as a set of leaf paths (lists are
atomic): apply conflicts (409) when another manager owns a field with a
different value and force is not set; fields a manager applied before and no
longer applies are removed unless someone else owns them.

Every request is recorded (method, path, query) for tests and benchmarks.
"""

from __future__ import annotations

import base64
import copy
import datetime
import itertools
import json
import socket
import threading
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ruamel.yaml import YAML

Obj = dict[str, Any]
FieldPath = tuple[str, ...]
_UNTRACKED = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTINS = [
    Kind("", "v1", "Namespace", "namespaces", False),
    Kind("", "v1", "ConfigMap", "configmaps", True),
    Kind("", "v1", "Secret", "secrets", True),
    Kind("", "v1", "Service", "services", True),
    Kind("", "v1", "Pod", "pods", True),
    Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True),
    Kind("apps", "v1", "Deployment", "deployments", True),
    Kind("apps", "v1", "StatefulSet", "statefulsets", True),
    Kind("apps", "v1", "DaemonSet", "daemonsets", True),
    Kind("batch", "v1", "Job", "jobs", True),
    Kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
         "customresourcedefinitions", False),
]


class HttpError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status_object(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# --- field paths ----------------------------------------------------------------


def leaf_paths(obj: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    if isinstance(obj, dict) and obj:
        out: set[FieldPath] = set()
        for key, value in obj.items():
            out |= leaf_paths(value, (*prefix, key))
        return out
    return {prefix} - _UNTRACKED


def get_path(obj: Any, path: FieldPath) -> Any:
    for token in path:
        if not isinstance(obj, dict) or token not in obj:
            return None
        obj = obj[token]
    return obj


def set_path(obj: Obj, path: FieldPath, value: Any) -> None:
    for token in path[:-1]:
        if not isinstance(obj.get(token), dict):
            obj[token] = {}
        obj = obj[token]
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj: Obj, path: FieldPath) -> None:
    parent = get_path(obj, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def overlaps(a: FieldPath, b: FieldPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def to_fields_v1(paths: set[FieldPath]) -> Obj:
    tree: Obj = {}
    for path in paths:
        node = tree
        for token in path:
            node = node.setdefault(f"f:{token}", {})
    return tree


def from_fields_v1(tree: Obj, prefix: FieldPath = ()) -> set[FieldPath]:
    if not tree:
        return {prefix}
    out: set[FieldPath] = set()
    for key, value in tree.items():
        out |= from_fields_v1(value, (*prefix, key[2:]))
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if term.startswith("!"):
            ok = term[1:] not in labels
        elif "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            ok = labels.get(key) == value
        else:
            ok = term in labels
        if not ok:
            return False
    return True


# --- server defaults --------------------------------------------------------------


def _default_containers(pod_spec: Obj) -> None:
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    for container in pod_spec.get("containers") or ():
        latest = str(container.get("image", "")).endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")


class Defaults:
    def __init__(self) -> None:
        self._ips = itertools.count(10)

    def apply(self, kind: Kind, obj: Obj) -> None:
        spec = obj.setdefault("spec", {}) if kind.kind in ("Deployment", "Service", "Job") else {}
        if kind.kind == "Deployment":
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate":
                                         {"maxSurge": "25%", "maxUnavailable": "25%"}})
            _default_containers((spec.get("template") or {}).setdefault("spec", {}))
        elif kind.kind == "Service":
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if "clusterIP" not in spec:
                n = next(self._ips)
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
                spec["clusterIPs"] = [spec["clusterIP"]]
            for port in spec.get("ports") or ():
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        elif kind.kind == "Job":
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
        elif kind.kind == "Secret":
            obj.setdefault("type", "Opaque")
            data = obj.setdefault("data", {})
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        elif kind.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif kind.kind == "CustomResourceDefinition":
            names = (obj.get("spec") or {}).get("names") or {}
            obj["status"] = {"acceptedNames": names, "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}


# --- the API ------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Api:
    """Objects by (group, plural) then (namespace, name); one lock for everything."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self.rv = itertools.count(1)
        self.defaults = Defaults()

    # discovery
    def kinds(self) -> list[Kind]:
        out = list(BUILTINS)
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
    def list(self, kind: Kind, namespace: str, selector: str) -> Obj:
        with self.lock:
            bucket = self.objects.get((kind.group, kind.plural), {})
            items = []
            for (ns, _), obj in sorted(bucket.items()):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if (not namespace or ns == namespace) and matches(labels, selector):
                    item = copy.deepcopy(obj)
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
                    items.append(item)
            rv = str(next(self.rv))
        return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": rv}, "items": items}

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
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or _now()
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
            new = copy.deepcopy(body)
            _set_managers(new, {(manager, "Update"): leaf_paths(body)})
            return self.write(kind, namespace, name, new, old=None, dry_run=dry_run)

    def apply(self, kind: Kind, namespace: str, name: str, patch: Obj, *,
              manager: str, force: bool, dry_run: bool) -> Obj:
        with self.lock:
            old = self.objects.get((kind.group, kind.plural), {}).get((namespace, name))
            managers = _managers(old)
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
            _set_managers(new, managers)
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
                new = merge_patch(old, body) if merge else copy.deepcopy(body)
                new["status"] = old.get("status")
                managers = _managers(old)
                touched = leaf_paths(body)
                for paths in managers.values():
                    paths -= {p for p in paths if any(overlaps(p, t) for t in touched)}
                managers[(manager, "Update")] = managers.get((manager, "Update"), set()) | touched
                _set_managers(new, managers)
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


def _managers(obj: Obj | None) -> dict[tuple[str, str], set[FieldPath]]:
    out: dict[tuple[str, str], set[FieldPath]] = {}
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or ():
        key = (entry["manager"], entry["operation"])
        out[key] = from_fields_v1(entry.get("fieldsV1") or {}) - {()}
    return out


def _set_managers(obj: Obj, managers: dict[tuple[str, str], set[FieldPath]]) -> None:
    obj.setdefault("metadata", {})["managedFields"] = [
        {"manager": m, "operation": op, "apiVersion": obj.get("apiVersion", ""), "time": _now(),
         "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
        for (m, op), paths in sorted(managers.items()) if paths
    ]


# --- HTTP ------------------------------------------------------------------------------


def _parse_body(raw: bytes, content_type: str) -> Obj:
    if not raw:
        return {}
    yaml = "yaml" in content_type
    parsed = YAML(typ="safe").load(raw.decode()) if yaml else json.loads(raw)
    if not isinstance(parsed, dict):
        raise HttpError(400, "BadRequest", "the body must be an object")
    return parsed


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counters
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without NODELAY, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        owner = self.server.owner
        owner.record(self.command, url.path, url.query)
        try:
            if self.headers.get("Authorization") != f"Bearer {owner.token}":
                raise HttpError(401, "Unauthorized", "Unauthorized")
            body = _parse_body(raw, self.headers.get("Content-Type") or "")
            code, answer = owner.dispatch(self.command, url.path, query, body,
                                          self.headers.get("Content-Type") or "")
        except HttpError as exc:
            code, answer = exc.code, status_object(exc.code, exc.reason, exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            code, answer = 400, status_object(400, "BadRequest", f"bad request: {exc}")
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: KubeApiServer


class KubeApiServer:
    """Start with `KubeApiServer.start()`; `stop()` when done."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.api = Api()
        self.requests: list[tuple[str, str, str]] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        # The namespaces every cluster starts with.
        for ns in ("default", "kube-system"):
            self.api.write(BUILTINS[0], "", ns, {"metadata": {"name": ns}}, old=None, dry_run=False)

    @classmethod
    def start(cls, token: str = "test-token") -> KubeApiServer:
        server = cls(token)
        server._thread.start()
        return server

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, method: str, path: str, query: str) -> None:
        with self.api.lock:
            self.requests.append((method, path, query))

    def counts(self) -> Counter[str]:
        """Requests by method ("GET", "PATCH", "PATCH dryRun", ...)."""
        out: Counter[str] = Counter()
        for method, _, query in self.requests:
            out[method + (" dryRun" if "dryRun=" in query else "")] += 1
        return out

    def writes(self) -> list[tuple[str, str, str]]:
        """Requests that change something: writes without dryRun."""
        return [r for r in self.requests if r[0] != "GET" and "dryRun=" not in r[2]]

    def reset_counts(self) -> None:
        with self.api.lock:
            self.requests.clear()

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Obj,
                 content_type: str) -> tuple[int, Obj]:
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            doc = self.api.discovery(parts)
            if doc is not None:
                return 200, doc
        kind, namespace, name, sub = self.api.route(parts)
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager", "test-controller")
        if method == "GET":
            if name:
                return 200, self.api.get(kind, namespace, name)
            return 200, self.api.list(kind, namespace, query.get("labelSelector", ""))
        if method == "POST" and not name:
            return 201, self.api.create(kind, namespace, body, manager, dry_run)
        if method == "PATCH" and "apply-patch" in content_type and not sub:
            if not body.get("apiVersion") or not body.get("kind"):
                raise HttpError(400, "BadRequest", "apiVersion and kind must be set")
            force = query.get("force") == "true"
            return 200, self.api.apply(kind, namespace, name, body, manager=manager, force=force,
                                       dry_run=dry_run)
        if method in ("PATCH", "PUT") and name:
            if method == "PATCH" and "merge-patch" not in content_type:
                raise HttpError(415, "UnsupportedMediaType", f"unsupported patch {content_type}")
            return 200, self.api.update(kind, namespace, name, body, merge=method == "PATCH",
                                        manager=manager, subresource=sub, dry_run=dry_run)
        if method == "DELETE" and name:
            return 200, self.api.delete(kind, namespace, name, body, dry_run)
        raise HttpError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    # --- helpers for tests that play the controllers ------------------------------------

    def write_kubeconfig(
        self, path: Path, *, context: str = "test", namespace: str = "default"
    ) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "test", "user": "test",
                                                         "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    def patch_status(self, path: str, status: Obj) -> Obj:
        """Merge `status` into the object at `path` through its /status subresource, over HTTP."""
        request = urllib.request.Request(
            f"{self.url}{path}/status", method="PATCH",
            data=json.dumps({"status": status}).encode(),
            headers={"Content-Type": "application/merge-patch+json",
                     "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: Obj = json.loads(response.read())
        return answer
