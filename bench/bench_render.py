"""Benchmark: rendering N Kustomize apps cold, then warm after a one-app commit.

Writes a state repository with one Kustomize base outside apps/ (a Deployment,
a Service and a generated ConfigMap) and N overlay apps, each in a namespace
of its own with a patch and a ConfigMap literal of its own, commits it with
the git CLI, and reads every commit through a bare mirror (`Mirror.tree`), as
the daemon does. Then, for each round:
- cold: a fresh Renderer (empty render cache) and LoadCache; render and load
  every app (`load_rendered`);
- warm: change one overlay's patch, commit, render and load that commit with
  the same Renderer, LoadCache and Mirror, as the Engine keeps them.
Times are wall-clock seconds (the renders are other processes; the renderer
runs up to 4 at once, on however many cores there are). Each round checks
that the warm load ran exactly one render and produced the changed replica
count. Target (docs/performance.md): warm at least 20x faster than cold.

The tools come from RECONCILER_KUSTOMIZE when set, else from `.ci/build-tools`.

Usage: python bench/bench_render.py [--apps N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.load import LoadCache
from reconciler.render import Renderer, load_rendered
from reconciler.source import Mirror

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "bases/web/kustomization.yaml": (
        "resources: [deployment.yaml, service.yaml]\n"
        "configMapGenerator: [{name: web-config, literals: [LOG_LEVEL=info]}]\n"),
    "bases/web/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n"
        "          envFrom: [{configMapRef: {name: web-config}}]\n"),
    "bases/web/service.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {selector: {app: web}, ports: [{port: 80}]}\n"),
}


def git(cwd: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def write(root: Path, path: str, text: str) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def overlay(root: Path, index: int, replicas: int) -> None:
    app = f"apps/web-{index:03d}"
    write(root, f"{app}/app.yaml", "target: cluster\n")
    write(root, f"{app}/kustomization.yaml",
          f"namespace: web-{index:03d}\nresources: [../../bases/web]\n"
          "patches: [{path: replicas.yaml}]\n"
          "configMapGenerator: [{name: web-config, behavior: merge, "
          f"literals: [SHARD={index}]}}]\n")
    write(root, f"{app}/replicas.yaml", "apiVersion: apps/v1\nkind: Deployment\n"
                                        "metadata: {name: web}\n"
                                        f"spec: {{replicas: {replicas}}}\n")


def generate(root: Path, apps: int) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write(root, "reconciler.yaml", "apiVersion: reconciler/v1\n"
                                   "targets:\n  cluster: {backend: kubernetes}\n")
    for path, text in BASE.items():
        write(root, path, text)
    for index in range(apps):
        overlay(root, index, 1)
    commit(root, "generated")


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def ensure_tools() -> None:
    if os.environ.get("RECONCILER_KUSTOMIZE"):
        return
    out = subprocess.run(["bash", str(ROOT / ".ci/build-tools")], check=True,
                         capture_output=True, text=True)
    folder = Path(out.stdout.strip().splitlines()[-1])
    os.environ["RECONCILER_KUSTOMIZE"] = str(folder / "kustomize")
    os.environ["RECONCILER_HELM"] = str(folder / "helm")


def round_trip(repo: Path, data: Path, apps: int, n: int) -> tuple[float, float]:
    mirror = Mirror(f"file://{repo}", data)
    mirror.fetch()
    renderer, cache = Renderer(), LoadCache()
    tree = mirror.tree(mirror.resolve("main"))
    start = time.perf_counter()
    state = load_rendered(tree, cache=cache, renderer=renderer)
    cold = time.perf_counter() - start
    assert len(state.apps) == apps and renderer.cache.renders == apps

    changed = n % apps
    overlay(repo, changed, n + 2)
    commit(repo, f"web-{changed:03d} scaled")
    mirror.fetch()
    tree = mirror.tree(mirror.resolve("main"))
    start = time.perf_counter()
    state = load_rendered(tree, cache=cache, renderer=renderer)
    warm = time.perf_counter() - start
    assert renderer.cache.renders == apps + 1, renderer.cache.renders
    deployment = next(r for r in state.apps[f"web-{changed:03d}"].resources
                      if r.id.kind == "Deployment")
    assert deployment.body["spec"]["replicas"] == n + 2
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        repo = Path(tmp) / "state"
        generate(repo, args.apps)
        colds: list[float] = []
        warms: list[float] = []
        for n in range(args.repeat):
            cold, warm = round_trip(repo, Path(tmp) / f"data-{n}", args.apps, n)
            colds.append(cold)
            warms.append(warm)
            print(f"round {n + 1}: cold {cold:.2f} s, warm {warm * 1000:.0f} ms")
    cold, warm = statistics.median(colds), statistics.median(warms)
    ratio = cold / warm
    print(f"{args.apps} Kustomize apps on {os.cpu_count()} cores: cold {cold:.2f} s "
          f"({cold / args.apps * 1000:.1f} ms an app), warm (one app changed) "
          f"{warm * 1000:.0f} ms; warm is {ratio:.0f}x faster (target: 20x)")
    return 0 if ratio >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
