"""Benchmark: API calls and wall time of a YARN live read + plan of many services,
on a real ResourceManager.

Starts the MiniYARNCluster of tests/support/yarn_cluster.py (built by
.ci/build-yarn) in a temporary folder, or uses the RM at --url, and talks to it
through the recording proxy of tests/support/yarn_proxy.py, which counts every
API call. One app owns --services services: --running of them run (an
ApplicationMaster and one container each, as local processes), the rest are
declared `state: STOPPED`, which YARN only saves. Running every service would
start one ApplicationMaster JVM per service, more than a 2-core machine holds.
Steps:
1. the first plan with nothing live (`read_live` + `reconciler.plan`);
2. the apply of its creates, then a wait until the running ones are STABLE;
3. --repeat no-op plans: the changes must be 0, and no write is made.

Hadoop's ApiServer does not serve the list call (503), so a read costs one GET
per service: the RM asks a running service's ApplicationMaster for its status
and answers a stopped one from its saved state. Per-GET latencies are printed
for both. The services are destroyed at the end.

    python bench/bench_yarn_plan.py [--services 50] [--running 10] [--repeat 3] [--url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backends.yarn
from backends.base import Backend, BackendContext
from reconciler import plan
from reconciler.model import (
    App,
    BackendKind,
    Change,
    DesiredState,
    Location,
    Resource,
    ResourceId,
    Target,
)
from tests.support.yarn_cluster import RmClient, YarnCluster
from tests.support.yarn_proxy import YarnProxy

TARGET = "bench"
APP = "batch"


def spec(name: str, running: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "resource": {"cpus": 1, "memory": "64"},
        "configuration": {"env": {"TIER": "bench"}},
        "components": [
            {"name": "worker", "number_of_containers": 1, "launch_command": "sleep 900000"}
        ],
    }
    if not running:
        body["state"] = "STOPPED"
    return body


def desired_state(url: str, names: Sequence[str], running: int) -> DesiredState:
    target = Target(
        name=TARGET,
        backend=BackendKind.YARN,
        options={"url": url, "user": "deploy", "poll_interval": 0.5, "timeout": 60},
        location=Location(file="reconciler.yaml", line=1),
    )
    resources = tuple(
        Resource(
            id=ResourceId(kind="Service", name=n),
            app=APP,
            body=spec(n, i < running),
            location=Location(file=f"apps/{APP}/{n}.yaml", line=1),
        )
        for i, n in enumerate(names)
    )
    app = App(name=APP, target=TARGET, resources=resources,
              location=Location(file=f"apps/{APP}/app.yaml"))
    return DesiredState(revision="bench", targets={TARGET: target}, apps={APP: app})


def plan_once(backend: Backend, state: DesiredState, proxy: YarnProxy
              ) -> tuple[list[Change], float, int, int]:
    """(changes, wall seconds, API calls, writes) of one live read + plan."""
    proxy.reset()
    resources = list(state.apps[APP].resources)
    began = time.perf_counter()
    view = backend.read_live(resources, {})
    changes = plan.plan(state, {TARGET: view}).changes()
    wall = time.perf_counter() - began
    return changes, wall, len(proxy.requests), len(proxy.writes())


def get_latencies(rm: RmClient, names: Sequence[str]) -> list[float]:
    out = []
    for name in names:
        began = time.perf_counter()
        rm.service(name)
        out.append(time.perf_counter() - began)
    return out


def create_all(backend: Backend, state: DesiredState, proxy: YarnProxy, rm: RmClient,
               running: Sequence[str]) -> None:
    first, wall, calls, writes = plan_once(backend, state, proxy)
    print(f"first plan (nothing live): {len(first)} changes, {wall:.2f} s, "
          f"{calls} API calls, {writes} writes")
    began = time.perf_counter()
    backend.apply(state.apps[APP], first)
    print(f"apply: {len(first)} creates in {time.perf_counter() - began:.2f} s")
    began = time.perf_counter()
    for name in running:
        rm.wait(name, lambda s: s is not None and s.get("state") == "STABLE",
                timeout=600, what="waiting for STABLE")
    print(f"{len(running)} running services STABLE after {time.perf_counter() - began:.1f} s")


def noop_plans(backend: Backend, state: DesiredState, proxy: YarnProxy, repeat: int) -> None:
    walls = []
    for i in range(repeat):
        changes, wall, calls, writes = plan_once(backend, state, proxy)
        walls.append(wall)
        print(f"no-op plan {i + 1}: {len(changes)} changes, {wall:.3f} s, "
              f"{calls} API calls, {writes} writes")
    services = len(state.apps[APP].resources)
    print(f"no-op plan of {services} services: median {statistics.median(walls):.3f} s")


def bench(url: str, args: argparse.Namespace) -> None:
    prefix = f"b{uuid.uuid4().hex[:5]}"
    names = [f"{prefix}-svc-{i:03d}" for i in range(args.services)]
    rm = RmClient(url, "deploy")
    with YarnProxy(url) as proxy:
        state = desired_state(proxy.url, names, args.running)
        backend = backends.yarn.open(state.targets[TARGET], BackendContext(data_dir=Path(".")))
        try:
            create_all(backend, state, proxy, rm, names[: args.running])
            noop_plans(backend, state, proxy, args.repeat)
            for label, group in (("running", names[: args.running]),
                                 ("stopped", names[args.running:])):
                if group:
                    median = statistics.median(get_latencies(rm, group)) * 1000
                    print(f"GET of a {label} service: median {median:.1f} ms")
        finally:
            backend.close()
            for name in names:
                rm.destroy(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--running", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="an RM with the Services API (default: start one)")
    args = parser.parse_args()
    if args.url:
        bench(args.url, args)
        return
    with YarnCluster.start() as cluster:
        print(f"MiniYARNCluster started in {cluster.startup_seconds:.1f} s")
        bench(cluster.url, args)


if __name__ == "__main__":
    main()
