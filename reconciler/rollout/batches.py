"""Host batching: which hosts a rollout touches together. Pure.

A rollout applies an app's changes host batch by host batch, so a bad change
reaches at most one batch before the health gate stops it. Batches follow the
target's fleet order (the order hosts are listed in reconciler.yaml), so two
runs of the same plan batch the same way; hosts the fleet order does not know
follow in the order their changes appear. A batch holds every change of its
hosts, in plan order, so kind order inside an app is kept on every host.

Hosts that need only a health check (applied earlier by a run that was killed
before its gate passed) are batched like the others, with no changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.model import AppPlan, BatchSize, Change, DesiredState, Plan, WavePlan


@dataclass(frozen=True, kw_only=True)
class Batch:
    index: int
    hosts: tuple[str, ...]
    changes: tuple[Change, ...]


def hosts_in_order(hosts: Iterable[str], fleet: Sequence[str] = ()) -> tuple[str, ...]:
    """Unique `hosts`, in fleet order first, then in first-seen order."""
    seen = list(dict.fromkeys(hosts))
    rank = {h: i for i, h in enumerate(fleet)}
    known = sorted((h for h in seen if h in rank), key=rank.__getitem__)
    return tuple(known + [h for h in seen if h not in rank])


def split(hosts: Sequence[str], size: BatchSize) -> list[tuple[str, ...]]:
    """`hosts` cut into consecutive batches of `size.of(len(hosts))`."""
    step = size.of(len(hosts))
    return [tuple(hosts[i:i + step]) for i in range(0, len(hosts), step)] if step else []


def batches(
    changes: Sequence[Change],
    size: BatchSize,
    *,
    fleet: Sequence[str] = (),
    verify: Sequence[str] = (),
) -> list[Batch]:
    """The batches of one app: its changed hosts plus `verify` hosts, split by `size`."""
    hosts = hosts_in_order([c.host for c in changes] + list(verify), fleet)
    out = []
    for index, group in enumerate(split(hosts, size)):
        members = set(group)
        out.append(Batch(
            index=index, hosts=group,
            changes=tuple(c for c in changes if c.host in members),
        ))
    return out


def with_verification(
    plan: Plan, desired: DesiredState, verify: Mapping[str, Sequence[str]]
) -> Plan:
    """`plan` plus an empty AppPlan for every app with hosts to verify but no changes.

    Such an app runs through the rollout like any other, so the health gate its
    interrupted predecessor never finished is passed before the next wave.
    """
    planned = {a.app for w in plan.waves for a in w.apps}
    extra: dict[int, list[AppPlan]] = {}
    for name in sorted(verify):
        app = desired.apps.get(name)
        if app is None or name in planned or not verify[name]:
            continue
        extra.setdefault(app.wave, []).append(
            AppPlan(app=name, target=app.target, wave=app.wave, changes=())
        )
    if not extra:
        return plan
    waves = {w.wave: list(w.apps) for w in plan.waves}
    for wave, apps in extra.items():
        waves.setdefault(wave, []).extend(apps)
    return Plan(
        revision=plan.revision,
        waves=tuple(WavePlan(wave=w, apps=tuple(a)) for w, a in sorted(waves.items())),
        prune=plan.prune,
    )
