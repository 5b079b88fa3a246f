"""A commit's state root read straight from git objects, never from a checkout.

`GitTree` implements `reconciler.tree.StateTree`. It walks pygit2 tree objects
once (sizes come from object headers, blobs are only read when asked for) and
keeps the listing, since a commit never changes. A `ListingCache` shared by the
GitTrees of one mirror keeps the listing of every subtree by its tree id: a
commit that changes one file has new tree ids only on that file's path, so
listing it walks those few trees and reuses the rest (10,000 files list in
tens of milliseconds cold, about a millisecond after a one-file commit).

Invariants:
- Paths are POSIX and relative to the state root, in path order, and the blob
  id is the git object id, so a DirectoryTree and a GitTree of the same files
  share cache keys.
- A cached listing is the same tuple of the same TreeEntry values an uncached
  walk gives: it is keyed by the subtree's id and its path under the state
  root, and git ids name content, so a key can never describe other entries.
- Symlinks (mode 120000) are reported as such, with their target as bytes;
  they are never followed. Submodules (commit entries, mode 160000) are
  reported with the commit id and size 0; they have no bytes in this repo.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pygit2
from pygit2.enums import FileMode, ObjectType

from reconciler.errors import SourceError
from reconciler.tree import EntryKind, TreeEntry

_Key = tuple[str, pygit2.Oid]
"""(where a tree sits under the state root: "" or a path ending in "/"; its id)."""
_Listing = tuple[TreeEntry, ...]


class ListingCache:
    """Listings of git trees by (path under the state root, tree id).

    Shared by the GitTrees of one mirror and by threads (the daemon loads pull
    request heads while a deploy loads the branch); a lock guards the map, the
    walking happens outside it. Bounded by `max_entries` TreeEntry references
    summed over all listings, least recently used dropped first. A new commit
    adds listings only for the trees on its changed paths, but those include
    the root and its folders, which refer to every file below them: with the
    default, a repository of 10,000 files in three levels keeps about five
    commits' listings, and the unchanged subtrees that each load reuses stay
    recently used.
    """

    def __init__(self, *, max_entries: int = 200_000) -> None:
        self.max_entries = max(1, max_entries)
        self.trees_listed = 0
        """Tree objects walked because their listing was not cached."""
        self._listings: OrderedDict[_Key, _Listing] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: _Key) -> _Listing | None:
        with self._lock:
            hit = self._listings.get(key)
            if hit is not None:
                self._listings.move_to_end(key)
            return hit

    def put(self, key: _Key, listing: _Listing) -> None:
        with self._lock:
            self.trees_listed += 1
            old = self._listings.pop(key, None)
            if old is not None:
                self._size -= len(old) + 1
            self._listings[key] = listing
            # +1 so that empty trees count too.
            self._size += len(listing) + 1
            while self._size > self.max_entries and len(self._listings) > 1:
                _, dropped = self._listings.popitem(last=False)
                self._size -= len(dropped) + 1

    def __len__(self) -> int:
        return len(self._listings)


@dataclass
class _Frame:
    """One tree being listed: its children so far, as (sort key, listing)."""

    key: _Key
    sort_key: str
    items: Iterator[pygit2.Object]
    parts: list[tuple[str, _Listing]] = field(default_factory=list)


class GitTree:
    """The state root `path` of commit `revision` in `repo`.

    `listings` is the mirror's cache of subtree listings; without one, every
    GitTree walks all of its trees.
    """

    def __init__(self, repo: pygit2.Repository, revision: str, root: pygit2.Tree,
                 listings: ListingCache | None = None) -> None:
        self.revision = revision
        self._repo = repo
        self._root = root
        self._listings = listings
        self._entries: _Listing | None = None

    def entries(self) -> Iterator[TreeEntry]:
        if self._entries is None:
            self._entries = self._list()
        yield from self._entries

    def _list(self) -> _Listing:
        """The root's listing, in path order, built from cached subtree listings.

        Git orders a tree's entries by name, a subtree's name compared as if it
        ended in "/"; sorting children by that key and concatenating their
        (sorted) listings gives exactly the order of the full paths. The walk
        keeps its own stack: a repository may nest folders deeper than
        Python's recursion limit.
        """
        cache = self._listings
        odb = self._repo.odb
        stack: list[_Frame] = []

        def enter(prefix: str, sort_key: str, tree: pygit2.Tree) -> _Listing | None:
            key = (prefix, tree.id)
            hit = cache.get(key) if cache is not None else None
            if hit is None:
                stack.append(_Frame(key=key, sort_key=sort_key, items=iter(tree)))
            return hit

        cached = enter("", "", self._root)
        if cached is not None:
            return cached
        while True:
            frame = stack[-1]
            prefix = frame.key[0]
            for obj in frame.items:
                name = obj.name or ""
                path = prefix + name
                if obj.filemode == FileMode.COMMIT:
                    frame.parts.append((name, (TreeEntry(
                        path=path, blob_id=str(obj.id), size=0, kind=EntryKind.SUBMODULE),)))
                elif obj.type == ObjectType.TREE and isinstance(obj, pygit2.Tree):
                    hit = enter(path + "/", name + "/", obj)
                    if hit is None:
                        break  # list the subtree first; this frame resumes after it
                    frame.parts.append((name + "/", hit))
                else:
                    kind = EntryKind.SYMLINK if obj.filemode == FileMode.LINK else EntryKind.FILE
                    size = int(odb.read_header(obj.id)[1])
                    frame.parts.append((name, (TreeEntry(
                        path=path, blob_id=str(obj.id), size=size, kind=kind),)))
            else:
                stack.pop()
                # Trees are normally stored sorted; sorting again costs little
                # and keeps the path order even for a hand-made tree object.
                frame.parts.sort(key=lambda part: part[0])
                listing = tuple(e for _, part in frame.parts for e in part)
                if cache is not None:
                    cache.put(frame.key, listing)
                if not stack:
                    return listing
                stack[-1].parts.append((frame.sort_key, listing))

    def read(self, entry: TreeEntry) -> bytes:
        if entry.kind is EntryKind.SUBMODULE:
            raise SourceError(f"{entry.path} is a submodule: its files are not in this repository")
        try:
            blob = self._repo[entry.blob_id]
        except (KeyError, ValueError):
            raise SourceError(f"{entry.path}: object {entry.blob_id} is missing") from None
        if not isinstance(blob, pygit2.Blob):
            raise SourceError(f"{entry.path}: object {entry.blob_id} is not a file")
        data: bytes = blob.data
        return data


def subtree(repo: pygit2.Repository, sha: str, commit: pygit2.Commit, path: str,
            listings: ListingCache | None = None) -> GitTree:
    """The GitTree of `path` inside `commit`; a missing or non-folder path is an error."""
    clean = "/".join(part for part in path.split("/") if part not in ("", "."))
    if ".." in clean.split("/"):
        raise SourceError(f"path '{path}' leaves the repository")
    root = commit.tree
    if clean:
        try:
            found = root[clean]
        except KeyError:
            raise SourceError(f"path '{path}' does not exist in commit {sha[:12]}") from None
        if not isinstance(found, pygit2.Tree):
            raise SourceError(f"path '{path}' in commit {sha[:12]} is not a folder")
        root = found
    return GitTree(repo, sha, root, listings)
