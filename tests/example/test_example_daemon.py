"""The bundled example under the real daemon, its Kubernetes target included.

`reconciler run` deploys the example's `laptop` apps on this machine and its
`shop` app on the real control plane (the `prod` target, pointed at the test
cluster's proxy instead of /secrets/kubeconfig): the Namespace, ConfigMap,
Deployment and Service of `apps/shop` exist (and the rendered apps: the catalog
overlays in their two namespaces, the greeter chart in `shop`), the Deployment becomes Available
through the real controllers and kwok's nodes, and the deploy ends `success`.

Two edits to the copy, and why: the prod target's kubeconfig and context name
files this machine does not have; shop's HTTP health check names a public host,
so it checks the demo web service on loopback instead. The Friday-evening sync
window is dropped so the test does not depend on the day it runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.example.test_example_sync import PORT_IN_EXAMPLE, _free_port, _git
from tests.support.kube_env import KubeTest

PROJECT = Path(__file__).resolve().parents[2]
# The example renders Kustomize and Helm apps with the real tools.
pytestmark = pytest.mark.usefixtures("render_tools")

EXAMPLE = PROJECT / "desired-state-example"


def _copy_example(into: Path, kube: KubeTest, port: int) -> Path:
    repo = into / "state"
    subprocess.run(["cp", "-r", str(EXAMPLE), str(repo)], check=True)
    for path in repo.rglob("*.yaml"):
        text = path.read_text().replace(PORT_IN_EXAMPLE, str(port))
        path.write_text(text)
    config = repo / "reconciler.yaml"
    text = config.read_text()
    text = text.replace("kubeconfig: /secrets/kubeconfig", f"kubeconfig: {kube.kubeconfig()}")
    text = text.replace("    context: prod\n", "")
    text = re.sub(r"\nsync_windows:\n(?:  .*\n|\n)*", "\n", text)
    config.write_text(text)
    shop = repo / "apps/shop/app.yaml"
    shop.write_text(shop.read_text().replace("https://shop.example.com/healthz",
                                             f"http://127.0.0.1:{port}/"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "example")
    return repo


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_the_daemon_deploys_the_example_with_its_kubernetes_app(
    kube: KubeTest, tmp_path: Path
) -> None:
    port, web = _free_port(), _free_port()
    repo = _copy_example(tmp_path, kube, port)
    work = tmp_path / "work"
    work.mkdir()
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(repo), "--target", "laptop",
         "--target", "prod", "--data-dir", str(work / "data"), "--listen", f"127.0.0.1:{web}",
         "--poll-interval", "1s"],
        cwd=work, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT)})
    log.close()
    try:
        deploys = _wait_deploy(f"http://127.0.0.1:{web}/api/v1/deploys", daemon, 180,
                               tmp_path / "daemon.log")
        assert deploys[0]["result"] == "success", deploys[0]
        ns = "shop"
        deployment = kube.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/frontend")
        assert deployment is not None
        status = deployment["status"]
        assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 3
        assert status["observedGeneration"] == deployment["metadata"]["generation"]
        service = kube.env.get(f"/api/v1/namespaces/{ns}/services/frontend")
        assert service is not None and service["spec"]["clusterIP"]  # assigned by the server
        config = kube.env.get(f"/api/v1/namespaces/{ns}/configmaps/frontend-config")
        assert config is not None and config["data"]["LOG_LEVEL"] == "info"
        # The rendered apps: a Kustomize overlay per namespace and a Helm chart.
        for env, replicas in (("staging", 1), ("production", 3)):
            catalog = kube.env.get(f"/apis/apps/v1/namespaces/catalog-{env}/deployments/catalog")
            assert catalog is not None and catalog["spec"]["replicas"] == replicas
        greeter = kube.env.get(f"/apis/apps/v1/namespaces/{ns}/deployments/greeter")
        assert greeter is not None and greeter["spec"]["replicas"] == 2
        namespace = kube.env.get(f"/api/v1/namespaces/{ns}")
        assert namespace is not None and namespace["metadata"]["labels"]["team"] == "storefront"
        # Polls after the deploy read the cluster and write nothing to it.
        kube.proxy.reset_counts()
        time.sleep(3)
        assert kube.proxy.writes() == []
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=40)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        output = (tmp_path / "daemon.log").read_text()
        pidfile = work / ".demo-root/var/run/demo-web/server.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        for namespace in ("shop", "catalog-staging", "catalog-production"):
            kube.env.drop_namespace(namespace)
    assert daemon.returncode == 0, output[-3000:]


def _wait_deploy(url: str, daemon: subprocess.Popen[str], timeout: float,
                 log: Path) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise AssertionError(f"the daemon exited: {log.read_text()[-3000:]}")
        try:
            deploys: list[Any] = _get(url)["deploys"]
        except OSError:
            deploys = []
        if deploys and deploys[0]["result"] not in ("", "running", None):
            return deploys
        time.sleep(0.5)
    raise AssertionError(f"no finished deploy within {timeout:.0f} s")
