"""Planning: (desired state, live views) -> ordered waves of changes. Pure.

No I/O and no clock: the same inputs give the same plan, byte for byte, so a
plan shown on a pull request is the plan that a sync of the same live state
would run. Ordering follows one sort key, as gitops-engine does: wave, then
`depends_on` order inside the wave (ties broken by name), then kind order inside
an app (Namespaces and CRDs first), then the order the resources were declared,
then host order. Deletions are set arithmetic, as cli-utils prunes:
owned-and-live minus desired; they run after every wave, in reverse wave order,
and never touch an object the reconciler does not own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler import diff
from reconciler.model import (
    Action,
    App,
    AppPlan,
    Change,
    DesiredState,
    HostKey,
    LiveResource,
    LiveView,
    Plan,
    Resource,
    ResourceId,
    WavePlan,
)

# Kinds that other objects of the same app need to exist first.
_KIND_RANK = {"Namespace": 0, "CustomResourceDefinition": 1, "Directory": 0}


def order_apps(apps: Iterable[App]) -> list[App]:
    """Apps by ascending wave, dependencies first inside a wave, then by name.

    Validation has already refused cycles and dependencies in later waves; a
    dependency outside the given set (or in an earlier wave) is already met.
    """
    by_name = {app.name: app for app in apps}
    ordered: list[App] = []
    for wave in sorted({app.wave for app in by_name.values()}):
        members = sorted(name for name, app in by_name.items() if app.wave == wave)
        ordered.extend(by_name[name] for name in _topological(members, by_name))
    return ordered


def _topological(members: Sequence[str], by_name: Mapping[str, App]) -> list[str]:
    inside = set(members)
    pending = {n: {d for d in by_name[n].depends_on if d in inside} for n in members}
    done: list[str] = []
    while pending:
        ready = sorted(n for n, deps in pending.items() if not deps)
        if not ready:  # a cycle slipped past validation: keep the name order
            ready = sorted(pending)
        for name in ready:
            done.append(name)
            del pending[name]
        for deps in pending.values():
            deps.difference_update(ready)
    return done


def plan(
    desired: DesiredState,
    views: Mapping[str, LiveView],
    *,
    apps: Iterable[str] | None = None,
) -> Plan:
    """Compare desired with live for every app whose target has a view.

    `apps` restricts the plan (rollback plans only the apps it returns); prune
    then only considers objects owned by those apps.
    """
    chosen = set(apps) if apps is not None else None
    wanted = [
        app for app in desired.apps.values()
        if app.target in views and (chosen is None or app.name in chosen)
    ]
    ordered = order_apps(wanted)
    waves: dict[int, list[AppPlan]] = {}
    for app in ordered:
        view = views[app.target]
        error = view.errors.get(app.name, "")
        changes = () if error else _app_changes(app, view)
        if changes or error:
            waves.setdefault(app.wave, []).append(
                AppPlan(app=app.name, target=app.target, wave=app.wave, changes=changes,
                        error=error)
            )
    return Plan(
        revision=desired.revision,
        waves=tuple(WavePlan(wave=w, apps=tuple(a)) for w, a in sorted(waves.items())),
        prune=_prune(desired, views, chosen),
    )


def _resource_order(indexed: tuple[int, Resource]) -> tuple[int, int]:
    index, resource = indexed
    return (_KIND_RANK.get(resource.id.kind, 5), index)


def _app_changes(app: App, view: LiveView) -> tuple[Change, ...]:
    changes: list[Change] = []
    for _, resource in sorted(enumerate(app.resources), key=_resource_order):
        for host in view.hosts:
            change = _compare(app, resource, host, view)
            if change is not None:
                changes.append(change)
    return tuple(changes)


def _compare(app: App, resource: Resource, host: str, view: LiveView) -> Change | None:
    key: HostKey = (host, resource.id)
    want: Mapping[str, Any] = view.desired.get(key, resource.body)
    have = view.live.get(key)
    if have is not None and _same(want, have.state):
        return None
    action = Action.CREATE if have is None else Action.UPDATE
    live_form = have.state if have is not None else None
    return Change(
        id=resource.id, app=app.name, target=app.target, action=action, host=host,
        diff=diff.unified(_label(resource.id, host), live_form, want, secret=resource.secret),
        desired=want, live=live_form, resource=resource,
    )


def _same(want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    return dict(want) == dict(have)


def _label(rid: ResourceId, host: str) -> str:
    return f"{host}/{rid}" if host else str(rid)


def _prune(
    desired: DesiredState, views: Mapping[str, LiveView], chosen: set[str] | None
) -> tuple[AppPlan, ...]:
    by_app: dict[tuple[str, str], list[Change]] = {}
    for target, view in sorted(views.items()):
        keep = _desired_keys(desired, target, view)
        for key in sorted(view.live, key=lambda k: (k[1], k[0])):
            live = view.live[key]
            if not _prunable(desired, live, key, keep, chosen):
                continue
            owner = live.owner_app or ""
            by_app.setdefault((owner, target), []).append(_deletion(owner, target, key, live))
    plans = [
        AppPlan(app=owner, target=target, wave=_wave_of(desired, owner), changes=tuple(changes))
        for (owner, target), changes in by_app.items()
    ]
    # Reverse wave order; an app that no longer exists goes first (it is no
    # longer anyone's dependency), then by name for determinism.
    plans.sort(key=lambda p: (-p.wave, p.app, p.target))
    return tuple(plans)


def _desired_keys(desired: DesiredState, target: str, view: LiveView) -> set[HostKey]:
    return {
        (host, resource.id)
        for app in desired.apps.values() if app.target == target
        for resource in app.resources
        for host in view.hosts
    }


def _prunable(
    desired: DesiredState,
    live: LiveResource,
    key: HostKey,
    keep: set[HostKey],
    chosen: set[str] | None,
) -> bool:
    if live.owner_app is None or key in keep:
        return False
    if chosen is not None and live.owner_app not in chosen:
        return False
    app = desired.apps.get(live.owner_app)
    return app.prune if app is not None else desired.prune_default


def _wave_of(desired: DesiredState, app_name: str) -> int:
    app = desired.apps.get(app_name)
    if app is not None:
        return app.wave
    return max((a.wave for a in desired.apps.values()), default=0) + 1


def _deletion(owner: str, target: str, key: HostKey, live: LiveResource) -> Change:
    host, rid = key
    secret = rid.kind == "Secret" and not rid.group
    return Change(
        id=rid, app=owner, target=target, action=Action.DELETE, host=host,
        diff=diff.unified(_label(rid, host), live.state, None, secret=secret),
        live=live.state,
    )


def to_json(p: Plan) -> dict[str, Any]:
    """The `plan --json` shape of DESIGN.md; prune entries carry "phase": "prune"."""
    def app_json(a: AppPlan) -> dict[str, Any]:
        out: dict[str, Any] = {
            "app": a.app, "target": a.target,
            "changes": [
                {"resource": str(c.id), "host": c.host, "action": c.action.value, "diff": c.diff}
                for c in a.changes
            ],
        }
        if a.error:
            out["error"] = a.error
        return out
    waves: list[dict[str, Any]] = [
        {"wave": w.wave, "phase": "apply", "apps": [app_json(a) for a in w.apps]}
        for w in p.waves
    ]
    waves.extend(
        {"wave": a.wave, "phase": "prune", "apps": [app_json(a)]} for a in p.prune
    )
    return {"revision": p.revision, "waves": waves, "summary": p.summary()}


def summary_line(p: Plan) -> str:
    """"2 to create, 1 to change, 0 to delete", as pull-request statuses say it."""
    s = p.summary()
    return f"{s['create']} to create, {s['update']} to change, {s['delete']} to delete"
