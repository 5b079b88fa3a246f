"""apps/<app>/app.yaml: an app's target, wave, dependencies, rollout and health.

The result is a `model.App` without resources (the loader adds them) plus the
lines of its dependencies, so graph errors can point at the exact item.
Defaults for prune and rollback come from reconciler.yaml's `defaults`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from backends.kubernetes import options as k8s_options
from reconciler.load.rendered import parse_helm
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
    App,
    BatchSize,
    CheckKind,
    HealthCheck,
    Location,
    RollbackPolicy,
    RolloutSpec,
)

MAX_WAVE = 1_000_000
"""Waves are small numbers; the bound keeps any value storable as SQLite's
64-bit INTEGER in the history."""
APP_KEYS = ("target", "wave", "depends_on", "rollout", "health", "prune", "prune_first",
            "rollback", "timeout", "helm", "kubernetes")
_CHECK_KEYS = ("http", "tcp", "command", "timeout", "retries", "interval")
_PERCENT = re.compile(r"(\d+)%")


@dataclass(frozen=True, kw_only=True)
class AppSpec:
    app: App
    target_line: int
    options_line: int = 0
    dependency_lines: dict[str, int] = field(default_factory=dict)


def parse_app(p: Problems, name: str, doc: Any, line: int, *,
              prune: bool, rollback: RollbackPolicy) -> AppSpec | None:
    m = as_map(p, doc, line, "app.yaml")
    if m is None:
        return None
    check_keys(p, m, APP_KEYS, "app.yaml", required=("target",))
    target = get_str(p, m, "target", "app.yaml") or ""
    wave = get_int(p, m, "wave", "app.yaml", minimum=-MAX_WAVE, maximum=MAX_WAVE)
    deps = get_str_list(p, m, "depends_on", "app.yaml")
    dependency_lines: dict[str, int] = {}
    for index, dep in enumerate(deps or ()):
        if dep in dependency_lines:
            p.add(deps.line_of(index) if deps else line,
                  f"depends_on: {shown(dep)} is listed twice")
        dependency_lines.setdefault(dep, deps.line_of(index) if deps else line)
    choice = get_enum(p, m, "rollback", "app.yaml", ("auto", "none"))
    if "helm" in m:
        # Checked here for its file:line; reconciler.render renders the chart.
        parse_helm(p, m["helm"], m.line_of("helm"), name)
    pruned = bool(_default(get_bool(p, m, "prune", "app.yaml"), prune))
    app = App(
        name=name,
        target=target,
        wave=wave if wave is not None else 0,
        depends_on=tuple(dependency_lines),
        rollout=_rollout(p, m),
        health=_health(p, m),
        prune=pruned,
        prune_first=_prune_first(p, m, pruned),
        rollback=RollbackPolicy(choice) if choice else rollback,
        timeout=_default(get_duration(p, m, "timeout", "app.yaml"), 300.0),
        options=_kubernetes(p, m),
        location=Location(file=p.file, line=m.line),
    )
    return AppSpec(app=app, target_line=m.line_of("target"), dependency_lines=dependency_lines,
                   options_line=m.line_of("kubernetes") if "kubernetes" in m else m.line)


def _kubernetes(p: Problems, m: YamlMap) -> k8s_options.AppOptions | None:
    """The `kubernetes:` block, parsed by the Kubernetes backend's schema."""
    block = get_map(p, m, "kubernetes", "app.yaml")
    return k8s_options.parse_app_options(p, block, "app.yaml: kubernetes") if block else None


def _prune_first(p: Problems, m: YamlMap, prune: bool) -> bool:
    """`prune_first: true` runs the app's deletions before its writes (to free
    space on a full disk, say); it means nothing for an app that never prunes."""
    first = get_bool(p, m, "prune_first", "app.yaml")
    if first and not prune:
        p.add(m.line_of("prune_first"),
              "prune_first: true needs prune: true (this app never deletes anything)")
        return False
    return bool(first)


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _rollout(p: Problems, m: YamlMap) -> RolloutSpec:
    if m.get("rollout") is None:
        return RolloutSpec()
    r = as_map(p, m["rollout"], m.line_of("rollout"), "rollout")
    if r is None:
        return RolloutSpec()
    check_keys(p, r, ("batch", "max_failures"), "rollout")
    batch = BatchSize(percent=100)
    value = r.get("batch")
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        batch = BatchSize(count=value)
    elif match and 1 <= int(match[1]) <= 100:
        batch = BatchSize(percent=int(match[1]))
    elif value is not None:
        p.add(r.line_of("batch"), f"rollout: 'batch' must be a host count >= 1 or a percentage "
                                  f"like \"25%\" (1-100%), not {shown(value)}")
    failures = get_int(p, r, "max_failures", "rollout", minimum=0)
    return RolloutSpec(batch=batch, max_failures=failures or 0)


def _health(p: Problems, m: YamlMap) -> tuple[HealthCheck, ...]:
    value = m.get("health")
    if value is None:
        return ()
    if not isinstance(value, YamlSeq):
        p.add(m.line_of("health"), f"health must be a list of checks, not {describe(value)}")
        return ()
    checks = []
    for index, item in enumerate(value):
        check = _check(p, item, value.line_of(index))
        if check is not None:
            checks.append(check)
    return tuple(checks)


def _check(p: Problems, item: Any, line: int) -> HealthCheck | None:
    c = as_map(p, item, line, "health check")
    if c is None:
        return None
    check_keys(p, c, _CHECK_KEYS, "health check")
    kinds = [k for k in ("http", "tcp", "command") if k in c]
    if len(kinds) != 1:
        p.add(c.line, "health check: needs exactly one of http, tcp or command"
                      + (f", not {' and '.join(kinds)}" if kinds else ""))
        return None
    kind = CheckKind(kinds[0])
    spec = _check_spec(p, c, kind)
    timeout = get_duration(p, c, "timeout", "health check")
    retries = get_int(p, c, "retries", "health check", minimum=0)
    interval = get_duration(p, c, "interval", "health check")
    if spec is None:
        return None
    return HealthCheck(kind=kind, spec=spec, timeout=_default(timeout, 60.0),
                       retries=_default(retries, 3), interval=_default(interval, 1.0),
                       location=Location(file=p.file, line=c.line))


def _check_spec(p: Problems, c: YamlMap, kind: CheckKind) -> dict[str, Any] | None:
    what = f"health check {kind.value}"
    if kind is CheckKind.COMMAND:
        run = get_str(p, c, "command", "health check", required=True)
        return {"run": run} if run else None
    s = as_map(p, c[kind.value], c.line_of(kind.value), what)
    if s is None:
        return None
    if kind is CheckKind.HTTP:
        check_keys(p, s, ("url", "status"), what, required=("url",))
        url = get_str(p, s, "url", what)
        if url is not None and not re.fullmatch(r"https?://\S+", url):
            p.add(s.line_of("url"), f"{what}: 'url' must be an http:// or https:// URL")
            url = None
        status = get_int(p, s, "status", what, minimum=100, maximum=599)
        return {"url": url, "status": _default(status, 200)} if url else None
    check_keys(p, s, ("port", "host"), what, required=("port",))
    port = get_int(p, s, "port", what, minimum=1, maximum=65535)
    host = get_str(p, s, "host", what)
    if port is None:
        return None
    return {"port": port, "host": host} if host else {"port": port}
