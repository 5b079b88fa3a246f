"""Kubernetes resource documents: ordinary manifests, and lists of them.

Only what identity needs is checked here (apiVersion, kind, metadata.name,
metadata.namespace); the API server validates the rest at apply time. A core
`Secret` is marked secret so its data never reaches a diff, log or page.

A list (`kind: List`, or any `<Kind>List` with `items`, as `kubectl get -o
yaml` writes them) is expanded the way `kubectl apply` expands it: each item
becomes a resource of its own, validated as a manifest and located at the
item's own line, so duplicates and errors point inside the list. A list's own
`metadata` (resourceVersion and the like) describes no object and is dropped.
"""

from __future__ import annotations

import re

from reconciler.load.k8s_hooks import check_hook
from reconciler.load.resources import ParsedResource
from reconciler.load.schema import Problems, as_map, check_keys, describe, get_map, get_str
from reconciler.load.yamlio import Document, YamlMap, YamlSeq, shown
from reconciler.model import Location, Resource, ResourceId

_API_VERSION = re.compile(r"([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?")


_LIST_KEYS = ("apiVersion", "kind", "metadata", "items")


def is_list(m: YamlMap) -> bool:
    kind = m.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and (kind == "List" or "items" in m)


def parse_all(p: Problems, app: str, doc: Document) -> tuple[ParsedResource, ...]:
    """The resources of one document: itself, or the items of a list."""
    m = doc.value
    if not isinstance(m, YamlMap) or not is_list(m):
        found = parse(p, app, doc)
        return (found,) if found is not None else ()
    check_keys(p, m, _LIST_KEYS, f"manifest {m['kind']}", required=("items",))
    items = m.get("items")
    if items is None:
        return ()
    if not isinstance(items, YamlSeq):
        p.add(m.line_of("items"), f"manifest {m['kind']}: 'items' must be a list of "
                                  f"manifests, not {describe(items)}")
        return ()
    out: list[ParsedResource] = []
    for index, item in enumerate(items):
        line = items.line_of(index)
        if isinstance(item, YamlMap) and is_list(item):
            # kubectl does not flatten nested lists either.
            p.add(line, f"manifest {m['kind']}: an item cannot itself be a list")
            continue
        found = parse(p, app, Document(value=item, line=line), what="List item")
        if found is not None:
            out.append(found)
    return tuple(out)


def parse(p: Problems, app: str, doc: Document, *,
          what: str = "Kubernetes manifest") -> ParsedResource | None:
    m = as_map(p, doc.value, doc.line, what)
    if m is None:
        return None
    api_version = get_str(p, m, "apiVersion", "manifest", required=True)
    kind = get_str(p, m, "kind", "manifest", required=True)
    if api_version is not None and not _API_VERSION.fullmatch(api_version):
        p.add(m.line_of("apiVersion"), f"manifest: apiVersion {shown(api_version)} is not "
                                       "'v1' or '<group>/<version>'")
        api_version = None
    metadata = get_map(p, m, "metadata", "manifest")
    if "metadata" not in m:
        p.add(m.line, "manifest: 'metadata' with a 'name' is required")
        return None
    if metadata is None:
        return None
    check_hook(p, metadata)
    name = get_str(p, metadata, "name", "metadata", required=True)
    namespace = get_str(p, metadata, "namespace", "metadata") or ""
    if api_version is None or kind is None or name is None:
        return None
    group = api_version.rpartition("/")[0]
    rid = ResourceId(group=group, kind=kind, namespace=namespace, name=name)
    resource = Resource(id=rid, app=app, body=m, location=Location(file=p.file, line=m.line),
                        secret=(kind == "Secret" and group == ""))
    return ParsedResource(resource=resource, identity=("k8s", group, kind, namespace, name))
