"""From a running `Daemon` to a `WebApp`: the only module of the web that knows the daemon.

Everything else in `reconciler.web` reads a `StatusSource`; this module builds
one from the daemon's engine (history, mirror, loaded revisions), its worker
state (branch head, drift report, sync windows) and its configuration
(webhook secrets by environment variable name, page credentials), and its
leader election (`Daemon.snapshot().leader`, and `.shards` with shards).

The daemon comes in as a `seam.DaemonView` (a Protocol the daemon satisfies,
checked by mypy where the daemon starts the server), so this module imports
nothing of the daemon's. Invariants: only read-only calls on the daemon, plus
`on_webhook` from a
verified webhook (a push to the tracked branch, or a pull request, which only
makes the daemon fetch: a webhook never chooses what gets deployed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

from prometheus_client import REGISTRY

from reconciler.engine import Engine
from reconciler.errors import ReconcilerError
from reconciler.model import DesiredState
from reconciler.reporters.http import STATS
from reconciler.web import auth
from reconciler.web.live import Layout, RolloutTracker, layout_of
from reconciler.web.metrics import Metrics
from reconciler.web.seam import DaemonView, LeaderView
from reconciler.web.server import WebApp
from reconciler.web.status import CommitView, Drift, HistorySource, Hooks, Leadership
from reconciler.webhooks import Trigger

log = logging.getLogger(__name__)


def daemon_app(daemon: DaemonView, environ: Mapping[str, str] | None = None) -> WebApp:
    env = os.environ if environ is None else environ
    engine = daemon.engine
    tracker = RolloutTracker(lambda sha: layout(engine, sha))
    hooks = replace(
        engine_hooks(engine),
        drift=lambda: _drift(daemon),
        head=lambda: daemon.worker.state.head,
        ready=lambda: bool(daemon.snapshot().ready and not daemon.snapshot().stopping),
        unready=lambda: "stopping" if daemon.snapshot().stopping else daemon.unready_reason(),
        waiting=lambda: dict(daemon.worker.state.waiting),
        leader=lambda: leadership(daemon.snapshot().leader),
        shards=lambda: shard_leases(daemon.snapshot().shards),
    )
    source = HistorySource(repo=engine.mirror.display_url, branch=daemon.config.branch,
                           path=daemon.config.path, history=daemon.history, tracker=tracker,
                           hooks=hooks)
    metrics = Metrics(targets_of=lambda sha: targets_of(engine, sha),
                      drifted=lambda: _drift_counts(daemon), reporter_errors=reporter_errors,
                      include=REGISTRY)
    hooks_config, limits = daemon.config.webhooks, daemon.config.http
    secrets = {
        "github": _env(env, hooks_config.github_secret_env),
        "gitlab": _env(env, hooks_config.gitlab_secret_env),
        "gitea": _env(env, hooks_config.gitea_secret_env),
    }
    return WebApp(source=source, tracker=tracker, metrics=metrics, auth=auth.from_env(env),
                  hook_secrets=secrets, on_webhook=lambda t: on_webhook(daemon, t),
                  redact=daemon.events.secrets.redact,
                  request_deadline=limits.request_deadline,
                  max_connections=limits.max_connections, max_streams=limits.max_streams)


def engine_hooks(engine: Engine) -> Hooks:
    """The facts an Engine alone can answer: commits, desired states, its targets."""
    return Hooks(commit=lambda sha: commit_view(engine, sha),
                 desired=lambda sha: desired_state(engine, sha),
                 targets=engine.selected_targets)


def on_webhook(daemon: DaemonView, trigger: Trigger) -> None:
    """Hand an accepted delivery to the daemon: it alone knows its tracked branch
    and pull-request patterns, so it decides between deploying, planning and
    ignoring (`Daemon.on_webhook`, which never blocks)."""
    daemon.on_webhook(trigger)


def _env(environ: Mapping[str, str], name: str | None) -> str | None:
    return environ.get(name) if name else None


def commit_view(engine: Engine, sha: str) -> CommitView | None:
    try:
        info = engine.mirror.commit_info(sha)
    except (ReconcilerError, KeyError, ValueError):
        return None
    return CommitView(sha=info.sha, author=info.author_name, summary=info.summary,
                      time=info.time.timestamp())


def desired_state(engine: Engine, sha: str) -> DesiredState | None:
    try:
        return engine.load_revision(sha)
    except (ReconcilerError, KeyError, ValueError):
        return None


def targets_of(engine: Engine, sha: str) -> Sequence[str]:
    desired = desired_state(engine, sha)
    return engine.selected_targets(desired) if desired else ()


def layout(engine: Engine, sha: str) -> Layout:
    desired = desired_state(engine, sha)
    if desired is None:
        return ()
    try:
        names = set(engine.selected_targets(desired))
    except ReconcilerError:
        return ()
    return layout_of([(a.name, a.target, a.wave) for a in desired.apps.values()
                      if a.target in names])


def leadership(state: LeaderView | None) -> Leadership | None:
    """The daemon's `LeaderState` (None: election off) as the page's `Leadership`."""
    return None if state is None else _leadership(state)


def shard_leases(states: Sequence[LeaderView]) -> tuple[Leadership, ...]:
    """Every shard's Lease (the daemon's `ShardSet.states()`, by index) for the page."""
    return tuple(_leadership(state) for state in states)


def _leadership(state: LeaderView) -> Leadership:
    return Leadership(is_leader=state.is_leader, holder=state.holder,
                      identity=state.identity, lease=state.lease,
                      transitions=state.transitions, observed=state.observed,
                      error=state.error)


def _drift(daemon: DaemonView) -> Drift | None:
    report = daemon.worker.state.last_drift
    if report is None:
        return None
    return Drift(checked=report.checked, resources=tuple(report.resources))


def _drift_counts(daemon: DaemonView) -> dict[str, float]:
    drift = _drift(daemon)
    counts: dict[str, float] = {}
    for resource in drift.resources if drift else ():
        target = resource.split(":", 1)[0]
        counts[target] = counts.get(target, 0) + 1
    return counts


def reporter_errors() -> dict[str, float]:
    """Failed statuses per reporter: the daemon's publisher plus pull-request plans."""
    from reconciler.daemon.statuses import REPORTER_FAILURES

    counts: dict[str, float] = {k: float(v) for k, v in STATS.snapshot()["failed"].items()}
    for family in REPORTER_FAILURES.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                name = sample.labels.get("reporter", "")
                counts[name] = counts.get(name, 0.0) + sample.value
    return counts
