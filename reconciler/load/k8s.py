"""Kubernetes resource documents: ordinary manifests.

Only what identity needs is checked here (apiVersion, kind, metadata.name,
metadata.namespace); the API server validates the rest at apply time. A core
`Secret` is marked secret so its data never reaches a diff, log or page.
"""

from __future__ import annotations

import re

from reconciler.load.resources import ParsedResource
from reconciler.load.schema import Problems, as_map, get_map, get_str
from reconciler.load.yamlio import Document
from reconciler.model import Location, Resource, ResourceId

_API_VERSION = re.compile(r"([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?")


def parse(p: Problems, app: str, doc: Document) -> ParsedResource | None:
    m = as_map(p, doc.value, doc.line, "Kubernetes manifest")
    if m is None:
        return None
    api_version = get_str(p, m, "apiVersion", "manifest", required=True)
    kind = get_str(p, m, "kind", "manifest", required=True)
    if api_version is not None and not _API_VERSION.fullmatch(api_version):
        p.add(m.line_of("apiVersion"), f"manifest: apiVersion {api_version!r} is not "
                                       "'v1' or '<group>/<version>'")
        api_version = None
    metadata = get_map(p, m, "metadata", "manifest")
    if "metadata" not in m:
        p.add(m.line, "manifest: 'metadata' with a 'name' is required")
        return None
    if metadata is None:
        return None
    name = get_str(p, metadata, "name", "metadata", required=True)
    namespace = get_str(p, metadata, "namespace", "metadata") or ""
    if api_version is None or kind is None or name is None:
        return None
    group = api_version.rpartition("/")[0]
    rid = ResourceId(group=group, kind=kind, namespace=namespace, name=name)
    resource = Resource(id=rid, app=app, body=m, location=Location(file=p.file, line=m.line),
                        secret=(kind == "Secret" and group == ""))
    return ParsedResource(resource=resource, identity=("k8s", group, kind, namespace, name))
