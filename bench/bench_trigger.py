"""Latency from `git commit` to rollout start, with the file watch and with polling.

A small state repository (one VM app on the local transport, root in a temp
directory) is committed to with the git CLI while an in-process daemon runs.
For each commit the latency is the deploy's start time in the history minus
the moment `git commit` returned. Two modes: the ref file watch (poll interval
one hour, so only the watch can explain a fast start), and polling every
second with the watch off. Prints median and p95 per mode.

Usage: python bench/bench_trigger.py [--commits N]
Target: median under 300 ms with the file watch.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.service import Daemon, wait_idle
from tests.support.gitrepo import git


def write_state(repo: Path, root: Path, version: int) -> None:
    (repo / "apps/web").mkdir(parents=True, exist_ok=True)
    (repo / "reconciler.yaml").write_text(
        f"apiVersion: reconciler/v1\ntargets:\n  laptop: {{backend: vm, transport: local, "
        f"root: {root}}}\n")
    (repo / "apps/web/app.yaml").write_text("target: laptop\n")
    (repo / "apps/web/files.yaml").write_text(
        f"kind: File\npath: /etc/web.conf\ncontent: \"version {version}\\n\"\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"version {version}")


def measure(base: Path, commits: int, *, watch: bool) -> list[float]:
    repo, root, data = base / "state", base / "root", base / "data"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_state(repo, root, 0)
    config = DaemonConfig(repo=str(repo), data_dir=data, listen=None, drift_interval=0,
                          poll_interval=3600.0 if watch else 1.0, watch=watch)
    daemon = Daemon(config, data)
    daemon.start()
    latencies: list[float] = []
    # Commits land at random phases of the poll timer, as they do in real life.
    jitter = random.Random(7)
    try:
        wait_idle(daemon, 30)
        for version in range(1, commits + 1):
            time.sleep(jitter.uniform(0.1, 1.1))
            before = len(daemon.history.deploys(limit=1000))
            write_state(repo, root, version)
            committed = time.time()
            deadline = time.monotonic() + 10
            while len(daemon.history.deploys(limit=1000)) == before:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no rollout within 10 s of commit {version}")
                time.sleep(0.005)
            latencies.append(daemon.history.deploys(limit=1)[0].started - committed)
            wait_idle(daemon, 30)
    finally:
        daemon.stop(timeout=30)
    return latencies


def report(name: str, values: list[float]) -> None:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<22} n={len(values):<3} median={statistics.median(values) * 1000:7.1f} ms"
          f"  p95={p95 * 1000:7.1f} ms  max={ordered[-1] * 1000:7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as watch_dir, tempfile.TemporaryDirectory() as poll_dir:
        watched = measure(Path(watch_dir), args.commits, watch=True)
        polled = measure(Path(poll_dir), args.commits, watch=False)
    report("file watch", watched)
    report("poll every 1 s", polled)
    return 0 if statistics.median(watched) < 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
