"""What the status page may know, behind a small read-only protocol.

The page and the JSON API read facts through `StatusSource` and nothing else:
the tracked repo, branch and path; which replica leads (leader election); each
target with the revision live on it and what drifted; the rollout in progress;
history queries; stored pull-request plans. `HistorySource` implements it
over a real `History` (SQLite), a `RolloutTracker` and a few callables, so the
daemon wires it to its engine
(`reconciler.web.server.daemon_source`) and tests wire it to a bare history
with events fed by hand.

Invariants:
- Read-only: no method here writes to the history, the mirror or any backend.
- Nothing returned carries a resource body: only names, revisions, statuses,
  the engine's messages and diffs that `reconciler.diff` already redacted.
- Every callable may fail (a commit not fetched yet, an invalid revision): the
  source degrades to "unknown" instead of failing the page. A history that
  cannot be read (PostgreSQL down) gives its last answers, and the overview
  says since when (`history.stale.StaleReads`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler import pulls
from reconciler.history import DeployRecord, History
from reconciler.history.stale import StaleReads
from reconciler.model import DesiredState
from reconciler.web.live import RolloutState, RolloutTracker

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CommitView:
    sha: str
    author: str
    summary: str
    time: float


@dataclass(frozen=True, kw_only=True)
class TargetStatus:
    name: str
    backend: str
    revisions: tuple[str, ...]
    """The last good revision of the target's apps; one value when they agree."""
    drifted: tuple[str, ...] = ()
    """Resources (with host) whose live state differs from that revision."""
    drift_checked: float | None = None


@dataclass(frozen=True, kw_only=True)
class Leadership:
    """Leader election as this replica sees it (the daemon's `LeaderState`)."""

    is_leader: bool
    holder: str | None
    """Who holds the Lease: "" released, None not known (not read yet, or unreadable)."""
    identity: str = ""
    """This replica's holderIdentity."""
    lease: str = ""
    """namespace/name of the Lease."""
    transitions: int = 0
    observed: float | None = None
    """When the Lease was last read or written successfully (epoch seconds)."""
    error: str | None = None
    """The last failure talking to the API server, until the next success."""


UNKNOWN_LEADER = Leadership(is_leader=False, holder=None)
"""What the page says when the daemon could not answer: unknown, not "off"."""


@dataclass(frozen=True, kw_only=True)
class Overview:
    repo: str
    branch: str
    path: str
    head: str | None
    ready: bool
    targets: tuple[TargetStatus, ...] = ()
    waiting: tuple[str, ...] = ()
    """Why a deploy waits (sync windows), one line per target."""
    leader: Leadership | None = None
    """None when leader election is off."""
    shards: tuple[Leadership, ...] = ()
    """With shards: every shard's Lease, by index (`is_leader`: this replica holds
    it); () without shards, or when the daemon could not answer."""
    history_unavailable: str | None = None
    """Why the history cannot be read and since when; the page shows what it knew."""


@dataclass(frozen=True, kw_only=True)
class Drift:
    checked: float
    resources: tuple[str, ...]
    """"target:host/Kind/name (action)", the daemon's DriftReport spelling."""


class StatusSource(Protocol):
    def overview(self) -> Overview: ...
    def rollout(self) -> RolloutState | None: ...
    def deploys(self, limit: int = 20) -> Sequence[DeployRecord]: ...
    def deploy(self, deploy_id: int) -> DeployRecord | None: ...
    def deploy_for_commit(self, sha: str) -> int | None: ...
    def commit(self, sha: str) -> CommitView | None: ...
    def plan(self, sha: str) -> Mapping[str, Any] | None: ...
    def ready(self) -> bool: ...
    def unready_reason(self) -> str | None: ...


def _none(_: str) -> Any:
    return None


@dataclass(frozen=True, kw_only=True)
class Hooks:
    """The daemon-side facts a HistorySource asks for; each defaults to "unknown"."""

    commit: Callable[[str], CommitView | None] = _none
    desired: Callable[[str], DesiredState | None] = _none
    targets: Callable[[DesiredState], Sequence[str]] = lambda d: sorted(d.targets)
    drift: Callable[[], Drift | None] = lambda: None
    head: Callable[[], str | None] = lambda: None
    ready: Callable[[], bool] = lambda: True
    unready: Callable[[], str | None] = lambda: None
    """Why not ready, for `/readyz`; None says nothing more than `ready`."""
    waiting: Callable[[], Mapping[str, str]] = lambda: {}
    leader: Callable[[], Leadership | None] = lambda: None
    """None: leader election is off."""
    shards: Callable[[], Sequence[Leadership]] = lambda: ()
    """One per shard, by index; empty without shards."""


@dataclass(kw_only=True)
class HistorySource:
    repo: str
    branch: str
    path: str
    history: History
    tracker: RolloutTracker
    hooks: Hooks = field(default_factory=Hooks)
    _commits: dict[str, CommitView | None] = field(default_factory=dict)
    _reads: StaleReads | None = None

    @property
    def reads(self) -> StaleReads:
        """The history as the page reads it: the last answers while the store is away."""
        if self._reads is None or self._reads.history is not self.history:
            self._reads = StaleReads(self.history)
        return self._reads

    def overview(self) -> Overview:
        head = _safe(self.hooks.head, None)
        waiting = _safe(self.hooks.waiting, {})
        targets = self._targets(head)
        down = self.reads.unavailable
        since = (f"since {time.strftime('%H:%M:%S', time.gmtime(down[1]))} UTC: {down[0]}"
                 if down else None)
        return Overview(repo=self.repo, branch=self.branch, path=self.path, head=head,
                        ready=self.ready(), targets=targets,
                        waiting=tuple(f"{t}: {why}" for t, why in sorted(waiting.items())),
                        leader=_safe(self.hooks.leader, UNKNOWN_LEADER),
                        shards=tuple(_safe(self.hooks.shards, ())),
                        history_unavailable=since)

    def _targets(self, head: str | None) -> tuple[TargetStatus, ...]:
        revision = _safe(self.reads.last_successful_revision, None) or head
        desired = _safe(lambda: self.hooks.desired(revision), None) if revision else None
        if desired is None:
            return ()
        drift = _safe(self.hooks.drift, None)
        out = []
        for name in _safe(lambda: self.hooks.targets(desired), sorted(desired.targets)):
            apps = sorted(a.name for a in desired.apps.values() if a.target == name)
            revs = {r for r in (self._last_good(a) for a in apps) if r}
            prefix = f"{name}:"
            drifted = tuple(r[len(prefix):] for r in (drift.resources if drift else ())
                            if r.startswith(prefix))
            out.append(TargetStatus(
                name=name, backend=desired.targets[name].backend.value,
                revisions=tuple(sorted(revs)), drifted=drifted,
                drift_checked=drift.checked if drift else None))
        return tuple(out)

    def _last_good(self, app: str) -> str | None:
        found: str | None = _safe(lambda: self.reads.last_good(app), None)
        return found

    def rollout(self) -> RolloutState | None:
        return self.tracker.state

    def deploys(self, limit: int = 20) -> Sequence[DeployRecord]:
        return self.reads.deploys(limit=limit)

    def deploy(self, deploy_id: int) -> DeployRecord | None:
        return self.reads.deploy(deploy_id)

    def deploy_for_commit(self, sha: str) -> int | None:
        # The newest deploy of that commit; a linear scan of recent deploys is
        # enough, since commit statuses link to recent commits.
        for record in self.reads.deploys(limit=500):
            if record.revision == sha:
                return record.id
        return None

    def commit(self, sha: str) -> CommitView | None:
        # Commits never change: remember every answer, including "unknown" for
        # a short while would be wrong (a fetch may bring it), so only hits.
        if sha in self._commits:
            return self._commits[sha]
        found: CommitView | None = _safe(lambda: self.hooks.commit(sha), None)
        if found is not None:
            self._commits[sha] = found
        return found

    def plan(self, sha: str) -> Mapping[str, Any] | None:
        return pulls.load_record(self.reads, sha)

    def ready(self) -> bool:
        return bool(_safe(self.hooks.ready, False))

    def unready_reason(self) -> str | None:
        """None when ready; else one line saying why not (or "starting")."""
        if self.ready():
            return None
        reason = _safe(self.hooks.unready, None)
        return str(reason) if reason else "starting"


def _safe(call: Callable[[], Any], default: Any) -> Any:
    try:
        return call()
    except Exception:
        # The page must render even when one fact cannot be read right now.
        log.debug("status fact unavailable", exc_info=True)
        return default
