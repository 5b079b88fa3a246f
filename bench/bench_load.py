"""Benchmark: cold load+validate, and warm re-load after a one-file commit.

Generates the synthetic repo of `gen_state.py` (1,000 apps, 10,000 resources)
in a temporary folder, then for each tree kind (a directory through
`reconciler.tree.DirectoryTree`, a commit through `reconciler.source.GitTree`):
- cold: a fresh process-level cache, load and validate everything;
- warm: change one resource file, commit, load again with the same cache.
Times are CPU seconds of this process (see `timed`). Peak memory is
tracemalloc's peak over a cold load (Python allocations) and
the process's ru_maxrss at the end. Budgets (docs/performance.md): cold under
3 s and 300 MB, warm at least 20x faster than cold.

Usage: python bench/bench_load.py [--apps N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_state import commit_all, generate
from reconciler.load import LoadCache, load
from reconciler.tree import DirectoryTree, StateTree

TreeFactory = Callable[[Path, str], StateTree]


def directory_tree(root: Path, sha: str) -> StateTree:
    return DirectoryTree(root, revision=sha)


def git_tree(root: Path, sha: str) -> StateTree:
    import pygit2

    from reconciler.source import GitTree

    repo = pygit2.Repository(str(root))
    commit = repo[sha]
    assert isinstance(commit, pygit2.Commit)
    return GitTree(repo, sha, commit.tree)


def timed(fn: Callable[[], object]) -> float:
    """CPU seconds of `fn` (this process): on a shared machine wall time mostly
    measures the neighbours. The loader is single-threaded, so on an idle
    machine the two agree."""
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def bench(name: str, factory: TreeFactory, root: Path, sha: str, repeat: int) -> None:
    colds, warms = [], []
    for round_ in range(repeat):
        cache = LoadCache()
        tree = factory(root, sha)
        colds.append(timed(lambda: load(tree, cache=cache)))  # noqa: B023
        target = root / "apps" / "app-0001" / "config.yaml"
        target.write_text(target.read_text() + f"# change {round_}\n")
        sha = commit_all(root, f"one-file change {round_}")
        tree = factory(root, sha)
        parses = cache.parses
        warms.append(timed(lambda: load(tree, cache=cache)))  # noqa: B023
        assert cache.parses == parses + 1, "the warm load parsed more than the changed file"
    listing = min(timed(lambda: list(factory(root, sha).entries())) for _ in range(repeat))
    tree = factory(root, sha)
    tracemalloc.start()
    load(tree, cache=LoadCache())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    cold, warm = min(colds), min(warms)
    print(f"{name:10s} cold {cold * 1000:5.0f} ms   warm {warm * 1000:5.1f} ms   "
          f"ratio {cold / warm:5.1f}x   peak traced {peak / 2**20:5.1f} MiB")
    print(f"{'':10s} of the warm time, listing the tree took {listing * 1000:.1f} ms; "
          f"the loader {max(warm - listing, 0) * 1000:.1f} ms "
          f"(ratio without listing {cold / max(warm - listing, 1e-6):.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "state"
        sha = generate(root, apps=args.apps)
        desired = load(DirectoryTree(root))
        count = sum(len(a.resources) for a in desired.apps.values())
        print(f"{len(desired.apps)} apps, {count} resources")
        for name, factory in (("directory", directory_tree), ("git", git_tree)):
            bench(name, factory, root, sha, args.repeat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
