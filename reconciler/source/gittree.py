"""A commit's state root read straight from git objects, never from a checkout.

`GitTree` implements `reconciler.tree.StateTree`. It walks pygit2 tree objects
once (10,000 files list in tens of milliseconds: sizes come from object
headers, blobs are only read when asked for) and keeps the listing, since a
commit never changes.

Invariants:
- Paths are POSIX and relative to the state root, in path order, and the blob
  id is the git object id, so a DirectoryTree and a GitTree of the same files
  share cache keys.
- Symlinks (mode 120000) are reported as such, with their target as bytes;
  they are never followed. Submodules (commit entries, mode 160000) are
  reported with the commit id and size 0; they have no bytes in this repo.
"""

from __future__ import annotations

from collections.abc import Iterator

import pygit2
from pygit2.enums import FileMode, ObjectType

from reconciler.errors import SourceError
from reconciler.tree import EntryKind, TreeEntry


class GitTree:
    """The state root `path` of commit `revision` in `repo`."""

    def __init__(self, repo: pygit2.Repository, revision: str, root: pygit2.Tree) -> None:
        self.revision = revision
        self._repo = repo
        self._root = root
        self._entries: list[TreeEntry] | None = None

    def entries(self) -> Iterator[TreeEntry]:
        if self._entries is None:
            self._entries = sorted(self._walk(), key=lambda e: e.path)
        yield from self._entries

    def _walk(self) -> Iterator[TreeEntry]:
        odb = self._repo.odb
        stack: list[tuple[str, pygit2.Tree]] = [("", self._root)]
        while stack:
            prefix, tree = stack.pop()
            for obj in tree:
                path = prefix + (obj.name or "")
                if obj.filemode == FileMode.COMMIT:
                    yield TreeEntry(path=path, blob_id=str(obj.id), size=0,
                                    kind=EntryKind.SUBMODULE)
                elif obj.type == ObjectType.TREE and isinstance(obj, pygit2.Tree):
                    stack.append((path + "/", obj))
                else:
                    kind = EntryKind.SYMLINK if obj.filemode == FileMode.LINK else EntryKind.FILE
                    size = int(odb.read_header(obj.id)[1])
                    yield TreeEntry(path=path, blob_id=str(obj.id), size=size, kind=kind)

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


def subtree(repo: pygit2.Repository, sha: str, commit: pygit2.Commit, path: str) -> GitTree:
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
    return GitTree(repo, sha, root)
