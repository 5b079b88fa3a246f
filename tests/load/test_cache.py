"""The cache: an unchanged tree parses nothing; a one-file change parses one file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import ValidationError
from reconciler.load import LoadCache, load
from reconciler.tree import DirectoryTree

FILES = {
    "apps/a/app.yaml": "target: laptop\n",
    "apps/a/files.yaml": "kind: Directory\npath: /srv/a\n",
    "apps/b/app.yaml": "target: prod\nwave: 1\ndepends_on: [a]\n",
    "apps/b/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v}\n",
}


def test_unchanged_tree_parses_nothing(state: Callable[..., Path]) -> None:
    tree = DirectoryTree(state(FILES))
    cache = LoadCache()
    first = load(tree, cache=cache)
    assert cache.parses == 5  # reconciler.yaml and four app files
    second = load(tree, cache=cache)
    assert cache.parses == 5
    assert second == first


def test_one_changed_file_is_the_only_one_parsed(state: Callable[..., Path]) -> None:
    root = state(FILES)
    cache = LoadCache()
    load(DirectoryTree(root), cache=cache)
    (root / "apps/b/cm.yaml").write_text(FILES["apps/b/cm.yaml"].replace("v}", "w}"))
    desired = load(DirectoryTree(root), cache=cache)
    assert cache.parses == 6
    (configmap,) = desired.apps["b"].resources
    assert configmap.body["data"] == {"k": "w"}


def test_identical_files_share_one_parse(state: Callable[..., Path]) -> None:
    files = {f"apps/app{i}/app.yaml": "target: laptop\n" for i in range(5)}
    cache = LoadCache()
    desired = load(DirectoryTree(state(files)), cache=cache)
    assert cache.parses == 2
    assert sorted(desired.apps) == [f"app{i}" for i in range(5)]
    assert desired.apps["app3"].location.file == "apps/app3/app.yaml"


def test_problems_are_reported_again_from_the_cache(state: Callable[..., Path]) -> None:
    root = state({"apps/a/app.yaml": "target: laptop\nwave: one\n"})
    cache = LoadCache()
    messages = []
    for _ in range(2):
        with pytest.raises(ValidationError) as info:
            load(DirectoryTree(root), cache=cache)
        messages.append([str(p) for p in info.value.problems])
    assert messages[0] == messages[1] == [
        "apps/a/app.yaml:2: app.yaml: 'wave' must be an integer, not 'one'"]
    assert cache.parses == 2


@pytest.mark.parametrize(("keep", "parses"), [(1, 7), (2, 6)])
def test_entries_of_old_revisions_are_evicted(
    state: Callable[..., Path], keep: int, parses: int
) -> None:
    root = state(FILES)
    cache = LoadCache(keep=keep)
    load(DirectoryTree(root), cache=cache)
    (root / "apps/a/files.yaml").write_text("kind: Directory\npath: /srv/a2\n")
    load(DirectoryTree(root), cache=cache)
    (root / "apps/a/files.yaml").write_text(FILES["apps/a/files.yaml"])
    desired = load(DirectoryTree(root), cache=cache)
    # keep=1 forgot the first version of the file; keep=2 still had it.
    assert cache.parses == parses
    assert desired.apps["a"].resources[0].id.name == "/srv/a"
