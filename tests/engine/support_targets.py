"""Real parts for engine tests that span backends: a git state repo with any mix of
targets, and a thread that plays the Kubernetes Deployment controller.

The state repo is built with the git CLI, as a user would. Targets point at the
test servers over real HTTP on 127.0.0.1 (the Kubernetes API test server through
a kubeconfig with a bearer token, the YARN Services API test server by url) and
at a real sshd fleet. Nothing here fakes a backend: tests read the servers'
request logs and the files under the fleet's roots.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine import Engine, EngineSettings
from reconciler.rollout.runner import RolloutOptions
from tests.support.gitrepo import GitRepo
from tests.support.kube_apiserver import KubeApiServer
from tests.support.sshd import SshFleet
from tests.support.yarn_server import YarnServer


@dataclass
class Repo(GitRepo):
    """A state repository in a temporary directory; `commit` returns the sha."""

    targets: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def commit(self, message: str, *, allow_empty: bool = True) -> str:
        """Write reconciler.yaml from the targets, then commit everything."""
        targets = "".join(f"  {name}: {spec}\n" for name, spec in sorted(self.targets.items()))
        self.write("reconciler.yaml", "apiVersion: reconciler/v1\n"
                   "defaults: {prune: true, rollback: auto}\n" f"targets:\n{targets}")
        return super().commit(message, allow_empty=allow_empty)

    def app(self, name: str, target: str, wave: int = 0, extra: str = "") -> None:
        self.write(f"apps/{name}/app.yaml", f"target: {target}\nwave: {wave}\n{extra}")

    # --- targets -----------------------------------------------------------

    def kubernetes(self, name: str, server: KubeApiServer, tmp: Path) -> None:
        kubeconfig = server.write_kubeconfig(tmp / f"kubeconfig-{name}")
        self.targets[name] = f"{{backend: kubernetes, kubeconfig: {kubeconfig}}}"

    def yarn(self, name: str, server: YarnServer) -> None:
        self.targets[name] = (f"{{backend: yarn, url: \"{server.url}\", user: deploy, "
                              "poll_interval: 10ms, settle_timeout: 10s, timeout: 5s}")

    def vm(self, name: str, fleet: SshFleet, roots: Path) -> None:
        hosts = ", ".join(h.spec for h in fleet.hosts)
        self.targets[name] = (
            f"{{backend: vm, transport: ssh, hosts: [{hosts}], user: {fleet.user}, "
            f"identity_file: {fleet.identity_file}, known_hosts: {fleet.known_hosts}, "
            f"root: \"{roots}/{{host}}\"}}")


def create_repo(base: Path) -> Repo:
    repo = Repo(path=base / "state")
    repo.init()
    return repo


def engine(repo: Repo, data: Path) -> Engine:
    """An in-process engine whose health gate polls every 20 ms at most.

    The gate's timeouts still run on the real clock; only its pauses are short,
    so a test waits for the servers, not for the default one-second backoff.
    """
    settings = EngineSettings(repo=repo.url, rev="main", data_dir=data)

    def sleep(seconds: float) -> None:
        threading.Event().wait(min(seconds, 0.02))

    return Engine(settings, rollout_options=RolloutOptions(max_workers=2, sleep=sleep))


# --- Kubernetes ----------------------------------------------------------------


def yarn_service(name: str, version: str = "1.0.0", count: int = 1, image: str = "centos:7") -> str:
    return (f"name: {name}\nversion: \"{version}\"\ncomponents:\n"
            f"  - name: worker\n    number_of_containers: {count}\n"
            f"    artifact: {{id: \"{image}\", type: DOCKER}}\n"
            "    launch_command: \"sleep 900000\"\n"
            "    resource: {cpus: 1, memory: \"256\"}\n")


def deployment(name: str, image: str, namespace: str = "default", replicas: int = 2) -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {{containers: [{{name: main, image: \"{image}\"}}]}}\n")


def configmap(name: str, data: Mapping[str, str], namespace: str = "default") -> str:
    pairs = ", ".join(f"{k}: \"{v}\"" for k, v in data.items())
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}"
            f"\ndata: {{{pairs}}}\n")


def live_object(server: KubeApiServer, plural: str, name: str,
                namespace: str = "default", group: str = "") -> dict[str, Any] | None:
    with server.api.lock:
        found = server.api.objects.get((group, plural), {}).get((namespace, name))
        return None if found is None else dict(found)


def image_of(server: KubeApiServer, name: str, namespace: str = "default") -> str:
    obj = live_object(server, "deployments", name, namespace, group="apps")
    assert obj is not None, f"deployment {name} does not exist"
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def object_writes(server: KubeApiServer) -> list[tuple[str, str, str]]:
    """Writes the reconciler made: every non-dry-run write except the controller's /status."""
    return [w for w in server.writes() if not w[1].endswith("/status")]


@contextmanager
def deployment_controller(
    server: KubeApiServer, stuck: Callable[[str], bool] = lambda image: False,
) -> Iterator[list[str]]:
    """Play the Deployment controller over HTTP through the /status subresource.

    Every Deployment whose generation was not observed yet becomes available
    (all replicas updated and available), unless `stuck(image)` says its pods
    never start: then it gets ProgressDeadlineExceeded, as a real controller
    reports a rollout that made no progress. Yields the log of what it did.
    """
    done = threading.Event()
    log: list[str] = []

    def pending() -> list[tuple[str, dict[str, Any]]]:
        with server.api.lock:
            items = list(server.api.objects.get(("apps", "deployments"), {}).items())
        out = []
        for (namespace, name), obj in items:
            generation = obj["metadata"].get("generation")
            if (obj.get("status") or {}).get("observedGeneration") != generation:
                out.append((f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", obj))
        return out

    def run() -> None:
        while not done.wait(0.01):
            for path, obj in pending():
                image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
                generation = obj["metadata"]["generation"]
                replicas = obj["spec"].get("replicas", 1)
                if stuck(image):
                    status: dict[str, Any] = {
                        "observedGeneration": generation, "replicas": replicas,
                        "updatedReplicas": 0, "availableReplicas": 0,
                        "conditions": [{"type": "Progressing", "status": "False",
                                        "reason": "ProgressDeadlineExceeded",
                                        "message": "ReplicaSet has timed out progressing."}]}
                    log.append(f"stuck {path} {image}")
                else:
                    status = {
                        "observedGeneration": generation, "replicas": replicas,
                        "updatedReplicas": replicas, "readyReplicas": replicas,
                        "availableReplicas": replicas,
                        "conditions": [{"type": "Available", "status": "True",
                                        "reason": "MinimumReplicasAvailable"},
                                       {"type": "Progressing", "status": "True",
                                        "reason": "NewReplicaSetAvailable"}]}
                    log.append(f"available {path} {image}")
                # Deleted meanwhile (prune, rollback): nothing left to report on.
                with contextlib.suppress(urllib.error.HTTPError):
                    server.patch_status(path, status)

    thread = threading.Thread(target=run, name="deployment-controller", daemon=True)
    thread.start()
    try:
        yield log
    finally:
        done.set()
        thread.join(5)
