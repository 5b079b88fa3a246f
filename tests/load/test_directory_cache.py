"""DirectoryTree's stat cache: the same entries as hashing everything, with less hashing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.load import LoadCache, load
from reconciler.tree import DirectoryTree, EntryKind, StatCache, TreeEntry, blob_id
from tests.load.conftest import write_tree

LATER = 60 * 10**9


def later_clock() -> int:
    """A listing a minute after now: the files written by the test are past the racy window."""
    return time.time_ns() + LATER


def listed(root: Path, cache: StatCache | None) -> dict[str, TreeEntry]:
    return {e.path: e for e in DirectoryTree(root, stat_cache=cache).entries()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    made = write_tree(tmp_path / "state", {
        "apps/web/app.yaml": "target: laptop\nwave: 1\n",
        "apps/web/files.yaml": "kind: Directory\npath: /srv/web\n",
        "apps/web/files/blob.bin": bytes(range(256)),
        ".git/HEAD": "ref: refs/heads/main\n",
    })
    (made / "apps/web/current").symlink_to("files/blob.bin")
    (made / "apps/web/shared").symlink_to("files")
    (made / "apps/web/dangling").symlink_to("nowhere")
    os.mkfifo(made / "apps/web/pipe")  # neither a file nor a link: not listed
    return made


def test_cached_entries_equal_the_uncached_ones(root: Path) -> None:
    cache = StatCache(clock=later_clock)
    plain = list(DirectoryTree(root).entries())
    cold = list(DirectoryTree(root, stat_cache=cache).entries())
    warm = list(DirectoryTree(root, stat_cache=cache).entries())
    assert cold == warm == plain
    assert [e.path for e in plain] == sorted(e.path for e in plain)
    kinds = {e.path: e.kind for e in plain}
    assert kinds == {
        "reconciler.yaml": EntryKind.FILE, "apps/web/app.yaml": EntryKind.FILE,
        "apps/web/files.yaml": EntryKind.FILE, "apps/web/files/blob.bin": EntryKind.FILE,
        "apps/web/current": EntryKind.SYMLINK, "apps/web/shared": EntryKind.SYMLINK,
        "apps/web/dangling": EntryKind.SYMLINK,
    }
    tree = DirectoryTree(root, stat_cache=cache)
    by_path = {e.path: e for e in tree.entries()}
    assert tree.read(by_path["apps/web/files/blob.bin"]) == bytes(range(256))
    assert tree.read(by_path["apps/web/current"]) == b"files/blob.bin"


def test_unchanged_files_are_not_hashed_again(root: Path) -> None:
    cache = StatCache(clock=later_clock)
    listed(root, cache)
    assert cache.hashed == 7 and len(cache) == 7
    listed(root, cache)
    assert cache.hashed == 7

    (root / "apps/web/app.yaml").write_text("target: laptop\nwave: 2\n")
    entries = listed(root, cache)
    assert cache.hashed == 8  # only the changed file
    assert entries["apps/web/app.yaml"].blob_id == blob_id(b"target: laptop\nwave: 2\n")


def test_same_size_rewrites_are_seen(root: Path) -> None:
    cache = StatCache(clock=later_clock)
    path = root / "apps/web/app.yaml"
    before = path.stat()
    listed(root, cache)

    # Same size, the file's mtime moved on (the ordinary edit).
    path.write_text("target: laptop\nwave: 7\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert listed(root, cache)["apps/web/app.yaml"].blob_id == blob_id(path.read_bytes())

    # Same size and the original mtime, written to a new file and renamed over
    # (an editor's atomic save, `touch -d` or tar restoring the time): a new inode.
    fresh = root / "apps/web/.app.yaml.tmp"
    fresh.write_text("target: laptop\nwave: 8\n")
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
    fresh.replace(path)
    assert listed(root, cache)["apps/web/app.yaml"].blob_id == blob_id(b"target: laptop\nwave: 8\n")


def test_racy_file_rewritten_with_same_size_and_mtime_is_seen(tmp_path: Path) -> None:
    # The real clock: the listing happens right after the write, within the
    # file system's timestamp granularity of the next one.
    cache = StatCache()
    root = write_tree(tmp_path / "state", {"apps/web/app.yaml": "wave: 1\n"})
    path = root / "apps/web/app.yaml"
    stamp = path.stat().st_mtime_ns
    assert listed(root, cache)["apps/web/app.yaml"].blob_id == blob_id(b"wave: 1\n")
    assert len(cache) == 0  # too recent to trust: not remembered

    path.write_text("wave: 2\n")  # same size, same inode
    os.utime(path, ns=(stamp, stamp))  # and the very same mtime
    assert listed(root, cache)["apps/web/app.yaml"].blob_id == blob_id(b"wave: 2\n")
    assert cache.hashed == 2 * 2  # both files hashed on both listings


def test_a_racy_file_is_trusted_once_it_is_old_enough(tmp_path: Path) -> None:
    now = [time.time_ns()]
    cache = StatCache(clock=lambda: now[0])
    root = write_tree(tmp_path / "state", {"apps/web/app.yaml": "wave: 1\n"})
    listed(root, cache)
    now[0] += 10**9  # one second later: still racy
    listed(root, cache)
    assert cache.hashed == 4 and len(cache) == 0
    now[0] += 2 * 10**9
    listed(root, cache)
    assert cache.hashed == 6 and len(cache) == 2
    listed(root, cache)
    assert cache.hashed == 6


def test_read_refuses_bytes_that_changed_after_the_listing(root: Path) -> None:
    tree = DirectoryTree(root, stat_cache=StatCache(clock=later_clock))
    entry = {e.path: e for e in tree.entries()}["apps/web/app.yaml"]
    (root / "apps/web/app.yaml").write_text("target: laptop\nwave: 9\n")
    with pytest.raises(ReconcilerError, match=r"^apps/web/app.yaml changed while"):
        tree.read(entry)


def test_one_cache_for_a_folder_and_a_folder_inside_it(root: Path) -> None:
    cache = StatCache(clock=later_clock)
    listed(root, cache)
    inner = listed(root / "apps/web", cache)
    assert cache.hashed == 7
    assert inner == listed(root / "apps/web", None)


def test_loads_through_a_shared_stat_cache(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "state", {
        "apps/web/app.yaml": "target: laptop\nwave: 1\n",
        "apps/web/files.yaml": "kind: Directory\npath: /srv/web\n",
        "apps/db/app.yaml": "target: laptop\nwave: 0\n",
    })
    stats, parsed = StatCache(clock=later_clock), LoadCache()
    first = load(DirectoryTree(root, stat_cache=stats), cache=parsed)
    assert first.apps["web"].wave == 1
    (root / "apps/web/app.yaml").write_text("target: laptop\nwave: 2\n")
    hashed, parses = stats.hashed, parsed.parses
    second = load(DirectoryTree(root, stat_cache=stats), cache=parsed)
    assert second.apps["web"].wave == 2 and second.apps["db"] == first.apps["db"]
    assert (stats.hashed - hashed, parsed.parses - parses) == (1, 1)


def test_bounded(root: Path) -> None:
    cache = StatCache(max_entries=3, clock=later_clock)
    assert listed(root, cache) == listed(root, None)
    assert len(cache) == 3
