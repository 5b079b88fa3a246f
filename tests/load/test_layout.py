"""The tree itself: symlinks (through the real DirectoryTree), submodules
(through a real git commit), `..` paths and size limits."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import ValidationError
from reconciler.load import load
from reconciler.source import GitTree
from reconciler.tree import DirectoryTree, EntryKind, TreeEntry, blob_id
from tests.load.conftest import BASE_CONFIG, problems_of

APP = {"apps/web/app.yaml": "target: laptop\n"}


def test_directory_tree_reports_symlinks_without_following(state: Callable[..., Path]) -> None:
    root = state(APP)
    os.symlink("/etc", root / "apps" / "web" / "etc-link")
    os.symlink("app.yaml", root / "apps" / "web" / "alias.yaml")
    entries = {e.path: e for e in DirectoryTree(root).entries()}
    assert entries["apps/web/etc-link"].kind is EntryKind.SYMLINK
    assert entries["apps/web/alias.yaml"].kind is EntryKind.SYMLINK
    assert DirectoryTree(root).read(entries["apps/web/etc-link"]) == b"/etc"
    assert not any(p.startswith("apps/web/etc-link/") for p in entries)


def test_symlinks_leaving_the_repository_are_errors(state: Callable[..., Path]) -> None:
    root = state({**APP, "apps/web/files.yaml": "kind: Directory\npath: /srv\n"})
    os.symlink("/etc/passwd", root / "apps" / "web" / "passwd.yaml")
    os.symlink("../../../outside", root / "apps" / "web" / "files")
    os.symlink("../../../x", root / "notes")
    assert problems_of(root) == [
        "apps/web/files:1: symlink points outside the repository ('../../../outside')",
        "apps/web/passwd.yaml:1: symlink points outside the repository ('/etc/passwd')",
        "notes:1: symlink points outside the repository ('../../../x')",
    ]


def test_symlinks_inside_the_repository_are_followed(state: Callable[..., Path]) -> None:
    shared = "kind: File\npath: /etc/motd\nsource: motd.txt\n"
    root = state({**APP, "shared/motd.yaml": shared, "shared/files/motd.txt": "hello\n"})
    os.symlink("../../shared/motd.yaml", root / "apps" / "web" / "motd.yaml")
    os.symlink("../../shared/files", root / "apps" / "web" / "files")
    desired = load(DirectoryTree(root))
    (resource,) = desired.apps["web"].resources
    assert resource.body["content"] == b"hello\n"
    assert resource.location.file == "shared/motd.yaml"


def test_symlink_loops_and_dangling_links(state: Callable[..., Path]) -> None:
    root = state(APP)
    os.symlink("b.yaml", root / "apps" / "web" / "a.yaml")
    os.symlink("a.yaml", root / "apps" / "web" / "b.yaml")
    os.symlink("gone.yaml", root / "apps" / "web" / "c.yaml")
    assert problems_of(root) == [
        "apps/web/a.yaml:1: symlink cannot be followed: more than 16 symlinks to follow",
        "apps/web/b.yaml:1: symlink cannot be followed: more than 16 symlinks to follow",
        "apps/web/c.yaml:1: symlink cannot be followed: apps/web/gone.yaml does not exist",
    ]


def test_source_must_be_a_regular_file(state: Callable[..., Path]) -> None:
    doc = "kind: File\npath: /a\nsource: sub\n---\nkind: File\npath: /b\nsource: link\n"
    root = state({**APP, "apps/web/f.yaml": doc, "apps/web/files/sub/x.txt": "x"})
    os.symlink("sub", root / "apps" / "web" / "files" / "link")
    assert problems_of(root) == [
        "apps/web/f.yaml:3: File: source: apps/web/files/sub is a folder; name a file in it",
        "apps/web/f.yaml:7: File: source: apps/web/files/sub is a folder; name a file in it"]


def test_raw_and_yaml_size_limits(state: Callable[..., Path]) -> None:
    big_yaml = "a: " + "x" * (1024 * 1024) + "\n"
    root = state({**APP, "apps/web/big.yaml": big_yaml})
    (root / "apps" / "web" / "files").mkdir()
    with open(root / "apps" / "web" / "files" / "blob.bin", "wb") as handle:
        handle.truncate(10 * 1024 * 1024 + 1)
    found = problems_of(root)
    assert found == [
        f"apps/web/big.yaml:1: YAML file is {len(big_yaml)} bytes, over the limit of 1048576; "
        "it was not parsed",
        "apps/web/files/blob.bin:1: file is 10485761 bytes, over the limit of 10485760; "
        "it was not read",
    ]


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_submodules_are_errors(state: Callable[..., Path]) -> None:
    root = state(APP)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "update-index", "--add", "--cacheinfo",
         f"160000,{'1' * 40},apps/web/vendor")
    _git(root, "commit", "-q", "-m", "with a submodule")
    repo = pygit2.Repository(str(root))
    commit = repo.revparse_single("HEAD")
    assert isinstance(commit, pygit2.Commit)
    tree = GitTree(repo, str(commit.id), commit.tree)
    with pytest.raises(ValidationError) as info:
        load(tree)
    assert [str(p) for p in info.value.problems] == [
        "apps/web/vendor:1: submodules are not supported in the state repository"]


class _ListTree:
    """A StateTree over given entries, for paths no real tree can hold."""

    revision = "listed"

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def entries(self) -> Iterator[TreeEntry]:
        for path, data in sorted(self.files.items()):
            yield TreeEntry(path=path, blob_id=blob_id(data), size=len(data))

    def read(self, entry: TreeEntry) -> bytes:
        return self.files[entry.path]


def test_dot_dot_paths_are_errors() -> None:
    tree = _ListTree({"reconciler.yaml": BASE_CONFIG.encode(),
                      "apps/web/app.yaml": b"target: laptop\n",
                      "apps/web/../../evil.yaml": b"kind: File\n",
                      "apps/./web/x.yaml": b"kind: File\n"})
    with pytest.raises(ValidationError) as info:
        load(tree)
    assert [str(p) for p in info.value.problems] == [
        "apps/./web/x.yaml:1: path has '.', '..' or empty components",
        "apps/web/../../evil.yaml:1: path has '.', '..' or empty components",
    ]
