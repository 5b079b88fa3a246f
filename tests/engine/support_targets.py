"""Real parts for engine tests that span backends: a git state repo with any mix of
targets, and readers of what the targets hold.

The state repo is built with the git CLI, as a user would. Targets point at real
servers on 127.0.0.1: the real Kubernetes control plane (through the recording
proxy, with a kubeconfig and a bearer token), the real YARN ResourceManager
(through its recording proxy), and a real sshd fleet. Nothing here fakes a
backend: tests read the proxies' request logs, the objects on the real servers
and the files under the fleet's roots.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.rollout.runner import RolloutOptions
from tests.support.gitrepo import GitRepo
from tests.support.kube_env import KubeTest
from tests.support.sshd import SshFleet
from tests.support.yarn_proxy import YarnProxy


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

    def kubernetes(self, name: str, kube: KubeTest) -> None:
        kubeconfig = kube.kubeconfig(f"kubeconfig-{name}")
        # `namespaces`: the session shares one cluster, and objects an earlier test
        # left under the same target name must not be this test's prune candidates.
        self.targets[name] = (f"{{backend: kubernetes, kubeconfig: {kubeconfig}, "
                              f"namespace: {kube.namespace}, namespaces: [{kube.namespace}]}}")

    def yarn(self, name: str, proxy: YarnProxy) -> None:
        """A target on the real ResourceManager, through its recording proxy."""
        self.targets[name] = (f"{{backend: yarn, url: \"{proxy.url}\", user: deploy, "
                              "poll_interval: 500ms, settle_timeout: 120s, timeout: 30s}")

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


@pytest.fixture
def engine_of_repo(tmp_path: Path, repo: Repo) -> Iterator[Engine]:
    """`engine(repo)` on the test module's own `repo` fixture, closed after the test.
    A module takes it as its `engine` fixture: `engine = st.engine_of_repo`."""
    eng = engine(repo, tmp_path / "data")
    yield eng
    eng.close()


# --- Kubernetes ----------------------------------------------------------------


@pytest.fixture
def kube_web_repo(tmp_path: Path, kube: KubeTest) -> Repo:
    """A state repo with one Kubernetes target, `prod`, and its app `web` (wave 1,
    60 s health timeout), nothing in it yet. A module takes it as its `repo`
    fixture: `repo = st.kube_web_repo`."""
    made = create_repo(tmp_path)
    made.kubernetes("prod", kube)
    made.app("web", "prod", extra="timeout: 60s\n")
    return made


@pytest.fixture
def crd_group(kube: KubeTest) -> Iterator[str]:
    """An API group of this test's own for a CRD (`widgets.<group>`), which is
    deleted after the test: CRDs are cluster-wide, so namespaces do not part them."""
    name = f"g{kube.suffix}.example.com"
    yield name
    kube.env.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{name}")


def yarn_service(name: str, version: str = "1.0.0", count: int = 1, image: str = "centos:7") -> str:
    return (f"name: {name}\nversion: \"{version}\"\ncomponents:\n"
            f"  - name: worker\n    number_of_containers: {count}\n"
            f"    artifact: {{id: \"{image}\", type: DOCKER}}\n"
            "    launch_command: \"sleep 900000\"\n"
            "    resource: {cpus: 1, memory: \"256\"}\n")


def deployment(name: str, image: str, namespace: str, replicas: int = 2,
               node_selector: Mapping[str, str] | None = None,
               progress_deadline: int = 0) -> str:
    """A Deployment; a `node_selector` no node matches keeps its new pods Pending."""
    pod = f"{{containers: [{{name: main, image: \"{image}\"}}]"
    if node_selector:
        pod += ", nodeSelector: {" + ", ".join(f"{k}: {v}" for k, v in node_selector.items()) + "}"
    pod += "}"
    deadline = f"  progressDeadlineSeconds: {progress_deadline}\n" if progress_deadline else ""
    return (f"apiVersion: apps/v1\nkind: Deployment\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n  replicas: {replicas}\n{deadline}"
            f"  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {pod}\n")


def configmap(name: str, data: Mapping[str, str], namespace: str) -> str:
    pairs = ", ".join(f"{k}: \"{v}\"" for k, v in data.items())
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}"
            f"\ndata: {{{pairs}}}\n")


def live_object(kube: KubeTest, plural: str, name: str, group: str = "") -> dict[str, Any] | None:
    """The object as the real API server holds it now (read past the proxy)."""
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    return kube.env.get(f"{prefix}/namespaces/{kube.namespace}/{plural}/{name}")


def image_of(kube: KubeTest, name: str) -> str:
    obj = live_object(kube, "deployments", name, group="apps")
    assert obj is not None, f"deployment {name} does not exist"
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def object_writes(kube: KubeTest) -> list[tuple[str, str, str]]:
    """Writes the reconciler made through the proxy (dry-runs are not writes)."""
    return kube.proxy.writes()
