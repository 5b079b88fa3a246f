"""reconciler.yaml: the targets, the defaults and the sync windows.

Each backend owns the schema of its target options (`backends.<name>.options`:
a typed `Options` and a pure `parse_options`), and this module calls it, so the
options are parsed once: the target carries the typed value to the backend,
which uses it as it is. Unknown keys are errors with a did-you-mean, and keys
that look like inline secrets are refused with a message that says to name a
file or an environment variable instead. Schedules are checked by the cron
parser the daemon runs them with (`reconciler.options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from backends.kubernetes import options as k8s_options
from backends.vm import options as vm_options
from backends.yarn import options as yarn_options
from reconciler.load.schema import (
    Problems,
    as_map,
    check_keys,
    describe,
    get_bool,
    get_duration,
    get_enum,
    get_int,
    get_map,
    get_str,
    get_str_list,
)
from reconciler.load.tenants import Tenant, parse_tenants
from reconciler.load.yamlio import YamlMap, YamlSeq, shown
from reconciler.model import (
    BackendKind,
    Location,
    RetryPolicy,
    RollbackPolicy,
    SyncWindow,
    Target,
)
from reconciler.options import cron_problem

CONFIG_FILE = "reconciler.yaml"
API_VERSION = "reconciler/v1"



@dataclass(frozen=True, kw_only=True)
class Config:
    targets: dict[str, Target] = field(default_factory=dict)
    prune: bool = True
    rollback: RollbackPolicy = RollbackPolicy.AUTO
    sync_windows: tuple[SyncWindow, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    parsed: bool = False
    """False when reconciler.yaml could not be read: then no app is told that
    its target is unknown, since nothing is known."""
    declared: frozenset[str] = frozenset()
    """Every target name in the file, valid or not, so apps naming an invalid
    target are not also told the target is unknown."""


def parse_config(p: Problems, doc: Any, line: int) -> Config:
    root = as_map(p, doc, line, CONFIG_FILE)
    if root is None:
        return Config()
    check_keys(p, root, ("apiVersion", "defaults", "targets", "sync_windows", "tenants"),
               CONFIG_FILE,
               required=("apiVersion", "targets"))
    version = root.get("apiVersion")
    if "apiVersion" in root and version != API_VERSION:
        p.add(root.line_of("apiVersion"),
              f"apiVersion must be {API_VERSION!r}, not {shown(version)}")
    prune, rollback, retry = True, RollbackPolicy.AUTO, RetryPolicy()
    defaults = get_map(p, root, "defaults", CONFIG_FILE)
    if defaults is not None:
        check_keys(p, defaults, ("prune", "rollback", "retry"), "defaults")
        prune = _or(get_bool(p, defaults, "prune", "defaults"), True)
        choice = get_enum(p, defaults, "rollback", "defaults", ("auto", "none"))
        rollback = RollbackPolicy(choice) if choice else RollbackPolicy.AUTO
        retry = _retry(p, defaults)
    targets: dict[str, Target] = {}
    target_map = get_map(p, root, "targets", CONFIG_FILE)
    for name, spec in (target_map or {}).items():
        target = parse_target(p, name, spec, target_map.line_of(name) if target_map else line)
        if target is not None:
            targets[name] = target
    windows = _parse_windows(p, root, set(target_map or ()))
    tenants = parse_tenants(p, root, target_map or ())
    return Config(targets=targets, prune=prune, rollback=rollback, sync_windows=windows,
                  tenants=tenants, retry=retry, parsed=True, declared=frozenset(target_map or ()))


MAX_RETRIES = 100
"""A bound on `defaults.retry.limit`: a retry policy never becomes an endless loop."""


def _retry(p: Problems, defaults: YamlMap) -> RetryPolicy:
    """defaults.retry: {limit, backoff: {duration, factor, max_duration}}, as Argo CD's."""
    r = get_map(p, defaults, "retry", "defaults")
    if r is None:
        return RetryPolicy()
    what = "defaults: retry"
    check_keys(p, r, ("limit", "backoff"), what, required=("limit",))
    limit = get_int(p, r, "limit", what, minimum=0, maximum=MAX_RETRIES)
    policy = RetryPolicy(limit=limit or 0)
    b = get_map(p, r, "backoff", what)
    if b is None:
        return policy
    check_keys(p, b, ("duration", "factor", "max_duration"), f"{what}: backoff")
    duration = get_duration(p, b, "duration", f"{what}: backoff")
    factor = get_int(p, b, "factor", f"{what}: backoff", minimum=1, maximum=10)
    most = get_duration(p, b, "max_duration", f"{what}: backoff")
    return RetryPolicy(limit=policy.limit, backoff=_or(duration, policy.backoff),
                       factor=float(_or(factor, policy.factor)),
                       max_backoff=_or(most, policy.max_backoff))


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def parse_target(p: Problems, name: str, spec: Any, line: int) -> Target | None:
    what = f"target {name!r}"
    m = as_map(p, spec, line, what)
    if m is None:
        return None
    kinds = [k.value for k in BackendKind]
    backend = get_enum(p, m, "backend", what, kinds)
    if "backend" not in m:
        p.add(m.line, f"{what}: 'backend' is required ({', '.join(kinds)})")
    if backend is None:
        return None
    options = _SCHEMAS[BackendKind(backend)].parse_options(p, m, what)
    # With problems, the target is still known (its apps are checked against its
    # backend); the load fails, so these empty options never reach a backend.
    return Target(name=name, backend=BackendKind(backend),
                  options=options if options is not None else {},
                  location=Location(file=CONFIG_FILE, line=line))


class _Schema(Protocol):
    KEYS: tuple[str, ...]

    def parse_options(self, p: Problems, m: YamlMap, what: str, /) -> object | None: ...


# Each backend owns its options' schema; these modules import nothing heavy.
_SCHEMAS: dict[BackendKind, _Schema] = {
    BackendKind.VM: vm_options, BackendKind.KUBERNETES: k8s_options,
    BackendKind.YARN: yarn_options,
}


def option_keys(kind: BackendKind) -> tuple[str, ...]:
    """Every key a target of `kind` may have besides `backend`."""
    return _SCHEMAS[kind].KEYS


def _parse_windows(p: Problems, root: YamlMap, known: set[str]) -> tuple[SyncWindow, ...]:
    value = root.get("sync_windows")
    if value is None:
        return ()
    if not isinstance(value, YamlSeq):
        p.add(root.line_of("sync_windows"), f"sync_windows must be a list, not {describe(value)}")
        return ()
    windows = []
    for index, item in enumerate(value):
        window = _parse_window(p, item, value.line_of(index), known)
        if window is not None:
            windows.append(window)
    return tuple(windows)


def _parse_window(p: Problems, item: Any, line: int, known: set[str]) -> SyncWindow | None:
    what = "sync window"
    m = as_map(p, item, line, what)
    if m is None:
        return None
    check_keys(p, m, ("schedule", "duration", "kind", "targets"), what,
               required=("schedule", "duration"))
    schedule = get_str(p, m, "schedule", what)
    if schedule is not None and (problem := cron_problem(schedule)):
        p.add(m.line_of("schedule"), f"{what}: schedule {shown(schedule)}: {problem}")
        schedule = None
    duration = get_duration(p, m, "duration", what)
    kind = _or(get_enum(p, m, "kind", what, ("deny", "allow")), "deny")
    targets = get_str_list(p, m, "targets", what)
    for index, name in enumerate(targets or ()):
        if name not in known:
            p.add(targets.line_of(index) if targets else line,  # always set here
                  f"{what}: unknown target {shown(name)}")
    if schedule is None or duration is None:
        return None
    return SyncWindow(schedule=schedule, duration=duration, kind=kind,
                      targets=tuple(targets or ()), location=Location(file=CONFIG_FILE, line=line))
