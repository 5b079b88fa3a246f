"""Benchmark: API calls, wall time and CPU of Kubernetes plans over many objects,
on the real kube-apiserver.

Starts the test control plane of tests/support/kube_cluster.py (etcd,
kube-apiserver, controller-manager, scheduler, kwok) in a temporary folder, or
uses the cluster of $KUBECONFIG when set (in namespaces of its own, deleted at
the end), and talks to it through the recording proxy of
tests/support/kube_proxy.py, which counts every API call. Steps:
1. the first plan with nothing live (`read_live` + `reconciler.plan`);
2. the apply of its changes, one `backend.apply` per app (one app per
   namespace) on a thread pool of --workers;
3. a no-op plan right away, while the controllers still make ReplicaSets and
   write the Deployments' status (changes must be 0 all the same);
4. a wait until the Deployment controller has seen every Deployment (not a
   step: its writes would otherwise compete with the no-op plans for the CPU),
   then --repeat no-op plans through the proxy;
5. one no-op plan straight to the API server, without the proxy, and a replay
   of its GETs that only reads the bytes: what the server and the transfer
   cost, without the client's decoding and comparing; then one more with the
   client's main parts timed (JSON decoding, the "may differ" check, ...),
   and one with Python's cyclic garbage collector paused;
6. daemon mode, as `reconciler run` plans: a backend with the watch-fed live
   cache (backends/kubernetes/cache.py), its first plan (one LIST per scope,
   then one WATCH each), then --repeat warm no-op plans through the proxy and
   one without it; with the LISTs they make (0 expected) and the memory the
   cache holds (the process's resident set before and after).

The proxy runs in threads of this process: it decrypts and re-sends every
response and competes for the GIL, so the no-op plan is timed without it too.
"Client CPU" is the CPU time of the threads that ran the backend (the main
thread and the apply workers), not the proxy's; "process CPU" includes it.
The targets (docs/performance.md): a no-op plan of 10,000 objects under 2 s
wall with 0 writes; calls growing with kinds x namespaces, not with objects.

    python bench/bench_kube_plan.py [--namespaces 100] [--per-namespace 100]
        [--replicas 0] [--workers 4] [--repeat 3] [--profile cprofile|pyinstrument]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.base import BackendContext, Keeper
from backends.kubernetes import KubernetesBackend
from backends.kubernetes import open as open_backend
from bench import kube_bench
from reconciler import plan
from reconciler.model import Change, DesiredState, Target
from tests.support.kube_env import KubeEnv
from tests.support.kube_proxy import KubeProxy

TARGET_WALL = 2.0
KINDS = 3  # Namespace, ConfigMap, Deployment


@dataclass(frozen=True, kw_only=True)
class Step:
    label: str
    changes: int
    wall: float
    client_cpu: float
    process_cpu: float
    calls: dict[str, int]
    writes: int
    breakdown: dict[str, int]
    split: str = ""

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass
class Run:
    backend: KubernetesBackend
    state: DesiredState
    proxy: KubeProxy | None

    def plan(self) -> tuple[list[Change], str]:
        """One plan as the daemon makes it: read live state, then compare."""
        resources = [r for app in self.state.apps.values() for r in app.resources]
        began = time.perf_counter()
        view = self.backend.read_live(resources, {})
        read = time.perf_counter() - began
        changes = plan.plan(self.state, {kube_bench.TARGET: view}).changes()
        compare = time.perf_counter() - began - read
        return changes, f"read_live {read:.2f} s + compare {compare:.2f} s"

    def apply(self, changes: Sequence[Change], workers: int) -> float:
        """Apply `changes`, one app per task; returns the workers' CPU seconds."""
        by_app: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            by_app[change.app].append(change)

        def one(app: str) -> float:
            began = time.thread_time()
            self.backend.apply(self.state.apps[app], by_app[app])
            return time.thread_time() - began

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(one, sorted(by_app)))

    def measure(self, label: str, work: Callable[[], tuple[int, float, str]]) -> Step:
        """Time `work` (which returns changes, CPU of other threads, and a split)."""
        if self.proxy is not None:
            self.proxy.reset_counts()
        wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
        changes, other_cpu, split = work()
        wall = time.perf_counter() - wall
        thread = time.thread_time() - thread + other_cpu
        process = time.process_time() - process
        counts, writes, breakdown = {}, -1, {}
        if self.proxy is not None:
            counts = dict(sorted(self.proxy.counts().items()))
            writes = len(self.proxy.writes())
            breakdown = dict(kube_bench.call_breakdown(list(self.proxy.requests)))
        return Step(label=label, changes=changes, wall=wall, client_cpu=thread,
                    process_cpu=process, calls=counts, writes=writes, breakdown=breakdown,
                    split=split)


def print_step(step: Step) -> None:
    calls = ", ".join(f"{k} {v}" for k, v in step.calls.items()) or "not counted (no proxy)"
    writes = str(step.writes) if step.writes >= 0 else "-"
    print(f"{step.label:34s} {step.changes:6d} changes  {step.total_calls:6d} calls  "
          f"{writes:>6s} writes  {step.wall:7.2f} s wall  {step.client_cpu:6.2f} s client CPU  "
          f"{step.process_cpu:6.2f} s process CPU", flush=True)
    print(f"{'':34s} calls by method: {calls}")
    if step.breakdown:
        print(f"{'':34s} GETs: " + ", ".join(f"{k} {v}" for k, v in step.breakdown.items()))
    if step.split:
        print(f"{'':34s} {step.split}")


def plan_step(run: Run, label: str) -> tuple[Step, list[Change]]:
    found: list[Change] = []

    def work() -> tuple[int, float, str]:
        changes, split = run.plan()
        found.extend(changes)
        return len(changes), 0.0, split

    step = run.measure(label, work)
    print_step(step)
    return step, found


def open_run(state: DesiredState, kubeconfig: Path, tmp: Path, proxy: KubeProxy | None,
             keeper: Keeper | None = None) -> Run:
    """A backend as `reconciler plan` opens it, or with `keeper` as the daemon does."""
    base = state.targets[kube_bench.TARGET]
    target = Target(name=base.name, backend=base.backend, location=base.location,
                    options={**base.options, "kubeconfig": str(kubeconfig)})
    backend = open_backend(target, BackendContext(data_dir=tmp, keeper=keeper))
    return Run(backend=backend, state=state, proxy=proxy)


def daemon_phase(state: DesiredState, kubeconfig: Path, direct: Path, tmp: Path,
                 proxy: KubeProxy, args: argparse.Namespace) -> tuple[list[Step], Step]:
    """No-op plans from the watch-fed cache: warm ones through the proxy, one without."""
    print("\n--- daemon mode: live state from the watch-fed cache ---")
    keeper, direct_keeper = Keeper(), Keeper()
    try:
        run = open_run(state, kubeconfig, tmp, proxy, keeper)
        before = kube_bench.rss_mib()
        plan_step(run, "daemon: first plan (LIST, WATCH)")
        cache = run.backend.cache
        assert cache is not None
        scopes = cache.scopes()
        watching = kube_bench.wait_for(lambda: cache.watching() == scopes, 60.0)
        held = kube_bench.rss_mib() - before
        print(f"{'':34s} {scopes} scopes, {cache.watching()} watched "
              f"({'all' if watching else 'NOT all'}); resident set +{held:.0f} MiB")
        warm = [plan_step(run, f"daemon: no-op plan {i + 1}, warm")[0]
                for i in range(args.repeat)]
        print(f"{'':34s} cache: {cache.stats.lists} LISTs, {cache.stats.watches} WATCHes, "
              f"{cache.stats.events} events, {cache.stats.relists} re-lists")
        direct_run = open_run(state, direct, tmp, None, direct_keeper)
        plan_step(direct_run, "daemon: first plan, no proxy")
        direct_cache = direct_run.backend.cache
        assert direct_cache is not None
        kube_bench.wait_for(lambda: direct_cache.watching() == scopes, 60.0)
        unproxied, _ = plan_step(direct_run, "daemon: no-op plan, warm, no proxy")
        return warm, unproxied
    finally:
        keeper.close()
        direct_keeper.close()


def profile_noop(run: Run, how: str) -> None:
    """One more no-op plan under a profiler; the report goes to stdout."""
    print(f"\n--- profile of a no-op plan ({how}) ---")
    if how == "pyinstrument":
        from pyinstrument import Profiler  # type: ignore[import-not-found, unused-ignore]

        profiler = Profiler(interval=0.001)
        profiler.start()
        run.plan()
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        return
    import cProfile
    import pstats

    with cProfile.Profile() as prof:
        run.plan()
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(25)


def direct_kubeconfig(env: KubeEnv) -> Path:
    if env.plane is not None:
        return env.plane.admin_kubeconfig
    return Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])


def summary(args: argparse.Namespace, objects: int, noops: Sequence[Step], busy: Step,
            direct: Step, env: KubeEnv, warm: Sequence[Step], warm_direct: Step) -> None:
    wall = statistics.median(s.wall for s in noops)
    writes = max(s.writes for s in noops)
    calls = noops[-1].total_calls
    cells = KINDS * args.namespaces
    verdict = "met" if wall < TARGET_WALL else "MISSED"
    print("\n--- summary ---")
    print(f"no-op plan wall: {wall:.2f} s median of {len(noops)} through the proxy "
          f"({wall / TARGET_WALL:.2f}x the {TARGET_WALL:.0f} s target: {verdict}); "
          f"{direct.wall:.2f} s without the proxy "
          f"({'met' if direct.wall < TARGET_WALL else 'MISSED'})")
    print(f"no-op writes: {writes} (must be 0: {'met' if writes == 0 else 'MISSED'}); "
          f"while the controllers were busy: {busy.changes} changes, {busy.writes} writes, "
          f"{busy.wall:.2f} s wall")
    print(f"no-op calls: {calls} for {KINDS} kinds x {args.namespaces} namespaces = {cells} "
          f"({calls / cells:.2f} per kind-namespace, {calls / objects:.4f} per object)")
    warm_wall = statistics.median(s.wall for s in warm)
    warm_lists = max(s.breakdown.get("owned lists", 0) + s.breakdown.get("namespace lists", 0)
                     + s.breakdown.get("cluster lists", 0) + s.breakdown.get("next pages", 0)
                     for s in warm)
    print(f"daemon mode (watch-fed cache), warm no-op plan: {warm_wall:.2f} s median of "
          f"{len(warm)} through the proxy "
          f"({'met' if warm_wall < TARGET_WALL else 'MISSED'}), {warm_direct.wall:.2f} s "
          f"without it; {warm_lists} LISTs, {max(s.writes for s in warm)} writes, "
          f"{warm[-1].total_calls} calls (discovery)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (client + proxy): {rss:.0f} MiB")
    if env.plane is not None:
        for name in ("kube-apiserver", "etcd", "kube-controller-manager"):
            peak = kube_bench.peak_rss_mib(env.plane.processes[name].pid)
            if peak is not None:
                print(f"peak RSS of {name}: {peak:.0f} MiB")


def apply_phase(run: Run, env: KubeEnv, args: argparse.Namespace, prefix: str) -> Step:
    """First plan, apply, a no-op plan at once, then wait for the controllers."""
    _, changes = plan_step(run, "first plan (nothing live)")
    print_step(run.measure("apply", lambda: (len(changes), run.apply(changes, args.workers), "")))
    busy, _ = plan_step(run, "no-op plan, controllers busy")
    deployments = args.per_namespace // 2 * args.namespaces
    waited, behind = kube_bench.wait_settled(env, prefix, deployments, args.settle_timeout)
    print(f"(Deployment controller caught up in {waited:.0f} s; {behind} still behind)")
    return busy


def direct_phase(run: Run, env: KubeEnv, args: argparse.Namespace,
                 recorded: Sequence[tuple[str, str, str]]) -> Step:
    """No-op plans without the proxy: plain, the raw replay, parts timed, profiled."""
    direct, _ = plan_step(run, "no-op plan, no proxy")
    raw = kube_bench.replay(env.upstream, recorded)
    print(f"{'replay of its GETs, raw':34s} {raw.seconds:.2f} s wall for "
          f"{raw.size / 2**20:.1f} MiB of JSON ({raw.owned_size / 2**20:.1f} MiB of it "
          f"from the owned-object LISTs)")
    print(f"{'':34s} json.loads of it all: {raw.decode:.2f} s dropping each body, "
          f"{raw.decode_kept:.2f} s keeping them all")
    with kube_bench.timed_parts() as spent:
        plan_step(run, "no-op plan, no proxy, parts timed")
    print(f"{'':34s} of which " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in spent.items()))
    # What the cyclic GC costs the plan: the same plan with it paused.
    gc.collect()
    gc.disable()
    try:
        plan_step(run, "no-op plan, no proxy, GC paused")
    finally:
        gc.enable()
    if args.profile:
        profile_noop(run, args.profile)
    return direct


def bench(env: KubeEnv, args: argparse.Namespace, tmp: Path) -> None:
    prefix = kube_bench.namespace_prefix()
    namespaces = [f"{prefix}-{n:03d}" for n in range(args.namespaces)]
    proxy = KubeProxy.start(env.upstream)
    kubeconfig = proxy.write_kubeconfig(tmp / "kubeconfig")
    state = kube_bench.desired_state(kubeconfig, namespaces, args.per_namespace, args.replicas)
    objects = sum(len(a.resources) for a in state.apps.values())
    print(f"{objects} objects in {args.namespaces} namespaces (Namespaces, ConfigMaps, "
          f"Deployments with replicas: {args.replicas}); apply on {args.workers} threads",
          flush=True)
    run = open_run(state, kubeconfig, tmp, proxy)
    direct_run = open_run(state, direct_kubeconfig(env), tmp, None)
    try:
        busy = apply_phase(run, env, args, prefix)
        noops = [plan_step(run, f"no-op plan {i + 1}")[0] for i in range(args.repeat)]
        direct = direct_phase(direct_run, env, args, list(proxy.requests))
        warm, warm_direct = daemon_phase(state, kubeconfig, direct_kubeconfig(env), tmp,
                                         proxy, args)
        summary(args, objects, noops, busy, direct, env, warm, warm_direct)
    finally:
        run.backend.close()
        direct_run.backend.close()
        proxy.stop()
        if env.plane is None:
            kube_bench.drop_namespaces(env, namespaces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--per-namespace", type=int, default=100,
                        help="objects per namespace besides the Namespace (half ConfigMaps)")
    parser.add_argument("--replicas", type=int, default=0, help="of every Deployment")
    parser.add_argument("--workers", type=int, default=4, help="apply threads")
    parser.add_argument("--repeat", type=int, default=3, help="no-op plans through the proxy")
    parser.add_argument("--settle-timeout", type=float, default=1800.0,
                        help="seconds to wait for the Deployment controller")
    parser.add_argument("--profile", choices=("cprofile", "pyinstrument"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, KubeEnv.open(Path(tmp)) as env:
        bench(env, args, Path(tmp))


if __name__ == "__main__":
    main()
