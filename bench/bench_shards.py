"""Benchmark: a no-op sync of a real-sshd fleet, by one replica vs over 4 shards.

A fleet of real sshd hosts on 127.0.0.2... (tests/support/sshd.py) is split
into targets of `--hosts-per-target` hosts each; each target has one app of
`--files` files per host. The targets are spread over `--shards` shards with
the daemon's own hash (`reconciler.daemon.shards.shard_of`), and the spread is
printed. After a first sync applies everything, two no-op syncs are timed
(read live state over SSH, compare, apply nothing):

- one replica: one `reconciler sync` process over every target;
- shards: one `reconciler sync --target ...` process per shard, all at once,
  each over its shard's targets and with a data directory of its own, as one
  replica per shard would run them; the wall time is until the last ends;
- the largest shard alone: what one replica takes for its shard when each
  replica has a node (cores) of its own.

Both include the process start (imports, the mirror's fetch), the same for
each process. The machine's cores bound what shards can gain: on 2 cores, 4
processes share 2.

Usage: python bench/bench_shards.py [--hosts 40] [--hosts-per-target 5] [--files 10]
                                    [--shards 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reconciler.daemon.shards import shard_of  # noqa: E402
from tests.support import sshd  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com",
           "HOME": "/nonexistent", "PATH": "/usr/bin:/bin:/usr/local/bin"}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def state_repo(base: Path, fleet: sshd.SshFleet, per_target: int, files: int) -> list[str]:
    """The state repository: targets of `per_target` hosts; returns target names."""
    repo, roots = base / "state", base / "roots"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    targets: dict[str, str] = {}
    for index in range(0, len(fleet.hosts), per_target):
        group = fleet.hosts[index:index + per_target]
        name = f"group-{index // per_target}"
        for host in group:
            (roots / host.spec).mkdir(parents=True)
        hosts = ", ".join(h.spec for h in group)
        targets[name] = (
            f"{{backend: vm, transport: ssh, hosts: [{hosts}], user: {fleet.user}, "
            f"identity_file: {fleet.identity_file}, known_hosts: {fleet.known_hosts}, "
            f"root: \"{roots}/{{host}}\"}}")
        app = repo / "apps" / name
        app.mkdir(parents=True)
        (app / "app.yaml").write_text(f"target: {name}\n")
        (app / "files.yaml").write_text("".join(
            f"---\nkind: File\npath: /srv/{name}/conf-{i}.ini\n"
            f"content: {json.dumps(line)}\n"
            for i, line in enumerate(f"value {i}\n" for i in range(files))))
    (repo / "reconciler.yaml").write_text(
        "apiVersion: reconciler/v1\ntargets:\n"
        + "".join(f"  {n}: {spec}\n" for n, spec in targets.items()))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fleet")
    return sorted(targets)


def sync(repo: Path, data_dir: Path, targets: list[str]) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "reconciler", "sync", "--repo", f"file://{repo}",
            "--data-dir", str(data_dir)]
    for name in targets:
        args += ["--target", name]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def wait_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"reconciler sync failed ({proc.returncode}): "
                             f"{err.decode()[-2000:]}")


def timed(start: list[tuple[Path, list[str]]], repo: Path) -> float:
    began = time.perf_counter()
    wait_all([sync(repo, data, targets) for data, targets in start])
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--hosts-per-target", type=int, default=5)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        base = Path(tmp)
        began = time.perf_counter()
        fleet = sshd.start_fleet(base / "fleet", args.hosts)
        print(f"{args.hosts} sshd hosts up in {time.perf_counter() - began:.1f}s")
        try:
            targets = state_repo(base, fleet, args.hosts_per_target, args.files)
            repo = base / "state"
            shards = [[t for t in targets if shard_of(t, args.shards) == i]
                      for i in range(args.shards)]
            spread = [len(s) * args.hosts_per_target for s in shards]
            print(f"{len(targets)} targets of {args.hosts_per_target} hosts, "
                  f"{args.files} files each; hosts per shard: {spread}")
            one = [(base / "one", targets)]
            sharded = [(base / f"shard-{i}", s) for i, s in enumerate(shards) if s]
            first = timed(one, repo)
            timed(sharded, repo)  # each shard's data directory: no-op, fetched once
            print(f"first sync (applies everything), one replica: {first:.2f}s")
            single = [timed(one, repo) for _ in range(args.repeat)]
            parallel = [timed(sharded, repo) for _ in range(args.repeat)]
            largest = max(sharded, key=lambda item: len(item[1]))
            alone = [timed([largest], repo) for _ in range(args.repeat)]
            print(f"no-op sync, one replica:      median {statistics.median(single):.2f}s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in single)})")
            print(f"no-op sync, {len(sharded)} shards at once: "
                  f"median {statistics.median(parallel):.2f}s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in parallel)})")
            print(f"no-op sync, largest shard alone ({len(largest[1])} targets): "
                  f"median {statistics.median(alone):.2f}s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in alone)})")
            print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
        finally:
            fleet.stop()


if __name__ == "__main__":
    main()
