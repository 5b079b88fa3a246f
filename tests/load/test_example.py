"""The shipped example state repository validates and means what it says."""

from __future__ import annotations

from pathlib import Path

from backends.vm.options import VmOptions
from reconciler.load import load
from reconciler.model import BackendKind, CheckKind, ResourceId
from reconciler.tree import DirectoryTree

EXAMPLE = Path(__file__).resolve().parents[2] / "desired-state-example"


def test_example_validates() -> None:
    desired = load(DirectoryTree(EXAMPLE))
    assert set(desired.targets) == {"laptop", "web-fleet", "prod"}
    assert desired.targets["laptop"].options == VmOptions(
        transport="local", hosts=("localhost",), root="./.demo-root")
    assert desired.targets["prod"].backend is BackendKind.KUBERNETES
    waves = {name: app.wave for name, app in desired.apps.items()}
    assert waves == {"config": 0, "web": 1, "shop": 1}
    assert desired.apps["web"].depends_on == ("config",)
    assert len(desired.sync_windows) == 1


def test_example_web_app_serves_a_page_with_a_pid_file() -> None:
    web = load(DirectoryTree(EXAMPLE)).apps["web"]
    by_id = {r.id: r for r in web.resources}
    index = by_id[ResourceId(kind="File", name="/srv/web/index.html")]
    assert index.body["content"] == (EXAMPLE / "apps/web/files/index.html").read_bytes()
    service = by_id[ResourceId(kind="Service", name="demo-web")]
    assert "http.server 18080 --bind 127.0.0.1" in service.body["start"]
    assert "server.pid" in service.body["status"]
    assert service.body["restart_on"] == ["/etc/demo/web.conf", "/srv/web/index.html"]
    (check,) = web.health
    assert check.kind is CheckKind.HTTP
    assert check.spec == {"url": "http://127.0.0.1:18080/", "status": 200}


def test_example_kubernetes_manifests() -> None:
    shop = load(DirectoryTree(EXAMPLE)).apps["shop"]
    ids = {str(r.id) for r in shop.resources}
    assert ids == {"Namespace/shop", "ConfigMap/shop/frontend-config",
                   "Deployment.apps/shop/frontend", "Service/shop/frontend"}
