"""YARN resource documents: one service specification each, as in the YARN
Services REST API (`POST /app/v1/services`).

Why validate here what the ResourceManager validates again: a spec it rejects
would otherwise be found only in the middle of a rollout, after earlier waves
were applied, with an HTTP 400 and no file or line. So the rules of the API
definition (YARN-Simplified-V1-API-Layer-For-Services.yaml) and of the
server's own check (ServiceApiUtil.validateAndResolveService) are applied to
every document, each violation reported at its line:

- service: `name` is a lowercase DNS label (`[a-z][a-z0-9-]*`, at most 63
  characters, no `_`), `version` a non-empty string, `components` non-empty;
- component: `name` as the service's, at most 44 characters (what Registry
  DNS leaves after the instance id), unique, not the service's name;
  `number_of_containers` an integer >= 0; a `resource` with `cpus` >= 1 and
  `memory` in MB (here or at service level); a `launch_command` unless the
  artifact is DOCKER; `dependencies` name other components, without a cycle;
  placement `target_tags` name the component itself;
- artifact `{id, type: DOCKER|TARBALL|SERVICE, uri}`, readiness check, placement
  policy, configuration and restart policy: closed key sets and enums.

Every key set is closed, so a typo such as `number_of_container` is caught
with a did-you-mean instead of being dropped by the server. Components whose
artifact is of type SERVICE are replaced by another service's components on
the server, so their resource and launch command are not required here.
"""

from __future__ import annotations

import re

from reconciler.load.graph import find_cycles
from reconciler.load.resources import ParsedResource
from reconciler.load.schema import (
    Problems,
    as_map,
    check_keys,
    describe,
    get_bool,
    get_enum,
    get_int,
    get_map,
    get_str,
    get_str_list,
)
from reconciler.load.yamlio import Document, YamlMap, YamlSeq, shown
from reconciler.model import Location, Resource, ResourceId

_SERVICE_KEYS = (
    "name", "version", "description", "components", "lifetime", "queue", "configuration",
    "artifact", "resource", "quicklinks", "dependencies", "kerberos_principal",
    "docker_client_config", "state",
)
_COMPONENT_KEYS = (
    "name", "number_of_containers", "artifact", "resource", "launch_command", "configuration",
    "dependencies", "readiness_check", "placement_policy", "restart_policy",
    "run_privileged_container", "quicklinks", "decommissioned_instances",
)
_ARTIFACT_TYPES = ("DOCKER", "TARBALL", "SERVICE")
_CONFIG_FILE_TYPES = ("XML", "PROPERTIES", "JSON", "YAML", "TEMPLATE", "HADOOP_XML",
                      "STATIC", "ARCHIVE")
_CONSTRAINT_KEYS = ("name", "type", "scope", "target_tags", "node_attributes",
                    "node_partitions", "min_cardinality", "max_cardinality")
_UNITS = ("", "p", "n", "u", "m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi")
_NAME = re.compile(r"[a-z][a-z0-9-]*")
_SERVICE_NAME_MAX = 63
"""Registry DNS makes the service name a DNS label."""
_COMPONENT_NAME_MAX = 63 - len(str(2**63 - 1))
"""ServiceApiUtil leaves room for the instance id of a Registry DNS label: 44."""


def parse(p: Problems, app: str, doc: Document) -> ParsedResource | None:
    m = as_map(p, doc.value, doc.line, "YARN service")
    if m is None:
        return None
    what = "YARN service"
    check_keys(p, m, _SERVICE_KEYS, what, required=("name", "version", "components"))
    name = _name(p, m, what, _SERVICE_NAME_MAX)
    _version(p, m)
    for key in ("description", "queue", "docker_client_config"):
        get_str(p, m, key, what)
    get_int(p, m, "lifetime", what, minimum=-1)
    get_enum(p, m, "state", what, ("STARTED", "STOPPED"))
    get_str_list(p, m, "dependencies", what)
    _configuration(p, m, what)
    _string_map(p, m, "quicklinks", what)
    _kerberos(p, m)
    service = _Defaults(artifact=_artifact(p, m, what), resource=_resource(p, m, what))
    _components(p, m, name, service)
    if name is None:
        return None
    resource = Resource(id=ResourceId(kind="Service", name=name), app=app, body=m,
                        location=Location(file=p.file, line=m.line))
    return ParsedResource(resource=resource, identity=("yarn", "Service", name))


class _Defaults:
    """What the service level gives components that leave it out (ServiceApiUtil
    fills in the artifact, unless it is of type SERVICE, and the resource)."""

    def __init__(self, *, artifact: YamlMap | None, resource: YamlMap | None) -> None:
        self.artifact = artifact
        self.resource = resource


def _name(p: Problems, m: YamlMap, what: str, limit: int) -> str | None:
    name = get_str(p, m, "name", what)
    if name is None:
        return None
    if "_" in name:
        problem = "cannot contain '_' (DNS host names do not allow it; use '-')"
    elif not _NAME.fullmatch(name):
        problem = "must be lowercase letters, digits and '-', starting with a letter"
    elif len(name) > limit:
        problem = f"must be at most {limit} characters, not {len(name)}"
    else:
        return name
    p.add(m.line_of("name"), f"{what}: name {shown(name)} {problem}")
    return None


def _version(p: Problems, m: YamlMap) -> None:
    value = m.get("version")
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An unquoted 1.10 is the number 1.1: the version YARN sees would differ.
        p.add(m.line_of("version"), f"YARN service: 'version' must be a string; "
                                    f"quote it: version: \"{value}\"")
    elif "version" in m:
        get_str(p, m, "version", "YARN service", required=True)


def _components(p: Problems, m: YamlMap, service: str | None, defaults: _Defaults) -> None:
    value = m.get("components")
    if "components" not in m:
        return  # reported as required
    if not isinstance(value, YamlSeq) or not value:
        shown = "an empty list" if isinstance(value, YamlSeq) else describe(value)
        p.add(m.line_of("components"),
              f"YARN service: 'components' must be a non-empty list, not {shown}")
        return
    lines: dict[str, int] = {}
    edges: dict[str, tuple[str, ...]] = {}
    for index, item in enumerate(value):
        c = as_map(p, item, value.line_of(index), "YARN component")
        if c is None:
            continue
        name = _component(p, c, defaults)
        if name is None:
            continue
        if name == service:
            p.add(c.line_of("name"), f"YARN component: name {name!r} is the service's name; "
                                     "YARN requires them to differ")
        if name in lines:
            p.add(c.line_of("name"), f"YARN component: duplicate component name {name!r} "
                                     f"(first at line {lines[name]})")
            continue
        lines[name] = c.line_of("name")
        deps = c.get("dependencies")
        edges[name] = tuple(d for d in deps if isinstance(d, str)) if isinstance(
            deps, YamlSeq) else ()
    _dependencies(p, value, lines, edges)


def _dependencies(p: Problems, items: YamlSeq, lines: dict[str, int],
                  edges: dict[str, tuple[str, ...]]) -> None:
    """Component dependencies name components of this service and form a DAG."""
    for item in items:
        if not isinstance(item, YamlMap) or not isinstance(item.get("dependencies"), YamlSeq):
            continue
        deps: YamlSeq = item["dependencies"]
        for index, dep in enumerate(deps):
            if isinstance(dep, str) and dep not in lines:
                p.add(deps.line_of(index), f"YARN component: dependency {shown(dep)} is not "
                                           "a component of this service")
    for cycle in find_cycles({n: tuple(d for d in e if d in lines) for n, e in edges.items()}):
        p.add(lines[cycle[0]], "YARN component: dependency cycle " + " -> ".join(cycle))


def _component(p: Problems, c: YamlMap, defaults: _Defaults) -> str | None:
    """Check one component; its name when that name is valid."""
    what = "YARN component"
    check_keys(p, c, _COMPONENT_KEYS, what, required=("name", "number_of_containers"))
    name = _name(p, c, what, _COMPONENT_NAME_MAX)
    get_int(p, c, "number_of_containers", what, minimum=0)
    get_str(p, c, "launch_command", what)
    get_enum(p, c, "restart_policy", what, ("ALWAYS", "ON_FAILURE", "NEVER"))
    get_bool(p, c, "run_privileged_container", what)
    get_str_list(p, c, "dependencies", what)
    get_str_list(p, c, "quicklinks", what)
    get_str_list(p, c, "decommissioned_instances", what)
    _configuration(p, c, what)
    _readiness_check(p, c)
    _placement_policy(p, c, name)
    _runnable(p, c, defaults, _artifact(p, c, what), _resource(p, c, what))
    return name


def _runnable(p: Problems, c: YamlMap, defaults: _Defaults, artifact: YamlMap | None,
              resource: YamlMap | None) -> None:
    """What a component needs to start, once the service level has filled in."""
    what = "YARN component"
    inherit = defaults.artifact is not None and _type_of(defaults.artifact) != "SERVICE"
    if "artifact" not in c and inherit:
        artifact = defaults.artifact
    kind = _type_of(artifact) if artifact is not None else None
    if kind == "SERVICE":
        return  # replaced by the other service's components on the server
    if "launch_command" not in c and kind != "DOCKER":
        p.add(c.line, f"{what}: 'launch_command' is required unless the artifact is DOCKER")
    if "resource" not in c:
        resource = defaults.resource
        if resource is None:
            p.add(c.line, f"{what}: 'resource' (cpus and memory) is required here or at "
                          "the service level")
    for key in ("cpus", "memory"):
        if resource is not None and key not in resource:
            p.add(resource.line, f"resource: {key!r} is required")


def _type_of(artifact: YamlMap) -> str:
    value = artifact.get("type")
    return value if isinstance(value, str) else "DOCKER"  # the API's default


def _artifact(p: Problems, m: YamlMap, what: str) -> YamlMap | None:
    artifact = get_map(p, m, "artifact", what)
    if artifact is None:
        return None
    check_keys(p, artifact, ("id", "type", "uri"), "artifact", required=("id",))
    if "id" in artifact:
        get_str(p, artifact, "id", "artifact", required=True)
    get_enum(p, artifact, "type", "artifact", _ARTIFACT_TYPES)
    get_str(p, artifact, "uri", "artifact")
    return artifact


def _resource(p: Problems, m: YamlMap, what: str) -> YamlMap | None:
    resource = get_map(p, m, "resource", what)
    if resource is None:
        return None
    check_keys(p, resource, ("cpus", "memory", "profile", "additional"), "resource")
    if "profile" in resource:
        # ServiceApiUtil refuses profiles ("not supported yet"), alone or with cpus/memory.
        p.add(resource.line_of("profile"), "resource: 'profile' is not supported by YARN "
                                           "services; give cpus and memory")
    get_int(p, resource, "cpus", "resource", minimum=1)
    memory = resource.get("memory")
    # The API types memory as a string of megabytes; a YAML number is sent as its digits.
    digits = str(memory) if type(memory) is int else memory
    if "memory" in resource and not (isinstance(digits, str) and digits.isascii()
                                     and digits.isdigit() and int(digits) > 0):
        p.add(resource.line_of("memory"), f"resource: 'memory' must be megabytes like "
                                          f"\"256\", not {shown(memory)}")
    _additional(p, resource)
    return resource


def _additional(p: Problems, resource: YamlMap) -> None:
    extra = get_map(p, resource, "additional", "resource")
    for name, info in (extra or {}).items():
        what = f"resource additional {name!r}"
        item = as_map(p, info, extra.line_of(name) if extra else resource.line, what)
        if item is None:
            continue
        check_keys(p, item, ("value", "unit"), what, required=("value",))
        get_int(p, item, "value", what, minimum=0)
        get_enum(p, item, "unit", what, _UNITS)


def _configuration(p: Problems, m: YamlMap, what: str) -> None:
    conf = get_map(p, m, "configuration", what)
    if conf is None:
        return
    check_keys(p, conf, ("properties", "env", "files"), "configuration")
    _string_map(p, conf, "properties", "configuration")
    _string_map(p, conf, "env", "configuration")
    files = conf.get("files")
    if files is None:
        return
    if not isinstance(files, YamlSeq):
        p.add(conf.line_of("files"), f"configuration: 'files' must be a list, "
                                     f"not {describe(files)}")
        return
    for index, item in enumerate(files):
        f = as_map(p, item, files.line_of(index), "configuration file")
        if f is None:
            continue
        check_keys(p, f, ("type", "dest_file", "src_file", "properties"), "configuration file",
                   required=("type", "dest_file"))
        get_enum(p, f, "type", "configuration file", _CONFIG_FILE_TYPES)
        get_str(p, f, "dest_file", "configuration file")
        get_str(p, f, "src_file", "configuration file")
        _string_map(p, f, "properties", "configuration file")


def _string_map(p: Problems, m: YamlMap, key: str, what: str) -> None:
    """A map of string values. Numbers are accepted (sent as their text);
    booleans are not, since `true` would reach YARN as Python's `True`."""
    values = get_map(p, m, key, what)
    for name, value in (values or {}).items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            line = values.line_of(name) if values is not None else m.line
            hint = f"; quote it: \"{str(value).lower()}\"" if isinstance(value, bool) else ""
            p.add(line, f"{what}: {key} {name!r} must be a string, not {describe(value)}{hint}")


def _kerberos(p: Problems, m: YamlMap) -> None:
    principal = get_map(p, m, "kerberos_principal", "YARN service")
    if principal is not None:
        check_keys(p, principal, ("principal_name", "keytab"), "kerberos_principal")
        get_str(p, principal, "principal_name", "kerberos_principal")
        get_str(p, principal, "keytab", "kerberos_principal")


def _readiness_check(p: Problems, c: YamlMap) -> None:
    check = get_map(p, c, "readiness_check", "YARN component")
    if check is None:
        return
    check_keys(p, check, ("type", "properties", "artifact"), "readiness_check",
               required=("type",))
    get_enum(p, check, "type", "readiness_check", ("DEFAULT", "HTTP", "PORT"))
    _string_map(p, check, "properties", "readiness_check")
    _artifact(p, check, "readiness_check")


def _placement_policy(p: Problems, c: YamlMap, component: str | None) -> None:
    policy = get_map(p, c, "placement_policy", "YARN component")
    if policy is None:
        return
    check_keys(p, policy, ("constraints",), "placement_policy", required=("constraints",))
    constraints = policy.get("constraints")
    if "constraints" in policy and not isinstance(constraints, YamlSeq):
        p.add(policy.line_of("constraints"), "placement_policy: 'constraints' must be a list, "
                                             f"not {describe(constraints)}")
        return
    for index, item in enumerate(constraints or ()):
        line = constraints.line_of(index) if constraints is not None else policy.line
        constraint = as_map(p, item, line, "placement constraint")
        if constraint is not None:
            _constraint(p, constraint, component)


def _constraint(p: Problems, m: YamlMap, component: str | None) -> None:
    what = "placement constraint"
    check_keys(p, m, _CONSTRAINT_KEYS, what, required=("type", "scope", "target_tags"))
    get_str(p, m, "name", what)
    get_enum(p, m, "type", what, ("AFFINITY", "ANTI_AFFINITY", "AFFINITY_WITH_CARDINALITY"))
    get_enum(p, m, "scope", what, ("NODE", "RACK"))
    get_int(p, m, "min_cardinality", what, minimum=0)
    get_int(p, m, "max_cardinality", what, minimum=0)
    get_str_list(p, m, "node_partitions", what)
    tags = get_str_list(p, m, "target_tags", what)
    if tags is not None and not tags:
        p.add(m.line_of("target_tags"), f"{what}: 'target_tags' must not be empty")
    for index, tag in enumerate(tags or ()):
        if component is not None and tag != component:
            # ServiceApiUtil.validatePlacementPolicy allows only the component itself.
            p.add(tags.line_of(index) if tags is not None else m.line,
                  f"{what}: target tag {shown(tag)} must be the component's own name "
                  f"{component!r}")
    attributes = get_map(p, m, "node_attributes", what)
    for key, values in (attributes or {}).items():
        if not isinstance(values, YamlSeq) or not all(isinstance(v, str) for v in values):
            line = attributes.line_of(key) if attributes is not None else m.line
            p.add(line, f"{what}: node_attributes {key!r} must be a list of strings")

