"""YARN resource documents: one service specification each, as in the YARN
Services REST API (`POST /app/v1/services`).

The keys are a closed set taken from that API's Service and Component
objects, so a typo such as `number_of_container` is caught with a
did-you-mean instead of being silently dropped by the ResourceManager.
"""

from __future__ import annotations

from typing import Any

from reconciler.load.resources import ParsedResource
from reconciler.load.schema import (
    Problems,
    as_map,
    check_keys,
    describe,
    get_enum,
    get_int,
    get_map,
    get_str,
)
from reconciler.load.yamlio import Document, YamlMap, YamlSeq
from reconciler.model import Location, Resource, ResourceId

_SERVICE_KEYS = (
    "name", "version", "description", "components", "lifetime", "queue", "configuration",
    "artifact", "resource", "launch_time", "placement_policy", "quicklinks", "dependencies",
    "kerberos_principal", "docker_client_config", "state",
)
_COMPONENT_KEYS = (
    "name", "number_of_containers", "artifact", "resource", "launch_command", "configuration",
    "dependencies", "readiness_check", "placement_policy", "restart_policy",
    "run_privileged_container", "decommissioned_instances",
)
_ARTIFACT_TYPES = ("DOCKER", "TARBALL", "SERVICE")


def parse(p: Problems, app: str, doc: Document) -> ParsedResource | None:
    m = as_map(p, doc.value, doc.line, "YARN service")
    if m is None:
        return None
    check_keys(p, m, _SERVICE_KEYS, "YARN service", required=("name", "version", "components"))
    name = get_str(p, m, "name", "YARN service")
    get_str(p, m, "version", "YARN service")
    get_int(p, m, "lifetime", "YARN service", minimum=-1)
    get_map(p, m, "configuration", "YARN service")
    ok = _components(p, m.get("components"), m.line_of("components"))
    if name is None or not ok:
        return None
    resource = Resource(id=ResourceId(kind="Service", name=name), app=app, body=m,
                        location=Location(file=p.file, line=m.line))
    return ParsedResource(resource=resource, identity=("yarn", "Service", name))


def _components(p: Problems, value: Any, line: int) -> bool:
    if value is None:
        return False
    if not isinstance(value, YamlSeq) or not value:
        p.add(line, f"YARN service: 'components' must be a non-empty list, not {describe(value)}")
        return False
    ok, names = True, set()
    for index, item in enumerate(value):
        c = as_map(p, item, value.line_of(index), "YARN component")
        if c is None:
            ok = False
            continue
        ok = _component(p, c) and ok
        name = c.get("name")
        if isinstance(name, str) and name in names:
            p.add(c.line_of("name"), f"YARN component: duplicate component name {name!r}")
            ok = False
        names.add(name)
    return ok


def _component(p: Problems, c: YamlMap) -> bool:
    what = "YARN component"
    check_keys(p, c, _COMPONENT_KEYS, what, required=("name", "number_of_containers"))
    before = len(p.items)
    get_str(p, c, "name", what)
    get_int(p, c, "number_of_containers", what, minimum=0)
    get_str(p, c, "launch_command", what)
    artifact = get_map(p, c, "artifact", what)
    if artifact is not None:
        check_keys(p, artifact, ("id", "type", "uri"), "artifact", required=("id",))
        get_str(p, artifact, "id", "artifact")
        get_enum(p, artifact, "type", "artifact", _ARTIFACT_TYPES)
    resource = get_map(p, c, "resource", what)
    if resource is not None:
        check_keys(p, resource, ("cpus", "memory", "profile", "additional"), "resource")
        get_int(p, resource, "cpus", "resource", minimum=1)
        memory = resource.get("memory")
        if memory is not None and not ((isinstance(memory, str) and memory.isdigit())
                                       or (type(memory) is int and memory > 0)):
            p.add(resource.line_of("memory"), f"resource: 'memory' must be megabytes like "
                                              f"\"256\", not {memory!r}")
    return len(p.items) == before
