"""Generate a synthetic state repository for the load benchmark.

The repo mixes VM and Kubernetes targets the way a mid-sized company would:
1,000 apps over five waves, ten resources each (10,000 in all), some apps
depending on an app of the previous wave. It is written to a directory and
committed to a git repository there, so the loader can be timed both on a
directory and on git objects. Output is deterministic for a given seed.

Usage: python bench/gen_state.py DIR [--apps N] [--per-app N]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.gitrepo import GitRepo

VM_TARGETS = ("web-fleet", "db-fleet", "batch-fleet")
K8S_TARGETS = ("prod", "staging")
WAVES = 5


def reconciler_yaml() -> str:
    lines = ["apiVersion: reconciler/v1", "defaults: {prune: true, rollback: auto}", "targets:"]
    for i, name in enumerate(VM_TARGETS):
        hosts = ", ".join(f"{name}-{h}:22" for h in range(1, 9))
        lines.append(f"  {name}: {{backend: vm, transport: ssh, hosts: [{hosts}], user: deploy,")
        lines.append(f"    identity_file: /secrets/id_{i}, known_hosts: /secrets/known_hosts}}")
    for name in K8S_TARGETS:
        lines.append(f"  {name}: {{backend: kubernetes, kubeconfig: /secrets/{name}.kubeconfig}}")
    return "\n".join(lines) + "\n"


def app_yaml(target: str, wave: int, depends: list[str]) -> str:
    deps = f"depends_on: [{', '.join(depends)}]\n" if depends else ""
    return (
        f"target: {target}\nwave: {wave}\n{deps}"
        "rollout: {batch: 25%, max_failures: 0}\n"
        "health:\n"
        "  - http: {url: \"http://{host}:8080/healthz\", status: 200}\n"
        "    timeout: 60s\n"
        "    retries: 5\n"
    )


def vm_resources(app: str, count: int) -> str:
    docs = [f"kind: Directory\npath: /srv/{app}\nmode: \"0755\"\nowner: deploy\ngroup: deploy\n"]
    for i in range(count - 2):
        docs.append(
            f"kind: File\npath: /srv/{app}/conf-{i}.ini\nmode: \"0644\"\nowner: deploy\n"
            f"content: |\n  [server]\n  name = {app}\n  port = {8000 + i}\n"
            "  workers = 4\n  log_level = info\n"
        )
    docs.append(
        f"kind: Service\nname: {app}\nunit: {app}.service\nstate: running\n"
        f"restart_on: [/srv/{app}/conf-0.ini]\n"
    )
    return "---\n".join(docs)


def k8s_resources(app: str, count: int) -> list[str]:
    """Two files: a deployment plus service, and the config maps."""
    deploy = (
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata:\n  name: {app}\n  namespace: {app}\n  labels: {{app: {app}, tier: backend}}\n"
        "spec:\n  replicas: 3\n"
        f"  selector:\n    matchLabels: {{app: {app}}}\n"
        "  template:\n"
        f"    metadata:\n      labels: {{app: {app}}}\n"
        "    spec:\n      containers:\n"
        f"        - name: {app}\n          image: registry.example.com/{app}:1.0.0\n"
        "          ports:\n            - containerPort: 8080\n"
        "          resources:\n            requests: {cpu: 100m, memory: 128Mi}\n"
        "            limits: {cpu: 500m, memory: 256Mi}\n"
        "          readinessProbe:\n            httpGet: {path: /healthz, port: 8080}\n"
        "---\napiVersion: v1\nkind: Service\n"
        f"metadata:\n  name: {app}\n  namespace: {app}\n"
        f"spec:\n  selector: {{app: {app}}}\n  ports:\n    - port: 80\n      targetPort: 8080\n"
        "---\napiVersion: v1\nkind: Namespace\n"
        f"metadata:\n  name: {app}\n"
    )
    maps = [
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata:\n  name: {app}-config-{i}\n  namespace: {app}\n"
        f"data:\n  LOG_LEVEL: info\n  FEATURE_{i}: \"on\"\n  SETTINGS: |\n    a = 1\n    b = {i}\n"
        for i in range(count - 3)
    ]
    return [deploy, "---\n".join(maps)]


def write_app(root: Path, index: int, per_app: int, rng: random.Random) -> None:
    name = f"app-{index:04d}"
    wave = index % WAVES
    vm = index % 2 == 0
    target = rng.choice(VM_TARGETS if vm else K8S_TARGETS)
    depends = [f"app-{index - 1:04d}"] if wave > 0 and rng.random() < 0.3 else []
    folder = root / "apps" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.yaml").write_text(app_yaml(target, wave, depends))
    if vm:
        (folder / "files.yaml").write_text(vm_resources(name, per_app))
    else:
        deploy, maps = k8s_resources(name, per_app)
        (folder / "deploy.yaml").write_text(deploy)
        (folder / "config.yaml").write_text(maps)


def commit_all(root: Path, message: str) -> str:
    return GitRepo(root).commit(message)


def generate(root: Path, *, apps: int = 1000, per_app: int = 10, seed: int = 0) -> str:
    """Write the repo into `root` (created), commit it, and return the commit id."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "reconciler.yaml").write_text(reconciler_yaml())
    for index in range(apps):
        write_app(root, index, per_app, rng)
    if not (root / ".git").exists():
        GitRepo(root).init()
    return commit_all(root, f"synthetic state: {apps} apps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--per-app", type=int, default=10)
    args = parser.parse_args()
    print(generate(args.dir, apps=args.apps, per_app=args.per_app))


if __name__ == "__main__":
    main()
