"""reconciler.yaml: the targets, the defaults and the sync windows.

Each backend has its own closed set of target keys; anything else is an error
with a did-you-mean, and keys that look like inline secrets are refused with a
message that says to name a file or an environment variable instead. Target
options reach the backends type-checked, durations as seconds, with only the
defaults the design names filled in (vm transport ssh and root "/",
kubernetes namespace "default"); each backend owns its other defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.load.k8s_options import TARGET_OPTIONS as K8S_SYNC_OPTIONS
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
from reconciler.load.yamlio import YamlMap, YamlSeq, shown
from reconciler.model import (
    BackendKind,
    Location,
    RetryPolicy,
    RollbackPolicy,
    SyncWindow,
    Target,
)

CONFIG_FILE = "reconciler.yaml"
API_VERSION = "reconciler/v1"

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?)(:\d{1,5})?")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = (
    (), (), (),
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
)


@dataclass(frozen=True, kw_only=True)
class Config:
    targets: dict[str, Target] = field(default_factory=dict)
    prune: bool = True
    rollback: RollbackPolicy = RollbackPolicy.AUTO
    sync_windows: tuple[SyncWindow, ...] = ()
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
    check_keys(p, root, ("apiVersion", "defaults", "targets", "sync_windows"), CONFIG_FILE,
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
    return Config(targets=targets, prune=prune, rollback=rollback, sync_windows=windows,
                  retry=retry, parsed=True, declared=frozenset(target_map or ()))


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
    kind = BackendKind(backend)
    extra = ("backend", "transport", "hosts") if kind is BackendKind.VM else ("backend",)
    check_keys(p, m, (*extra, *_OPTION_TYPES[kind]), what)
    options = {BackendKind.VM: _vm_options, BackendKind.KUBERNETES: _k8s_options,
               BackendKind.YARN: _yarn_options}[kind](p, m, what)
    return Target(name=name, backend=kind, options=options,
                  location=Location(file=CONFIG_FILE, line=line))


_Getter = Callable[[Problems, YamlMap, str, str], Any]


def _str(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_str(p, m, key, what, required=True)


def _port(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_int(p, m, key, what, minimum=1, maximum=65535)


def _positive(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_int(p, m, key, what, minimum=1)


def _policy(p: Problems, m: YamlMap, key: str, what: str) -> Any:
    return get_enum(p, m, key, what, ("Background", "Foreground", "Orphan"))


# Values are type-checked here; only the defaults the design names are filled in
# (vm transport and root, kubernetes namespace): the backends own the rest.
_OPTION_TYPES: dict[BackendKind, dict[str, _Getter]] = {
    BackendKind.VM: {
        "user": _str, "identity_file": _str, "known_hosts": _str, "root": _str,
        "port": _port, "sudo": get_bool, "sudo_command": _str,
        "connect_timeout": get_duration, "parallel": _positive,
    },
    BackendKind.KUBERNETES: {
        "kubeconfig": _str, "context": _str, "in_cluster": get_bool, "namespace": _str,
        "force_conflicts": get_bool, "propagation_policy": _policy, "crd_timeout": get_duration,
        "delete_timeout": get_duration, "namespaces": get_str_list, **K8S_SYNC_OPTIONS,
    },
    BackendKind.YARN: {
        "url": _str, "user": _str, "token_file": _str, "token_env": _str,
        "timeout": get_duration, "poll_interval": get_duration, "settle_timeout": get_duration,
        "min_ready": get_duration,
    },
}


def _typed(p: Problems, m: YamlMap, what: str, kind: BackendKind) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, getter in _OPTION_TYPES[kind].items():
        if key in m:
            value = getter(p, m, key, what)
            if value is not None:
                options[key] = value
    return options


def _vm_options(p: Problems, m: YamlMap, what: str) -> dict[str, Any]:
    options = _typed(p, m, what, BackendKind.VM)
    transport = get_enum(p, m, "transport", what, ("ssh", "local")) or "ssh"
    options["transport"] = transport
    options.setdefault("root", "/")
    hosts = get_str_list(p, m, "hosts", what)
    if hosts is not None:
        for index, host in enumerate(hosts):
            if not host_ok(host):
                p.add(hosts.line_of(index),
                      f"{what}: host {shown(host)} is not 'host' or 'host:port'")
        if len(set(hosts)) != len(hosts):
            p.add(m.line_of("hosts"), f"{what}: 'hosts' lists a host twice")
        options["hosts"] = tuple(hosts)
    if transport == "ssh" and not hosts:
        p.add(m.line_of("hosts"), f"{what}: transport ssh needs a non-empty 'hosts' list")
    for key in ("identity_file", "known_hosts"):
        # The backend refuses to open without them (host keys are never accepted
        # blindly); found here, that is a file:line before any wave runs.
        if transport == "ssh" and key not in m:
            p.add(m.line, f"{what}: transport ssh needs {key!r}")
    if transport == "local" and "hosts" in m:
        p.add(m.line_of("hosts"), f"{what}: 'hosts' applies to transport ssh only")
    return options


def host_ok(host: str) -> bool:
    match = _HOST.fullmatch(host)
    return match is not None and (not match[3] or 1 <= int(match[3][1:]) <= 65535)


def _k8s_options(p: Problems, m: YamlMap, what: str) -> dict[str, Any]:
    options = _typed(p, m, what, BackendKind.KUBERNETES)
    options.setdefault("namespace", "default")
    if "namespaces" in options:
        if not options["namespaces"]:
            p.add(m.line_of("namespaces"), f"{what}: 'namespaces' must not be empty")
        options["namespaces"] = tuple(options["namespaces"])
    if options.get("in_cluster") and "kubeconfig" in options:
        p.add(m.line_of("in_cluster"), f"{what}: 'in_cluster' and 'kubeconfig' exclude each other")
    return options


def _yarn_options(p: Problems, m: YamlMap, what: str) -> dict[str, Any]:
    options = _typed(p, m, what, BackendKind.YARN)
    url = options.get("url")
    if "url" not in m:
        p.add(m.line, f"{what}: 'url' is required")
    elif url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        p.add(m.line_of("url"), f"{what}: 'url' must be an http:// or https:// URL")
    if "token_file" in options and "token_env" in options:
        p.add(m.line_of("token_env"), f"{what}: 'token_file' and 'token_env' exclude each other")
    return options


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


def cron_problem(schedule: str) -> str:
    """Why a 5-field cron expression is invalid, or "" when it is valid."""
    fields = schedule.split()
    if len(fields) != 5:
        return f"a cron schedule has 5 fields (minute hour day month weekday), not {len(fields)}"
    for index, (text, (low, high)) in enumerate(zip(fields, _CRON_RANGES, strict=True)):
        for part in text.split(","):
            if not _cron_part_ok(part, low, high, _CRON_NAMES[index]):
                return f"field {index + 1} ({shown(text)}) is not valid; values are {low}-{high}"
    return ""


def _cron_part_ok(part: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    base, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return False
    if base == "*":
        return True
    bounds = base.split("-")
    if len(bounds) > 2:
        return False
    values = []
    for bound in bounds:
        if bound.lower() in names:
            values.append(names.index(bound.lower()) + (1 if low == 1 else 0))
        elif bound.isdigit():
            values.append(int(bound))
        else:
            return False
    return all(low <= v <= high for v in values) and values == sorted(values)
