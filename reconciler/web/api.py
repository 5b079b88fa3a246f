"""The JSON API: the same facts as the pages, as plain dicts. Pure.

`/api/v1/*` returns what these functions build; field names are part of the
API (v1): add fields, never rename them. Like the pages, nothing here carries
a resource body: plan diffs were redacted by `reconciler.diff` before they
were stored, and deploy events carry only the engine's own messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from reconciler.events import Event
from reconciler.history import DeployRecord
from reconciler.web.live import RolloutState
from reconciler.web.status import CommitView, Leadership, Overview


def dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode()


def status(overview: Overview, rollout: RolloutState | None) -> dict[str, Any]:
    return {
        "repo": overview.repo, "branch": overview.branch, "path": overview.path,
        "head": overview.head, "ready": overview.ready, "waiting": list(overview.waiting),
        "targets": [
            {"name": t.name, "backend": t.backend, "revisions": list(t.revisions),
             "drifted": list(t.drifted), "drift_checked": t.drift_checked}
            for t in overview.targets
        ],
        "rollout": rollout_json(rollout),
        "leader": leader_json(overview.leader),
        "shards": shards_json(overview.shards),
        "history_unavailable": overview.history_unavailable,
    }


def leader_json(leader: Leadership | None) -> dict[str, Any] | None:
    """None when leader election is off; `holder` "" when the Lease was released
    and None when it has not been read."""
    return None if leader is None else asdict(leader)


def shards_json(shards: Sequence[Leadership]) -> list[dict[str, Any]] | None:
    """None without shards; else one Lease per shard, `index` first, `is_leader`
    true for the shards this replica holds."""
    return [{"index": i, **asdict(lease)} for i, lease in enumerate(shards)] or None


def rollout_json(rollout: RolloutState | None) -> dict[str, Any] | None:
    if rollout is None:
        return None
    n, m = rollout.position()
    out = asdict(rollout)
    out["position"] = {"wave": n, "of": m}
    return out


def commit_json(commit: CommitView | None) -> dict[str, Any] | None:
    return None if commit is None else asdict(commit)


def deploy_json(d: DeployRecord, commit: CommitView | None, *, events: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id, "revision": d.revision, "trigger": d.trigger, "started": d.started,
        "finished": d.finished,
        "duration": None if d.finished is None else round(d.finished - d.started, 3),
        "result": d.result, "message": d.message, "rolled_back": d.rolled_back,
        "summary": d.summary, "commit": commit_json(commit),
        "apps": [asdict(a) for a in d.apps],
    }
    if events:
        out["events"] = [event_json(ev) for ev in d.events]
    return out


def deploys(records: Sequence[DeployRecord],
            commits: Mapping[str, CommitView]) -> dict[str, Any]:
    return {"deploys": [deploy_json(d, commits.get(d.revision), events=False)
                        for d in records]}


def event_json(ev: Event) -> dict[str, Any]:
    out = asdict(ev)
    out["kind"] = ev.kind.value
    out["hosts"] = list(ev.hosts)
    return out
