"""Kubernetes rollouts through the Engine: a real git repo and the real control
plane, whose Deployment controller, scheduler and kwok nodes decide health."""

from __future__ import annotations

import base64
import logging
import sqlite3
from pathlib import Path

import pytest

from backends.kubernetes.normalize import MANAGED_BY_LABEL
from reconciler.engine import Engine
from reconciler.events import EventKind
from tests.engine import support_targets as st
from tests.support.kube_env import KubeTest

NOWHERE = {"disk": "no-node-has-this"}
"""A nodeSelector no node matches: the release's new pods are never scheduled."""


repo = st.kube_web_repo
engine = st.engine_of_repo


def release(repo: st.Repo, kube: KubeTest, image: str, data: dict[str, str] | None = None,
            *, broken: bool = False) -> str:
    """A release of web; a broken one can never be scheduled and so never progresses."""
    ns = kube.namespace
    repo.write("apps/web/deploy.yaml", st.deployment(
        "web", image, ns, node_selector=NOWHERE if broken else None, progress_deadline=3))
    repo.write("apps/web/config.yaml", st.configmap("web", data or {"mode": "blue"}, ns))
    return repo.commit(f"web {image}")


def test_create_update_then_a_noop_that_makes_no_write(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    release(repo, kube, "nginx:1.27")
    created = engine.sync()
    assert created.result == "success", created.message
    assert created.summary == {"create": 2, "update": 0, "delete": 0}
    live = st.live_object(kube, "configmaps", "web")
    assert live is not None and live["data"] == {"mode": "blue"}
    assert live["metadata"]["labels"][MANAGED_BY_LABEL] == "reconciler"
    assert st.image_of(kube, "web") == "nginx:1.27"

    release(repo, kube, "nginx:1.28")
    kube.proxy.reset_counts()
    updated = engine.sync()
    assert updated.result == "success", updated.message
    assert updated.summary == {"create": 0, "update": 1, "delete": 0}
    # Only the Deployment changed, so only the Deployment was written.
    assert [w[1] for w in st.object_writes(kube)] == [
        f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/web"]
    assert st.image_of(kube, "web") == "nginx:1.28"

    kube.proxy.reset_counts()
    again = engine.sync()
    assert (again.result, again.message) == ("success", "in sync: nothing to do")
    assert kube.proxy.writes() == []
    assert kube.proxy.counts()["PATCH dryRun"] == 0


def test_prune_deletes_what_git_dropped_and_spares_unlabelled_objects(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    ns = kube.namespace
    repo.write("apps/web/extra.yaml", st.configmap("extra", {"k": "v"}, ns))
    release(repo, kube, "nginx:1.27")
    assert engine.sync().result == "success"
    # Someone created an object by hand, without the ownership label.
    kube.env.create(f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand-made"},
        "data": {"k": "v"}})

    repo.remove("apps/web/extra.yaml")
    repo.commit("drop extra")
    kube.proxy.reset_counts()
    result = engine.sync()

    assert result.result == "success", result.message
    assert result.summary == {"create": 0, "update": 0, "delete": 1}
    assert [w[:2] for w in st.object_writes(kube)] == [
        ("DELETE", f"/api/v1/namespaces/{ns}/configmaps/extra")]
    assert st.live_object(kube, "configmaps", "extra") is None
    assert st.live_object(kube, "configmaps", "hand-made") is not None
    assert st.live_object(kube, "configmaps", "web") is not None
    record = engine.history.deploy(result.deploy_id)
    assert record is not None
    pruned = [e for e in record.events if e.kind is EventKind.PRUNE_DONE]
    assert [(e.app, e.status) for e in pruned] == [("web", "success")]
    assert {e.id.name for e in engine.history.inventory_entries("prod")} == {"web"}


def test_a_deployment_that_never_becomes_available_rolls_back_to_the_old_image(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    good = release(repo, kube, "nginx:1.27")
    first = engine.sync()
    assert first.result == "success", first.message
    served_before = _serving_replicasets(kube)
    assert list(served_before.values()) == ["nginx:1.27"]

    release(repo, kube, "nginx:1.28", broken=True)
    result = engine.sync()

    assert result.result == "failure" and result.rolled_back, result.message
    assert "progress deadline exceeded" in result.message
    assert st.image_of(kube, "web") == "nginx:1.27"
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.result == "failure" and record.rolled_back
    web = next(a for a in record.apps if a.app == "web")
    assert web.status == "failure" and "progress deadline exceeded" in web.error
    assert web.rollback.startswith("success") and good[:12] in web.rollback
    kinds = [e.kind for e in record.events]
    assert kinds.index(EventKind.ROLLBACK_STARTED) > kinds.index(EventKind.WAVE_DONE)
    assert engine.history.last_good("web") == good
    # The previous ReplicaSet serves again: the real controller went back to it,
    # and the pods of the broken one are gone.
    kube.env.wait_for(f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/web",
                      lambda d: (d.get("status") or {}).get("updatedReplicas") == 2
                      and (d.get("status") or {}).get("availableReplicas") == 2
                      and not (d.get("status") or {}).get("unavailableReplicas"))
    assert _serving_replicasets(kube) == served_before


def _serving_replicasets(kube: KubeTest) -> dict[str, str]:
    """ReplicaSets of web with ready pods -> their image."""
    listed = kube.env.get(f"/apis/apps/v1/namespaces/{kube.namespace}/replicasets")
    assert listed is not None
    return {rs["metadata"]["name"]: rs["spec"]["template"]["spec"]["containers"][0]["image"]
            for rs in listed["items"] if (rs.get("status") or {}).get("readyReplicas")}


def test_secret_data_never_reaches_logs_diffs_history_or_messages(
    engine: Engine, repo: st.Repo, kube: KubeTest, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    old, new = "first-pa55word-0xC0FFEE", "second-pa55word-0xBADF00D"

    def secret(value: str) -> str:
        encoded = base64.b64encode(value.encode()).decode()
        meta = f"{{name: db, namespace: {kube.namespace}}}"
        return (f"apiVersion: v1\nkind: Secret\nmetadata: {meta}\n"
                f"type: Opaque\ndata: {{password: {encoded}}}\n")

    repo.write("apps/web/secret.yaml", secret(old))
    release(repo, kube, "nginx:1.27")
    first = engine.sync()
    assert first.result == "success", first.message
    # The new value rides along with a release that fails and rolls back, so
    # failure messages, rollback events and diffs all see the Secret change.
    repo.write("apps/web/secret.yaml", secret(new))
    release(repo, kube, "nginx:1.28", broken=True)
    second = engine.sync()
    assert second.result == "failure" and second.rolled_back

    live = st.live_object(kube, "secrets", "db")
    assert live is not None and base64.b64decode(live["data"]["password"]).decode() == old
    plan = second.plan
    assert plan is not None
    diffs = [c.diff for c in plan.changes() if c.id.kind == "Secret"]
    assert len(diffs) == 1 and diffs[0]  # the change shows, its value does not
    texts = [caplog.text, *diffs, first.message, second.message]
    for deploy in (first, second):
        record = engine.history.deploy(deploy.deploy_id)
        assert record is not None
        texts += [record.message, *(e.message for e in record.events),
                  *(a.error + a.rollback for a in record.apps)]
    texts += _every_history_value(tmp_path / "data" / "history.sqlite3")
    for value in (old, new):
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert not [t for t in texts if form in t], f"{form!r} leaked"


def _every_history_value(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [str(value) for table in tables
                for row in db.execute(f"SELECT * FROM {table}") for value in row]
    finally:
        db.close()


def test_a_change_the_server_refuses_fails_the_app_before_any_write(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    release(repo, kube, "nginx:1.27")
    assert engine.sync().result == "success"
    # A new selector: immutable on a Deployment, so the dry-run answers 422.
    text = st.deployment("web", "nginx:1.28", kube.namespace).replace(
        "matchLabels: {app: web}", "matchLabels: {app: web, tier: front}").replace(
        "labels: {app: web}", "labels: {app: web, tier: front}")
    repo.write("apps/web/deploy.yaml", text)
    repo.commit("web: new selector")
    kube.proxy.reset_counts()
    result = engine.sync()
    assert result.result == "failure", result.message
    assert "apps/web/deploy.yaml:1: " in result.message
    assert "field is immutable" in result.message
    assert kube.proxy.writes() == []
    assert st.image_of(kube, "web") == "nginx:1.27"
