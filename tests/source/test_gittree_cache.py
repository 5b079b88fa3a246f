"""GitTree's listing cache: the same entries as a full walk, with less walking."""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from reconciler.source import GitTree, Mirror
from reconciler.source.gittree import ListingCache
from reconciler.tree import EntryKind, TreeEntry
from tests.source.conftest import Origin

Files = Mapping[str, bytes]


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo.git"), bare=True)


def commit(repo: pygit2.Repository, files: Files, *, links: Files | None = None,
           modules: Mapping[str, str] | None = None) -> pygit2.Commit:
    """A commit of exactly these files (symlinks and gitlinks too), without a worktree."""
    index = pygit2.Index()
    for path, data in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), FileMode.BLOB))
    for path, target in (links or {}).items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(target), FileMode.LINK))
    for path, sha in (modules or {}).items():
        index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=sha), FileMode.COMMIT))
    signature = pygit2.Signature("Ada", "ada@example.com", 1700000000, 0)
    oid = repo.create_commit(None, signature, signature, "state", index.write_tree(repo), [])
    made = repo[oid]
    assert isinstance(made, pygit2.Commit)
    return made


def listing(repo: pygit2.Repository, made: pygit2.Commit,
            cache: ListingCache | None) -> list[TreeEntry]:
    return list(GitTree(repo, str(made.id), made.tree, cache).entries())


# Names that catch a wrong order: "-" and "." sort before "/", "0" after it,
# so the folder "a" belongs between "a.b" and "a0", not before "a-c".
TRICKY = {
    "a/x.yaml": b"x\n", "a/y/z.yaml": b"z\n", "a-c": b"c\n", "a.b": b"b\n", "a0": b"0\n",
    "apps/web/app.yaml": b"target: laptop\n", "apps/web/files/blob.bin": bytes(range(256)),
    "apps/db/app.yaml": b"target: db\n", "reconciler.yaml": b"targets: {}\n",
}


def test_cached_listing_equals_the_uncached_walk_and_is_in_path_order(
        repo: pygit2.Repository) -> None:
    made = commit(repo, TRICKY, links={"apps/web/current": b"files/blob.bin"},
                  modules={"vendor/lib": "ab" * 20})
    plain = listing(repo, made, None)
    cache = ListingCache()
    cold, warm = listing(repo, made, cache), listing(repo, made, cache)
    assert cold == warm == plain
    assert [e.path for e in plain] == sorted(e.path for e in plain)
    kinds = {e.path: e.kind for e in plain}
    assert kinds["apps/web/current"] is EntryKind.SYMLINK
    assert kinds["vendor/lib"] is EntryKind.SUBMODULE
    size = {e.path: e.size for e in plain}["apps/web/files/blob.bin"]
    assert size == 256


def test_a_one_file_commit_walks_only_the_trees_on_its_path(repo: pygit2.Repository) -> None:
    files = {f"apps/app{a}/r{n}.yaml": f"app: {a}\nn: {n}\n".encode()
             for a in range(20) for n in range(5)}
    files["reconciler.yaml"] = b"targets: {}\n"
    cache = ListingCache()
    first = commit(repo, files)
    listing(repo, first, cache)
    assert cache.trees_listed == 22  # the root, apps/ and 20 app folders

    changed = {**files, "apps/app7/r3.yaml": b"app: 7\nn: changed\n"}
    second = commit(repo, changed)
    entries = listing(repo, second, cache)
    assert cache.trees_listed == 22 + 3  # the root, apps/ and apps/app7/ only
    assert entries == listing(repo, second, None)
    by_path = {e.path: e for e in entries}
    assert by_path["apps/app7/r3.yaml"].blob_id == str(repo.create_blob(b"app: 7\nn: changed\n"))
    # Unchanged files come back as the very entries of the first listing.
    old = {e.path: e for e in listing(repo, first, cache)}
    assert by_path["apps/app8/r0.yaml"] is old["apps/app8/r0.yaml"]
    assert cache.trees_listed == 25  # the first commit was still cached


def test_the_same_tree_at_two_paths_keeps_each_path(repo: pygit2.Repository) -> None:
    same = {"apps/a/app.yaml": b"wave: 1\n", "apps/b/app.yaml": b"wave: 1\n"}
    made = commit(repo, same)
    assert made.tree["apps/a"].id == made.tree["apps/b"].id
    cache = ListingCache()
    assert [e.path for e in listing(repo, made, cache)] == list(same)
    # A state root inside the repository: paths relative to it, though the
    # same tree was cached above under its path from the repository root.
    inner = made.tree["apps/a"]
    assert isinstance(inner, pygit2.Tree)
    paths = [e.path for e in GitTree(repo, str(made.id), inner, cache).entries()]
    assert paths == ["app.yaml"]


def test_mirror_trees_share_the_mirror_cache(origin: Origin, data_dir: Path) -> None:
    mirror = Mirror(str(origin.bare), data_dir)
    mirror.fetch()
    first = mirror.resolve("main")
    before = list(mirror.tree(first).entries())
    walked = mirror.listings.trees_listed
    assert list(mirror.tree(first).entries()) == before
    assert mirror.listings.trees_listed == walked  # a new GitTree, no new walk

    second = origin.commit({"apps/web/app.yaml": b"target: laptop\nwave: 2\n"}, "wave 2")
    mirror.fetch()
    after = {e.path: e for e in mirror.tree(second).entries()}
    assert mirror.listings.trees_listed == walked + 3  # root, apps/, apps/web/
    assert mirror.tree(second).read(after["apps/web/app.yaml"]) == b"target: laptop\nwave: 2\n"
    assert after["reconciler.yaml"] == {e.path: e for e in before}["reconciler.yaml"]
    sub = [e.path for e in mirror.tree(second, "apps/web").entries()]
    assert sub == ["app.yaml", "current", "files/blob.bin"]


def test_the_bound_evicts_old_listings_without_changing_results(
        repo: pygit2.Repository) -> None:
    cache = ListingCache(max_entries=30)
    commits = [commit(repo, {f"apps/app{a}/app.yaml": f"v: {v}\n".encode() for a in range(4)})
               for v in range(6)]
    for made in commits:
        assert listing(repo, made, cache) == listing(repo, made, None)
    # Each commit adds the root (4 entries), apps/ (4) and four app folders (1
    # each), every listing counted one more so that empty trees count: 18 per
    # commit, 108 for all six, while the bound keeps at most 30.
    assert len(cache) <= 30 // 2
    walked = cache.trees_listed
    assert listing(repo, commits[0], cache) == listing(repo, commits[0], None)
    assert cache.trees_listed > walked  # the oldest commit was evicted and walked again


def test_threads_listing_different_commits_share_one_cache(repo: pygit2.Repository) -> None:
    commits = [commit(repo, {f"apps/app{a}/r.yaml": f"{a} {v}\n".encode() for a in range(30)})
               for v in range(4)]
    expected = [listing(repo, made, None) for made in commits]
    cache = ListingCache()
    failures: list[int] = []

    def run(i: int) -> None:
        # pygit2 objects are not shared between threads: each opens the repository.
        own = pygit2.Repository(repo.path)
        made = own[commits[i % 4].id]
        assert isinstance(made, pygit2.Commit)
        for _ in range(5):
            if listing(own, made, cache) != expected[i % 4]:
                failures.append(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_folders_nested_deeper_than_the_recursion_limit(repo: pygit2.Repository) -> None:
    depth = sys.getrecursionlimit() + 100
    builder = repo.TreeBuilder()
    builder.insert("leaf.yaml", repo.create_blob(b"deep\n"), FileMode.BLOB)
    tree_id = builder.write()
    for _ in range(depth - 1):
        builder = repo.TreeBuilder()
        builder.insert("d", tree_id, FileMode.TREE)
        tree_id = builder.write()
    root = repo[tree_id]
    assert isinstance(root, pygit2.Tree)
    entries = list(GitTree(repo, "deep", root, ListingCache()).entries())
    assert [e.path for e in entries] == ["d/" * (depth - 1) + "leaf.yaml"]
