"""Rendered output by the identity of everything a render read.

A key is a hash of the tool's identity, the app's files (path and blob id of
each), the files outside apps/ that every render can see, and the settings
of the render (release, namespace); the same key always means the same bytes,
because rendering runs without network and from those files only. A failed
render is kept too (the tool said no to these inputs, and would again), but a
run stopped by the time limit is not: a busy machine may finish it next time.

Entries are dropped least recently used first once their outputs add up to
more than `max_bytes`. Threads may share one cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Outcome:
    output: bytes | None
    """The rendered manifests; None when the render failed."""
    error: str = ""


class RenderCache:
    def __init__(self, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max(1, max_bytes)
        self.renders = 0
        """Tool runs so far (cache misses)."""
        self._items: OrderedDict[str, Outcome] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Outcome | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def count_render(self) -> None:
        with self._lock:
            self.renders += 1

    def put(self, key: str, outcome: Outcome) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= _size(old)
            self._items[key] = outcome
            self._size += _size(outcome)
            while self._size > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._size -= _size(dropped)

    def __len__(self) -> int:
        return len(self._items)


def _size(outcome: Outcome) -> int:
    return len(outcome.output or b"") + len(outcome.error) + 64
