"""A read-only view of the state root of one revision.

The loader reads through this seam only, so that the same validation runs on a
git commit (read straight from git objects by `reconciler.source`, never from a
checkout) and on a plain directory (`reconciler validate DIR`). Every entry
carries a content id: the git blob id, or the same hash computed from the bytes
for a directory, so parsed documents can be cached by content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol


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


class DirectoryTree:
    """A state root on disk. Symlinks are reported, never followed."""

    def __init__(self, root: Path, revision: str = "working-tree") -> None:
        self.root = root
        self.revision = revision

    def entries(self) -> Iterator[TreeEntry]:
        found: list[TreeEntry] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            base = Path(dirpath)
            for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
                full = base / name
                rel = full.relative_to(self.root).as_posix()
                if full.is_symlink():
                    target = os.readlink(full).encode()
                    found.append(TreeEntry(path=rel, blob_id=blob_id(target),
                                           size=len(target), kind=EntryKind.SYMLINK))
                elif full.is_file():
                    data = full.read_bytes()
                    found.append(TreeEntry(path=rel, blob_id=blob_id(data), size=len(data)))
        yield from sorted(found, key=lambda e: e.path)

    def read(self, entry: TreeEntry) -> bytes:
        full = self.root / entry.path
        if entry.kind is EntryKind.SYMLINK:
            return os.readlink(full).encode()
        return full.read_bytes()
