"""A read-only view of the state root of one revision.

The loader reads through this seam only, so that the same validation runs on a
git commit (read straight from git objects by `reconciler.source`, never from a
checkout) and on a plain directory (`reconciler validate DIR`). Every entry
carries a content id: the git blob id, or the same hash computed from the bytes
for a directory, so parsed documents can be cached by content.

Listing a directory means hashing every file. `StatCache` lets successive
`DirectoryTree`s of the same folder skip that for files whose stat signature
has not changed, the way git's index does; see its docstring for the rule
that keeps it from missing a rewrite.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from reconciler.errors import ReconcilerError


class EntryKind(str, Enum):
    FILE = "file"
    SYMLINK = "symlink"
    SUBMODULE = "submodule"


@dataclass(frozen=True, kw_only=True)
class TreeEntry:
    path: str
    """POSIX path relative to the state root, e.g. "apps/web/app.yaml"."""
    blob_id: str
    size: int
    kind: EntryKind = EntryKind.FILE


class StateTree(Protocol):
    revision: str

    def entries(self) -> Iterator[TreeEntry]:
        """Every entry under the state root, in path order."""
        ...

    def read(self, entry: TreeEntry) -> bytes:
        """The entry's bytes; for a symlink, its target."""
        ...


def blob_id(data: bytes) -> str:
    """The git blob id of `data`, so a directory and a commit share cache keys."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


_RACY_NS = 2_000_000_000
"""How close to the listing a file's last change may be before its stat
signature is no longer trusted (see StatCache)."""

_Signature = tuple[int, int, int, int, int]
"""(mtime_ns, ctime_ns, size, inode, device) of a file, from lstat."""


class StatCache:
    """Blob ids of files on disk, by absolute path and stat signature.

    A hit needs the same mtime, ctime, size, inode and device as when the file
    was hashed. That alone would miss a rewrite that keeps the size and lands
    within the file system's timestamp granularity of the hashed version (one
    second on some, a clock tick on others): the "racy" case of git's index.
    So a file whose mtime or ctime is within two seconds of the listing (or in
    the future) is hashed and not remembered; any later rewrite then gets a
    newer timestamp than the one remembered. ctime is in the signature because
    it cannot be set back by tools that restore mtimes (tar, rsync -t, touch -d).

    One cache may serve several folders and threads; it keeps at most
    `max_entries` paths, dropping the oldest remembered first (a dropped path
    costs one re-hash, never a wrong id). `clock` gives the listing time in
    nanoseconds since the epoch, the same clock as file timestamps.
    """

    def __init__(self, *, max_entries: int = 200_000,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.max_entries = max(1, max_entries)
        self.clock = clock
        self.hashed = 0
        """Files read and hashed because no trusted signature matched."""
        self._entries: dict[str, tuple[_Signature, TreeEntry]] = {}
        self._lock = threading.Lock()

    def lookup(self, path: str, signature: _Signature) -> TreeEntry | None:
        # No lock: one dict read is atomic, and this runs once per file of
        # every listing; writers (remember) still serialise among themselves.
        hit = self._entries.get(path)
        return hit[1] if hit is not None and hit[0] == signature else None

    def remember(self, path: str, signature: _Signature, entry: TreeEntry, now_ns: int) -> None:
        with self._lock:
            self.hashed += 1
            if max(signature[0], signature[1]) >= now_ns - _RACY_NS:
                # Too recent to trust: forget any older version of this path too.
                self._entries.pop(path, None)
                return
            self._entries.pop(path, None)  # re-insert at the young end of the order
            self._entries[path] = (signature, entry)
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)


class DirectoryTree:
    """A state root on disk. Symlinks are reported, never followed.

    With a `stat_cache` shared between trees of the same folder, listing
    hashes only the files whose stat signature changed. `read()` checks the
    bytes it returns against the listed blob id, so a file changed between
    listing and reading is an error rather than content filed under the id of
    its previous version (the load cache keys parsed documents by that id).
    """

    def __init__(self, root: Path, revision: str = "working-tree", *,
                 stat_cache: StatCache | None = None) -> None:
        self.root = root
        self.revision = revision
        self._stat_cache = stat_cache

    def entries(self) -> Iterator[TreeEntry]:
        cache = self._stat_cache
        # Taken before any stat: a file changed during the listing is newer
        # than this, so it counts as racy and is not remembered.
        now_ns = cache.clock() if cache is not None else 0
        found: list[TreeEntry] = []
        # (absolute folder, its path relative to the root): absolute, so that a
        # shared cache's keys survive a change of the working directory.
        folders = [(os.path.abspath(self.root), "")]
        while folders:
            folder, prefix = folders.pop()
            try:
                with os.scandir(folder) as listing:
                    items = list(listing)
            except OSError:
                continue  # as os.walk does: an unreadable folder lists nothing
            for item in items:
                rel = prefix + item.name
                if item.is_symlink():
                    if item.name == ".git" and item.is_dir():
                        continue
                    kind = EntryKind.SYMLINK
                elif item.is_dir(follow_symlinks=False):
                    if item.name != ".git":
                        folders.append((item.path, rel + "/"))
                    continue
                elif item.is_file(follow_symlinks=False):
                    kind = EntryKind.FILE
                else:
                    continue  # fifos, sockets, devices: not state
                if cache is None:
                    found.append(_hashed(item.path, rel, kind))
                    continue
                # This loop runs for every file of every listing, so the
                # signature is built here rather than in a helper.
                st = item.stat(follow_symlinks=False)
                signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)
                hit = cache.lookup(item.path, signature)
                if hit is None or hit.kind is not kind:
                    hit = _hashed(item.path, rel, kind)
                    cache.remember(item.path, signature, hit, now_ns)
                elif hit.path != rel:
                    # The same file seen from another root of the same cache.
                    hit = TreeEntry(path=rel, blob_id=hit.blob_id, size=hit.size, kind=kind)
                found.append(hit)
        found.sort(key=lambda e: e.path)
        yield from found

    def read(self, entry: TreeEntry) -> bytes:
        data = _read(os.path.join(self.root, entry.path), entry.kind)
        if blob_id(data) != entry.blob_id:
            raise ReconcilerError(f"{entry.path} changed while the state was being loaded; "
                                  "load it again")
        return data


def _read(path: str, kind: EntryKind) -> bytes:
    if kind is EntryKind.SYMLINK:
        return os.readlink(path).encode()
    with open(path, "rb") as handle:
        return handle.read()


def _hashed(path: str, rel: str, kind: EntryKind) -> TreeEntry:
    data = _read(path, kind)
    return TreeEntry(path=rel, blob_id=blob_id(data), size=len(data), kind=kind)
