"""History writes per deploy, and their latency, on SQLite and on PostgreSQL.

A state repository of `--apps` VM apps with `--files` Files each, all on one
local-transport target (root in a temp directory), is deployed `--deploys`
times by the engine, each commit changing every file, once with the history in
SQLite under data_dir and once in a real PostgreSQL server started for the run
(Debian's package, as tests/support/postgres.py starts it, with fsync on, as a
production server runs). Every write transaction the history makes is timed
through its Database seam. Prints, per store: write transactions per deploy,
their p50/p95/max latency, and the total time a deploy spends writing history.

Usage: python bench/bench_history.py [--apps N] [--files N] [--deploys N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.engine import Engine, EngineSettings
from reconciler.history import HistorySettings
from reconciler.history.database import Cursor, Database
from tests.support.gitrepo import git
from tests.support.postgres import PASSWORD, start_postgres


class Timed:
    """A Database that times every write transaction of the one it wraps."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.name, self.types = inner.name, inner.types
        self.writes: list[float] = []

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        started = time.perf_counter()
        with self.inner.transaction(write=write) as cursor:
            yield cursor
        if write:
            self.writes.append(time.perf_counter() - started)

    def migration(self) -> AbstractContextManager[tuple[Cursor, int]]:
        return self.inner.migration()

    def set_version(self, cursor: Cursor, version: int) -> None:
        self.inner.set_version(cursor, version)

    def close(self) -> None:
        self.inner.close()


def write_state(repo: Path, root: Path, apps: int, files: int, version: int) -> None:
    (repo / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\ntargets:\n"
        f"  laptop: {{backend: vm, transport: local, root: {root}}}\n")
    for a in range(apps):
        folder = repo / f"apps/app{a}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "app.yaml").write_text(f"target: laptop\nwave: {a % 3}\n")
        (folder / "files.yaml").write_text("".join(
            f"---\nkind: File\npath: /etc/app{a}/f{f}.conf\ncontent: \"v{version}\\n\"\n"
            for f in range(files)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"version {version}")


def run(store: str, base: Path, args: argparse.Namespace, history: HistorySettings
        ) -> dict[str, float]:
    repo, root, data = base / "state", base / "root", base / "data"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    engine = Engine(EngineSettings(repo=str(repo), rev="refs/heads/main", data_dir=data,
                                   history=history))
    timed = Timed(engine.history.database)
    engine.history.database = timed
    per_deploy: list[int] = []
    spent: list[float] = []
    try:
        for version in range(args.deploys + 1):
            write_state(repo, root, args.apps, args.files, version)
            before = len(timed.writes)
            result = engine.sync()
            if result.result != "success":
                raise SystemExit(f"{store}: deploy {version} ended {result.result}: "
                                 f"{result.message}")
            if version == 0:
                continue  # the first deploy creates everything: not a steady one
            per_deploy.append(len(timed.writes) - before)
            spent.append(sum(timed.writes[before:]))
    finally:
        engine.close()
    writes = sorted(timed.writes[-sum(per_deploy):])
    return {
        "writes": statistics.mean(per_deploy),
        "p50": statistics.median(writes) * 1000,
        "p95": writes[max(0, int(len(writes) * 0.95) - 1)] * 1000,
        "max": writes[-1] * 1000,
        "per_deploy": statistics.mean(spent) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--deploys", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.apps} apps x {args.files} files, {args.deploys} deploys each changing "
          "every file")
    print(f"{'store':<11} {'writes/deploy':>13} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'ms/deploy':>10}")
    server = start_postgres(durable=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {
                "sqlite": HistorySettings(),
                "postgresql": HistorySettings(url=server.url(), password_file=Path(tmp) / "pw"),
            }
            (Path(tmp) / "pw").write_text(PASSWORD + "\n")
            for name, settings in stores.items():
                base = Path(tmp) / name
                base.mkdir()
                figures = run(name, base, args, settings)
                print(f"{name:<11} {figures['writes']:>13.1f} {figures['p50']:>8.2f} "
                      f"{figures['p95']:>8.2f} {figures['max']:>8.2f} "
                      f"{figures['per_deploy']:>10.1f}")
    finally:
        server.remove()


if __name__ == "__main__":
    main()
