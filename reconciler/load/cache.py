"""Parsed documents and per-file validation results, kept by content.

Parsing is keyed by blob id alone (the same bytes parse the same anywhere);
validation results are keyed by blob id plus everything else they depend on
(path, app, backend, defaults), so re-loading a commit re-does work only for
the files that changed. Entries not used by the last `keep` loads are
dropped, which bounds memory to about `keep` revisions of the repository.

A cache may be shared by threads (the daemon loads pull-request heads while a
deploy loads the branch); a lock guards the maps, never the parsing itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from reconciler.load.yamlio import ParsedYaml, parse_yaml

T = TypeVar("T")


class LoadCache:
    def __init__(self, *, keep: int = 2) -> None:
        self.keep = max(1, keep)
        self.parses = 0
        """YAML files parsed so far (not served from the cache)."""
        self._generation = 0
        self._docs: dict[str, tuple[int, ParsedYaml]] = {}
        self._results: dict[Hashable, tuple[int, Any]] = {}
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Start one load: entries touched from now on survive the next eviction."""
        with self._lock:
            self._generation += 1

    def end(self) -> None:
        """Finish one load: forget what the last `keep` loads did not use."""
        with self._lock:
            oldest = self._generation - self.keep + 1
            self._docs = {k: v for k, v in self._docs.items() if v[0] >= oldest}
            self._results = {k: v for k, v in self._results.items() if v[0] >= oldest}

    def parsed(self, blob_id: str, read: Callable[[], bytes]) -> ParsedYaml:
        with self._lock:
            hit = self._docs.get(blob_id)
            if hit is not None:
                self._docs[blob_id] = (self._generation, hit[1])
                return hit[1]
        result = parse_yaml(read())
        with self._lock:
            self.parses += 1
            self._docs[blob_id] = (self._generation, result)
        return result

    def result(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results[key] = (self._generation, hit[1])
                value: T = hit[1]
                return value
        value = compute()
        with self._lock:
            self._results[key] = (self._generation, value)
        return value

    def __len__(self) -> int:
        return len(self._docs)
