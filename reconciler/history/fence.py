"""Fencing tokens per target: who may apply to a target and record its deploys.

Why: a Lease says who should lead a shard, but a replica paused past its
renew deadline (a stop-the-world pause, SIGSTOP, a VM migration) wakes up
believing it still leads, with a rollout half done. The fence is the second
check, in the store every replica writes to: each target has one row naming
its holder and a token that grows by one whenever a replica takes the
target. A replica remembers the token it took; every write of a deploy checks,
in the same transaction, that the row still holds that token, so once a new
holder took the target the old one can neither record nor (its inventory
"intent" row is written, fenced, before every apply) apply.

Pure SQL over a `Cursor`; the daemon decides when to take and what to say.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.errors import HistoryError
from reconciler.history.database import Cursor


class FencedError(HistoryError):
    """A newer holder took a target this replica was about to write for: nothing
    of the call that raised it was written, and nothing more should be."""


@dataclass(frozen=True, kw_only=True)
class FenceRow:
    target: str
    holder: str
    token: int
    since: float


def read(db: Cursor, targets: Iterable[str], *, lock: str = "") -> dict[str, FenceRow]:
    """The fence rows of `targets` (missing: never taken); `lock` is the store's
    `row_lock`, so the rows stay as read until the transaction ends."""
    found: dict[str, FenceRow] = {}
    for target in sorted(set(targets)):  # one order: two writers never deadlock
        rows = db.execute(f"SELECT * FROM fences WHERE target=?{lock}", (target,))
        if rows:
            row = rows[0]
            found[target] = FenceRow(target=str(row["target"]), holder=str(row["holder"]),
                                     token=int(row["token"]), since=float(row["since"]))
    return found


def take(db: Cursor, target: str, holder: str, *, lock: str = "") -> int:
    """Make `holder` the holder of `target` with the next token; returns it."""
    rows = read(db, [target], lock=lock)
    token = rows[target].token + 1 if target in rows else 1
    db.execute(
        "INSERT INTO fences (target, holder, token, since) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (target) DO UPDATE SET holder=excluded.holder, "
        "token=excluded.token, since=excluded.since",
        (target, holder, token, time.time()))
    return token


def stale(rows: Mapping[str, FenceRow], tokens: Mapping[str, int]) -> FenceRow | None:
    """The first row whose token is not the one held, or None: every token is current."""
    for target, token in sorted(tokens.items()):
        row = rows.get(target)
        if row is None or row.token != token:
            return row or FenceRow(target=target, holder="", token=0, since=0.0)
    return None
