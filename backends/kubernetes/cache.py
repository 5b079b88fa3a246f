"""A watch-fed cache of live objects, for a process that plans again and again.

A one-shot `plan` lists what it reads (live.py). The daemon plans every few
minutes against the same cluster, so it keeps, per target, what it listed: the
first read of a scope (one `ListJob`: a kind, a namespace or all, a label
selector) makes its LIST, and from the LIST's resourceVersion on one WATCH
(with bookmarks) keeps the scope's objects current. Later reads of the scope
cost no call at all.

Invariants:
- A scope is served from memory only while it is `fresh`: listed, and watched
  from the version it holds (or about to be, after the server ended a watch in
  good order). A watch that breaks, a 410 (the version was compacted away), an
  ERROR event, a watch thread that stops for any reason: the scope is stale,
  and the next read lists it itself; the watch thread re-lists it meanwhile,
  backing off from WATCH_BACKOFF[0] to WATCH_BACKOFF[1] seconds while faults
  repeat. So a read never serves a scope that nothing watches.
- Our own writes are seen by the next read: `wrote` and `deleted` record, per
  scope that holds the object, what the scope must show (the version the write
  returned, or that the object is gone or terminating); a read waits for the
  watch to deliver it, at most SETTLE_TIMEOUT seconds, and else lists the scope
  again. Writes by others are seen once their event arrives (milliseconds on a
  healthy server): the cache is as current as its watches, like any informer.
- A scope no read has asked for in IDLE_AFTER seconds is dropped with its watch
  (a pull request's namespaces, a kind that left Git).
- Only what a plan reads is kept: objects without `status` and without the
  managedFields of other managers (a plan looks only at this manager's applied
  fields), each object as a whole, shared read-only with the reads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from backends.kubernetes.client import FIELD_MANAGER, KubeClient, object_path
from backends.kubernetes.live import (
    LIST_WORKERS,
    PAGE_SIZE,
    ListJob,
    ObjKey,
    list_collection,
    obj_key,
)
from reconciler.errors import ApiError

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 5.0
"""Seconds a read waits for the watch to show our own last writes before it
lists the scope instead."""
WATCH_SECONDS = (300, 600)
"""The server ends each watch after a time drawn from this range (client-go's
choice); the cache then resumes from the last version it saw."""
WATCH_BACKOFF = (0.5, 30.0)
"""First and longest wait before re-listing a scope whose watch keeps failing."""
IDLE_AFTER = 3600.0
HEALTHY_WATCH = 60.0
"""A watch that lasted this many seconds resets the backoff when it breaks."""
CONNECTIONS = 4096
"""Connections the cache's client keeps: one per watch, so none is dropped
from the pool (with a warning each time) when a watch ends."""


@dataclass
class _Expect:
    """What a scope must show after one of our writes."""

    version: str
    """The resourceVersion the write returned ("" when it returned none)."""
    labels: Mapping[str, str]
    gone: bool
    """A delete: the object must be absent, or terminating."""
    seq: int
    """Order of the write: a LIST started after it shows it."""


@dataclass(eq=False)
class _Scope:
    api: Any
    namespace: str
    selector: str
    objects: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    version: str = ""
    fresh: bool = False
    generation: int = 0
    """Bumped by every LIST: events of a watch from an older LIST are dropped."""
    pending: dict[ObjKey, _Expect] = field(default_factory=dict)
    thread: threading.Thread | None = None
    stream: Any = None
    dropped: bool = False
    last_read: float = 0.0
    wake: threading.Event = field(default_factory=threading.Event)
    list_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def what(self) -> str:
        scope = self.namespace or "all namespaces"
        return f"{self.api.kind} in {scope}" + (f" ({self.selector})" if self.selector else "")

    def covers(self, key: ObjKey) -> bool:
        return ((key[0], key[1]) == (self.api.group, self.api.kind)
                and (not self.namespace or self.namespace == key[2]))


@dataclass
class CacheStats:
    """Counters for tests and benchmarks."""

    lists: int = 0
    """LISTs made (first reads, re-lists by reads and by watch threads)."""
    relists: int = 0
    """Of those, LISTs of a scope that was listed before."""
    watches: int = 0
    """WATCH requests opened."""
    events: int = 0


class LiveCache:
    """The live objects of one cluster, as one set of credentials sees them.

    Thread-safe: the daemon's deploys and pull-request plans share it. `objects`
    is a `live.Lister`.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        page_size: int = PAGE_SIZE,
        settle_timeout: float = SETTLE_TIMEOUT,
        watch_seconds: tuple[int, int] = WATCH_SECONDS,
        backoff: tuple[float, float] = WATCH_BACKOFF,
        idle_after: float = IDLE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.page_size = page_size
        self.settle_timeout = settle_timeout
        self.watch_seconds = watch_seconds
        self.backoff = backoff
        self.idle_after = idle_after
        self._clock = clock
        self._scopes: dict[tuple[Any, str, str], _Scope] = {}
        self._changed = threading.Condition()
        """Guards every scope's objects, version, fresh, pending; notified on change."""
        self._seq = 0
        self._closed = False
        self.stats = CacheStats()

    # --- reads ----------------------------------------------------------------

    def objects(self, jobs: Sequence[ListJob]) -> dict[ObjKey, Mapping[str, Any]]:
        """The objects of every job, keyed: from memory where the scope is fresh,
        else listed now (and watched from then on)."""
        scopes = [self._scope(job) for job in jobs]
        stale = [s for s in scopes if not self._is_fresh(s)]
        self._run(stale, lambda s: self._relist(s, only_if_stale=True))
        self._run(self._unsettled(scopes), lambda s: self._relist(s, only_if_stale=False))
        out: dict[ObjKey, Mapping[str, Any]] = {}
        now = self._clock()
        with self._changed:
            for s in scopes:
                out.update(s.objects)
                s.last_read = now
        self._drop_idle(now)
        return out

    def _scope(self, job: ListJob) -> _Scope:
        api, namespace, selector = job
        with self._changed:
            if self._closed:
                raise ApiError("the live-state cache is closed")
            found = self._scopes.get((api, namespace, selector))
            if found is None:
                found = _Scope(api=api, namespace=namespace, selector=selector)
                self._scopes[(api, namespace, selector)] = found
            found.last_read = self._clock()  # in use: not idle while this read runs
            return found

    def _is_fresh(self, scope: _Scope) -> bool:
        with self._changed:
            alive = scope.thread is not None and scope.thread.is_alive()
            return scope.fresh and alive

    def _run(self, scopes: Sequence[_Scope], work: Callable[[_Scope], None]) -> None:
        if len(scopes) > 1:
            with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(scopes))) as pool:
                list(pool.map(work, scopes))
        elif scopes:
            work(scopes[0])

    def _unsettled(self, scopes: Sequence[_Scope]) -> list[_Scope]:
        """Wait until every scope shows our writes; the scopes that still do not.

        The watch threads clear what their events show; a full check (which
        also counts a scope's version moving past a write) runs at most every
        half second, so a read after a large apply stays linear."""
        deadline = self._clock() + self.settle_timeout
        checked = float("-inf")
        with self._changed:
            while True:
                waiting = [s for s in scopes if s.pending]
                now = self._clock()
                if waiting and now - checked >= 0.5:
                    checked = now
                    for s in waiting:
                        _settle(s)
                    waiting = [s for s in waiting if s.pending]
                left = deadline - now
                if not waiting or left <= 0 or not all(s.fresh for s in waiting):
                    break  # a scope gone stale will not settle: list it now
                self._changed.wait(min(left, 0.5))
        for s in waiting:
            log.warning("%s: the watch has not shown our last writes after %g s: listing it",
                        s.what, self.settle_timeout)
        return waiting

    # --- our writes -----------------------------------------------------------

    def wrote(self, answer: Mapping[str, Any]) -> None:
        """The server's answer to our apply: the next read must show at least it."""
        metadata = answer.get("metadata") or {}
        self._expect(obj_key(answer), str(metadata.get("resourceVersion") or ""),
                     metadata.get("labels") or {}, gone=False)

    def deleted(self, obj: Mapping[str, Any]) -> None:
        """We deleted `obj` (as last read): the next read must show it gone or
        terminating. No version: the server does not say at which one it went."""
        self._expect(obj_key(obj), "", (obj.get("metadata") or {}).get("labels") or {},
                     gone=True)

    def _expect(self, key: ObjKey, version: str, labels: Mapping[str, str], *, gone: bool
                ) -> None:
        with self._changed:
            self._seq += 1
            for scope in self._scopes.values():
                if scope.covers(key):
                    expect = _Expect(version=version, labels=dict(labels), gone=gone,
                                     seq=self._seq)
                    if not _shows(scope, key, expect):
                        scope.pending[key] = expect

    # --- lists and watches ----------------------------------------------------

    def _relist(self, scope: _Scope, *, only_if_stale: bool) -> None:
        with scope.list_lock:
            if only_if_stale and self._is_fresh(scope):
                return  # another read or the watch thread listed it meanwhile
            with self._changed:
                seq = self._seq
                again = scope.generation > 0
            items, version = list_collection(
                self.client, scope.api, scope.namespace, scope.selector,
                page_size=self.page_size)
            with self._changed:
                if self._closed:
                    raise ApiError("the live-state cache is closed")
                scope.objects = {obj_key(obj): trim(obj) for obj in items}
                scope.version = version
                scope.fresh = True
                scope.generation += 1
                scope.pending = {k: e for k, e in scope.pending.items() if e.seq > seq}
                self.stats.lists += 1
                self.stats.relists += again
                stream, scope.stream = scope.stream, None
                if not scope.dropped and (scope.thread is None or not scope.thread.is_alive()):
                    scope.thread = threading.Thread(
                        target=self._watch_loop, args=(scope,), daemon=True,
                        name=f"kube-watch {scope.what}"[:60])
                    scope.thread.start()
                self._changed.notify_all()
            if stream is not None:
                stream.close()  # a watch from the old version: the thread starts anew
            scope.wake.set()

    def _watch_loop(self, scope: _Scope) -> None:
        failures = 0
        try:
            while not (self._closed or scope.dropped):
                with self._changed:
                    generation, version, fresh = scope.generation, scope.version, scope.fresh
                if not fresh:
                    if failures:
                        self._pause(scope, failures)
                    try:
                        self._relist(scope, only_if_stale=True)
                    except ApiError as exc:
                        if self._closed:
                            return
                        failures += 1
                        log.warning("%s: re-list failed (%s)", scope.what, exc)
                    continue
                began = self._clock()
                outcome = self._watch_once(scope, generation, version)
                if outcome == "replaced":
                    continue
                if outcome == "ended" or self._clock() - began > HEALTHY_WATCH:
                    failures = 0  # it served well: a new fault starts the backoff over
                if outcome == "ended":
                    continue  # resumed from the last version seen
                self._mark_stale(scope, generation)
                if outcome == "refused":
                    # 403/404: listing may still work, so reads list; no watch
                    # retried in the background until a read starts one again.
                    return
                if outcome == "gone" and failures == 0:
                    continue  # compacted away: list at once, as client-go does
                failures += 1
        except Exception:  # never silently: the scope goes stale and a read lists it
            log.exception("%s: the watch thread failed", scope.what)
        finally:
            with self._changed:
                scope.fresh = False
                if scope.thread is threading.current_thread():
                    scope.thread = None
                self._changed.notify_all()

    def _pause(self, scope: _Scope, failures: int) -> None:
        low, high = self.backoff
        delay = min(high, low * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
        scope.wake.clear()
        with self._changed:
            if scope.fresh:
                return  # a read listed it meanwhile: watch from there at once
        scope.wake.wait(delay)

    def _watch_once(self, scope: _Scope, generation: int, version: str) -> str:
        """One WATCH from `version`: "ended" (by the server, in good order),
        "gone" (410), "refused" (403, 404), "replaced" (listed again meanwhile)
        or "broken"."""
        seconds = random.randint(*self.watch_seconds)
        query = [("watch", "1"), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(seconds))]
        if version:
            query.append(("resourceVersion", version))
        if scope.selector:
            query.append(("labelSelector", scope.selector))
        path = object_path(group=scope.api.group, version=scope.api.version,
                           plural=scope.api.plural, namespace=scope.namespace)
        try:
            stream = self.client.watch(path, what=scope.what, query=query, timeout=seconds + 30)
        except ApiError as exc:
            outcome = {410: "gone", 403: "refused", 404: "refused"}.get(exc.status or 0, "broken")
            # Broken and gone heal by themselves (a re-list); refused needs a person.
            log.log(logging.WARNING if outcome == "refused" else logging.INFO,
                    "%s: watch refused (%s)", scope.what, exc)
            return outcome
        with self._changed:
            self.stats.watches += 1
            if scope.generation != generation or self._closed or scope.dropped:
                stream.close()
                return "replaced"
            scope.stream = stream
        try:
            for event in stream.events():
                outcome = self._apply(scope, generation, event)
                if outcome:
                    return outcome
            return "ended"
        except ApiError as exc:
            with self._changed:
                if scope.generation != generation or self._closed or scope.dropped:
                    return "replaced"
            log.info("%s: %s; listing it again", scope.what, exc)
            return "broken"
        finally:
            stream.close()
            with self._changed:
                if scope.stream is stream:
                    scope.stream = None

    def _apply(self, scope: _Scope, generation: int, event: Mapping[str, Any]) -> str:
        """Apply one event; "" to go on, else why the watch ends."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            log.info("%s: watch error %s: %s", scope.what, code, obj.get("message"))
            return "gone" if code == 410 else "broken"
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        with self._changed:
            if scope.generation != generation:
                return "replaced"
            self.stats.events += 1
            if version:
                scope.version = version
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                full = {"apiVersion": scope.api.api_version, "kind": scope.api.kind, **obj}
                key = obj_key(full)
                if kind == "DELETED":
                    scope.objects.pop(key, None)
                else:
                    scope.objects[key] = trim(full)
                expect = scope.pending.get(key)
                if expect is not None and _shows(scope, key, expect):
                    del scope.pending[key]
            elif kind != "BOOKMARK":
                log.warning("%s: unknown watch event %r", scope.what, kind)
            self._changed.notify_all()
        return ""

    def _mark_stale(self, scope: _Scope, generation: int) -> None:
        with self._changed:
            if scope.generation == generation:
                scope.fresh = False
                self._changed.notify_all()

    # --- lifetime -------------------------------------------------------------

    def _drop_idle(self, now: float) -> None:
        with self._changed:
            idle = [k for k, s in self._scopes.items() if now - s.last_read > self.idle_after]
            dropped = [self._scopes.pop(k) for k in idle]
        for scope in dropped:
            log.info("%s: not read for %g s: no longer watched", scope.what, self.idle_after)
            self._stop(scope)

    def _stop(self, scope: _Scope) -> None:
        with self._changed:
            scope.dropped = True
            stream = scope.stream
        if stream is not None:
            stream.close()
        scope.wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop every watch (waiting at most `timeout` seconds in all)."""
        with self._changed:
            self._closed = True
            scopes = list(self._scopes.values())
            self._scopes.clear()
        for scope in scopes:
            self._stop(scope)
        deadline = time.monotonic() + timeout
        for scope in scopes:
            thread = scope.thread
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        self.client.close()

    def scopes(self) -> int:
        with self._changed:
            return len(self._scopes)

    def stale(self) -> int:
        """Scopes waiting for a re-list (for tests and the benchmark)."""
        with self._changed:
            return sum(1 for s in self._scopes.values() if not s.fresh)

    def watching(self) -> int:
        """Scopes with a live watch thread (for tests and the benchmark)."""
        with self._changed:
            return sum(1 for s in self._scopes.values()
                       if s.thread is not None and s.thread.is_alive())


def trim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a plan reads of a live object: all but `status` and the managedFields
    entries of other managers (a plan checks only this manager's applied fields)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("managedFields"):
        ours = [e for e in metadata["managedFields"]
                if isinstance(e, Mapping) and e.get("manager") == FIELD_MANAGER
                and e.get("operation") == "Apply"]
        out["metadata"] = {**metadata, "managedFields": ours}
    return out


def _newer_or_same(have: str, want: str) -> bool:
    """Whether resourceVersion `have` is at least `want`. Versions are opaque to
    clients in general; every server built on etcd uses its revision, an integer,
    and anything else only counts when equal."""
    if have.isdigit() and want.isdigit():
        return int(have) >= int(want)
    return have == want


def _shows(scope: _Scope, key: ObjKey, expect: _Expect) -> bool:
    """Whether the scope already shows the write `expect` stands for."""
    if expect.version and _newer_or_same(scope.version, expect.version):
        return True  # past the write: whatever the scope holds came after it
    have = scope.objects.get(key)
    if expect.gone:
        return have is None or bool((have.get("metadata") or {}).get("deletionTimestamp"))
    if not selects(scope.selector, expect.labels):
        return have is None
    version = str(((have or {}).get("metadata") or {}).get("resourceVersion") or "")
    return have is not None and bool(expect.version) and _newer_or_same(version, expect.version)


def _settle(scope: _Scope) -> None:
    for key in [k for k, e in scope.pending.items() if _shows(scope, k, e)]:
        del scope.pending[key]


def selects(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether a label selector of equality requirements (`a=b`, `a==b`, `a!=b`,
    comma-separated; the only ones reads use) selects `labels`; anything else
    reads as "maybe not", which only costs a wait and a LIST."""
    for requirement in filter(None, (r.strip() for r in selector.split(","))):
        if "!=" in requirement:
            name, _, value = requirement.partition("!=")
            if labels.get(name.strip()) == value.strip():
                return False
        elif "=" in requirement:
            name, _, value = requirement.replace("==", "=").partition("=")
            if labels.get(name.strip()) != value.strip():
                return False
        else:
            return False
    return True
