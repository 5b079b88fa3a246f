"""Benchmark: cold load+validate, and warm re-load after a one-file commit.

Generates the synthetic repo of `gen_state.py` (1,000 apps, 10,000 resources)
in a temporary folder, then for each tree kind (a directory through
`reconciler.tree.DirectoryTree`, a commit through `reconciler.source.Mirror`
and its `GitTree`s) and each round:
- cold: a fresh source (a new StatCache, or a new Mirror object with an empty
  listing cache and a newly opened repository) and a fresh LoadCache; load
  and validate everything;
- warm: change one resource file, commit, load again with the same source and
  LoadCache, as the daemon's Engine does (it keeps one Mirror and one
  LoadCache for its life);
- listing: change the file again, commit, and time only listing the new tree
  with the same source (then load it, untimed, to keep the caches in step).
The files are left to age past the stat cache's two-second racy window before
the first cold load, as the files of a real state repo are; the file changed
in a round is always younger, so it is always hashed again.
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
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_state import commit_all, generate
from reconciler.load import LoadCache, load
from reconciler.source import Mirror
from reconciler.tree import DirectoryTree, StatCache, StateTree


class Source(Protocol):
    def tree(self, sha: str) -> StateTree: ...

    def work(self) -> int:
        """Files hashed (directory) or git trees walked (git) so far."""
        ...


class DirectorySource:
    def __init__(self, root: Path, data_dir: Path) -> None:
        self.root = root
        self.stat_cache = StatCache()

    def tree(self, sha: str) -> StateTree:
        return DirectoryTree(self.root, revision=sha, stat_cache=self.stat_cache)

    def work(self) -> int:
        return self.stat_cache.hashed


class GitSource:
    def __init__(self, root: Path, data_dir: Path) -> None:
        self.mirror = Mirror(str(root), data_dir)

    def tree(self, sha: str) -> StateTree:
        self.mirror.fetch()  # outside the timed part: only the load is timed
        return self.mirror.tree(sha)

    def work(self) -> int:
        return self.mirror.listings.trees_listed


SourceFactory = Callable[[Path, Path], Source]


def timed(fn: Callable[[], object]) -> float:
    """CPU seconds of `fn` (this process): on a shared machine wall time mostly
    measures the neighbours. The loader is single-threaded, so on an idle
    machine the two agree."""
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def change_one_file(root: Path, label: str) -> str:
    target = root / "apps" / "app-0001" / "config.yaml"
    target.write_text(target.read_text() + f"# change {label}\n")
    return commit_all(root, f"one-file change {label}")


def bench(name: str, factory: SourceFactory, root: Path, data_dir: Path, sha: str,
          repeat: int) -> None:
    colds, warms, cold_lists, warm_lists, work = [], [], [], [], []
    for round_ in range(repeat):
        cache = LoadCache()
        source = factory(root, data_dir)
        tree = source.tree(sha)
        colds.append(timed(lambda: load(tree, cache=cache)))  # noqa: B023
        sha = change_one_file(root, f"{round_}a")
        tree = source.tree(sha)
        parses, before = cache.parses, source.work()
        warms.append(timed(lambda: load(tree, cache=cache)))  # noqa: B023
        assert cache.parses == parses + 1, "the warm load parsed more than the changed file"
        work.append(source.work() - before)
        sha = change_one_file(root, f"{round_}b")
        tree = source.tree(sha)
        warm_lists.append(timed(lambda: list(tree.entries())))  # noqa: B023
        load(tree, cache=cache)
        fresh = factory(root, data_dir).tree(sha)
        cold_lists.append(timed(lambda: list(fresh.entries())))  # noqa: B023
    tree = factory(root, data_dir).tree(sha)
    tracemalloc.start()
    load(tree, cache=LoadCache())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    cold, warm, listing = min(colds), min(warms), min(warm_lists)
    unit = "files hashed" if name == "directory" else "trees walked"
    print(f"{name:10s} cold {cold * 1000:5.0f} ms   warm {warm * 1000:5.1f} ms   "
          f"ratio {cold / warm:5.1f}x   peak traced {peak / 2**20:5.1f} MiB")
    print(f"{'':10s} listing: cold {min(cold_lists) * 1000:.1f} ms, warm {listing * 1000:.1f} ms "
          f"({unit} in a warm load: {max(work)}); the warm loader without listing "
          f"{max(warm - listing, 0) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "state"
        sha = generate(root, apps=args.apps)
        written = time.time()
        desired = load(DirectoryTree(root))
        count = sum(len(a.resources) for a in desired.apps.values())
        print(f"{len(desired.apps)} apps, {count} resources")
        # Past the racy window, so that the stat cache may trust the files.
        time.sleep(max(0.0, written + 2.5 - time.time()))
        factories: tuple[tuple[str, SourceFactory], ...] = (
            ("directory", DirectorySource), ("git", GitSource))
        for name, factory in factories:
            bench(name, factory, root, Path(folder) / "data", sha, args.repeat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
