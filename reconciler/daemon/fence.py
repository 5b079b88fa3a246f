"""The fence a replica holds over the targets of a shard (`history.fence`).

A `ShardFence` lives as long as the replica; each time it takes the shard's
Lease a new tenure starts (`new_tenure`): it takes at once the fence of every
target of the shard the history knows (a new token each), so a replica that
held them before is refused from that moment on, and the first deploy of a
target new to the fences takes its fence then. Taking happens only while the
Lease is still held, asked under the fence rows' lock. Later deploys of the
tenure reuse the tokens. `claim` returns a `DeployFence`: the guard that the deploy's
every history write runs in its own transaction, and that refuses (and
interrupts the rollout) once any of its targets shows a newer token.

Refusals are said once per deploy, plainly: "fenced: shard 2 is held by
<id> since token 7".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from reconciler.daemon.logging import fields
from reconciler.daemon.shards import shard_of
from reconciler.history import History
from reconciler.history.database import Cursor
from reconciler.history.fence import FencedError, FenceRow

log = logging.getLogger("reconciler.daemon")


def fenced_message(shard: int, row: FenceRow) -> str:
    holder = row.holder or "nobody"
    return f"fenced: shard {shard} is held by {holder} since token {row.token}"


class DeployFence:
    """One deploy's tokens; `guard` is a `History.fenced` guard."""

    def __init__(self, history: History, shard: int, tokens: dict[str, int],
                 on_refused: Callable[[str], object]) -> None:
        self.history = history
        self.shard = shard
        self.tokens = tokens
        self._on_refused = on_refused
        self.refused: str | None = None
        """Why the fence refused a write of this deploy; None while it never did."""

    def guard(self, db: Cursor) -> None:
        if self.refused is not None:
            raise FencedError(self.refused)
        row = self.history.check_fences(db, self.tokens)
        if row is None:
            return
        self.refused = fenced_message(self.shard, row)
        log.warning(self.refused + ": this replica stops its rollout and writes nothing more",
                    extra=fields(shard=self.shard, holder=row.holder, token=row.token,
                                 ours=self.tokens.get(row.target), target=row.target))
        self._on_refused(self.refused)
        raise FencedError(self.refused)


class ShardFence:
    def __init__(self, history: History, shard: int, identity: str,
                 holds: Callable[[], bool], *, shards: int) -> None:
        self.history = history
        self.shard = shard
        self.shards = shards
        self.identity = identity
        self._holds = holds
        self._lock = threading.Lock()
        self._tokens: dict[str, int] = {}

    def new_tenure(self) -> None:
        """The shard's Lease was just taken: tokens of an earlier tenure are void,
        and the shard's known targets are taken now (raises HistoryError: they
        are taken at their first deploy then)."""
        with self._lock:
            self._tokens = {}
            known = [t for t in self.history.fences() if shard_of(t, self.shards) == self.shard]
            if known:
                self._tokens.update(self.history.take_fences(known, self.identity,
                                                             self._holds))
                log.info("fence taken", extra=fields(shard=self.shard, tokens=self._tokens))

    def claim(self, targets: Sequence[str], on_refused: Callable[[str], object]
              ) -> DeployFence:
        """The fence of a deploy of `targets`; raises FencedError (logged) when the
        shard is not held any more or another replica took one of them since."""
        with self._lock:
            missing = [t for t in targets if t not in self._tokens]
            if missing:
                try:
                    self._tokens.update(self.history.take_fences(
                        missing, self.identity, self._holds))
                except FencedError as err:
                    log.warning(f"fenced: shard {self.shard} is not held by this replica "
                                "any more: deploy not started",
                                extra=fields(shard=self.shard, error=str(err)))
                    raise
                log.info("fence taken", extra=fields(
                    shard=self.shard, tokens={t: self._tokens[t] for t in missing}))
            tokens = {t: self._tokens[t] for t in targets}
        return DeployFence(self.history, self.shard, tokens, on_refused)
