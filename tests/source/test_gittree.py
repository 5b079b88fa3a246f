"""GitTree: a commit's state root read from git objects, entry by entry."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source import Mirror
from reconciler.tree import DirectoryTree, EntryKind
from tests.source.conftest import STATE_FILES, Origin, make_origin


def test_entries_kinds_sizes_and_bytes(mirror: Mirror, origin: Origin) -> None:
    sha = mirror.resolve("main")
    tree = mirror.tree(sha)
    assert tree.revision == sha
    entries = {e.path: e for e in tree.entries()}
    assert list(entries) == sorted(entries)
    assert set(entries) == {*STATE_FILES, ".gitmodules", "apps/web/current", "vendor/lib"}
    for path, data in STATE_FILES.items():
        assert tree.read(entries[path]) == data
        assert entries[path].size == len(data) and entries[path].kind is EntryKind.FILE
        assert entries[path].blob_id == origin.run("rev-parse", f"main:{path}")
    link = entries["apps/web/current"]
    assert link.kind is EntryKind.SYMLINK and tree.read(link) == b"files/blob.bin"
    module = entries["vendor/lib"]
    assert module.kind is EntryKind.SUBMODULE and module.blob_id == "ab" * 20
    with pytest.raises(SourceError, match=r"^vendor/lib is a submodule"):
        tree.read(module)


def test_same_ids_as_a_directory_tree_of_the_checkout(mirror: Mirror, origin: Origin) -> None:
    from_git = {e.path: e for e in mirror.tree(mirror.resolve("main")).entries()}
    from_disk = {e.path: e for e in DirectoryTree(origin.work).entries()}
    del from_git["vendor/lib"]  # a submodule is an empty folder on disk
    assert from_git == from_disk


def test_state_root_in_a_folder(mirror: Mirror) -> None:
    sha = mirror.resolve("main")
    for path in ("apps/web", "./apps/web/", "apps//web"):
        tree = mirror.tree(sha, path)
        assert [e.path for e in tree.entries()] == ["app.yaml", "current", "files/blob.bin"]
    entry = next(iter(mirror.tree(sha, "apps/web").entries()))
    assert mirror.tree(sha, "apps/web").read(entry) == STATE_FILES["apps/web/app.yaml"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("apps/db", r"^path 'apps/db' does not exist in commit [0-9a-f]{12}$"),
        ("reconciler.yaml", r"^path 'reconciler.yaml' in commit [0-9a-f]{12} is not a folder$"),
        ("apps/../..", r"^path 'apps/../..' leaves the repository$"),
    ],
)
def test_bad_state_root(mirror: Mirror, path: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        mirror.tree(mirror.resolve("main"), path)


def test_tree_of_unknown_commit(mirror: Mirror) -> None:
    with pytest.raises(SourceError, match=r"^unknown revision '0{40}'$"):
        mirror.tree("0" * 40)


def test_ten_thousand_files_list_fast(tmp_path: Path, data_dir: Path) -> None:
    big = make_origin(tmp_path)
    # git fast-import writes the 10,000 files in one pass, far quicker than a worktree.
    stream = ["commit refs/heads/main", "committer Ada <ada@example.com> 1700000000 +0000",
              "data 3", "Big"]
    for app in range(100):
        for n in range(100):
            body = f"name: r{n}\napp: {app}\n"
            stream += [f"M 100644 inline apps/app{app:03}/r{n:03}.yaml", f"data {len(body)}",
                       body.rstrip("\n")]
    subprocess.run(["git", "fast-import", "--quiet"], cwd=big.bare, check=True,
                   input="\n".join(stream) + "\n", text=True)
    mirror = Mirror(str(big.bare), data_dir)
    mirror.fetch()
    tree = mirror.tree(mirror.resolve("main"))
    started = time.perf_counter()
    entries = list(tree.entries())
    elapsed = time.perf_counter() - started
    assert len(entries) == 10_000 and entries[0].path == "apps/app000/r000.yaml"
    assert entries[-1].size == len("name: r99\napp: 99\n")
    # Measured at about 0.03 s here; the bound leaves room for a busy machine.
    assert elapsed < 1.0, elapsed
