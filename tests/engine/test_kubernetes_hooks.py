"""Argo CD style sync hooks through the Engine on the real control plane.

What runs the hooks' Jobs: the real Job controller, with kwok playing the
kubelets. kwok's pod stages finish a Job's pod as Succeeded at once, so a Job
whose pod is scheduled succeeds; a Job whose pod no node accepts (a
nodeSelector no node matches) fails when its activeDeadlineSeconds pass
(reason DeadlineExceeded), as a Job stuck on a real cluster would. The app's
own health comes from a Widget custom resource whose status the test writes,
as its controller would (see test_kubernetes_health_rules.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine
from tests.engine import support_targets as st
from tests.engine.test_kubernetes_health_rules import RULE, Controller, crd, widget
from tests.support.kube_env import KubeTest


def hook_job(name: str, ns: str, phase: str, *, fails: bool = False, policy: str = "") -> str:
    notes = f"argocd.argoproj.io/hook: {phase}"
    if policy:
        notes += f", argocd.argoproj.io/hook-delete-policy: {policy}"
    pod = "{restartPolicy: Never, containers: [{name: main, image: busybox}]"
    if fails:
        pod += ", nodeSelector: {disk: no-node-has-this}"
    pod += "}"
    deadline = "  activeDeadlineSeconds: 2\n" if fails else ""
    return (f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            f"  annotations: {{{notes}}}\nspec:\n  backoffLimit: 0\n{deadline}"
            f"  template:\n    spec: {pod}\n")


group = st.crd_group


@pytest.fixture
def repo(tmp_path: Path, kube: KubeTest, group: str) -> st.Repo:
    made = st.create_repo(tmp_path)
    made.kubernetes("prod", kube)
    made.app("crds", "prod", wave=0)
    made.write("apps/crds/crd.yaml", crd(group))
    made.app("web", "prod", wave=1, extra=RULE.format(group=group).replace("15s", "30s"))
    made.write("apps/web/config.yaml", st.configmap("web", {"k": "v"}, kube.namespace))
    made.write("apps/web/widget.yaml", widget(group, kube.namespace, 1))
    return made


engine = st.engine_of_repo


def job(kube: KubeTest, name: str) -> dict[str, Any] | None:
    return st.live_object(kube, "jobs", name, group="batch")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def test_a_failing_presync_hook_stops_the_app_with_nothing_applied_and_syncfail_runs(
    engine: Engine, repo: st.Repo, kube: KubeTest
) -> None:
    ns = kube.namespace
    repo.write("apps/web/hooks.yaml", hook_job("migrate", ns, "PreSync", fails=True) + "---\n"
               + hook_job("page-someone", ns, "SyncFail"))
    repo.commit("web with a migration that cannot run")
    result = engine.sync()
    assert result.result == "failure", result.message
    assert "apps/web/hooks.yaml:1: PreSync hook Job.batch/" in result.message
    assert "/migrate failed: job failed: DeadlineExceeded" in result.message
    assert "SyncFail hook(s) ran: Job.batch/" in result.message
    # Nothing of the app itself was applied (not even for a rollback to remove).
    written = {path for _, path, _ in kube.proxy.writes()}
    assert not [p for p in written
                if f"/namespaces/{ns}/configmaps" in p or f"/namespaces/{ns}/widgets" in p], written
    assert st.live_object(kube, "configmaps", "web") is None
    assert kube.env.get(f"/apis/{_group(repo)}/v1/namespaces/{ns}/widgets/w1") is None
    assert condition(job(kube, "migrate"), "Failed").get("status") == "True"
    # The SyncFail hook ran to its end.
    assert condition(job(kube, "page-someone"), "Complete").get("status") == "True"


def test_a_postsync_hook_runs_once_the_app_is_healthy_and_is_never_drift(
    engine: Engine, repo: st.Repo, kube: KubeTest, group: str
) -> None:
    ns = kube.namespace
    repo.write("apps/web/hooks.yaml", hook_job("smoke", ns, "PostSync") + "---\n"
               + hook_job("migrate", ns, "PreSync", policy="HookSucceeded"))
    repo.commit("web with hooks")
    seen: list[bool] = []
    controller = Controller(kube, group, ["Provisioning", "Ready"], pause=1.5,
                            before=lambda: seen.append(job(kube, "smoke") is not None))
    result = engine.sync()
    controller.thread.join(10)
    assert result.result == "success", result.message
    # While the widget was Provisioning the PostSync hook had not started.
    assert seen == [False, False]
    smoke = job(kube, "smoke")
    assert condition(smoke, "Complete").get("status") == "True"
    # HookSucceeded: the PreSync Job is deleted once it succeeded.
    assert job(kube, "migrate") is None
    # Hooks are neither planned, nor drift, nor pruned.
    assert engine.plan().empty
    assert engine.drift().empty
    assert smoke is not None

    # The next sync with changes runs the PostSync hook again, as a new Job
    # (BeforeHookCreation, the default, deleted the last run's first).
    repo.write("apps/web/config.yaml", st.configmap("web", {"k": "v2"}, ns))
    repo.commit("web v2")
    again = engine.sync()
    assert again.result == "success", again.message
    rerun = job(kube, "smoke")
    assert rerun is not None and rerun["metadata"]["uid"] != smoke["metadata"]["uid"]
    assert condition(rerun, "Complete").get("status") == "True"


def test_a_failing_postsync_hook_fails_the_app_and_runs_syncfail(
    engine: Engine, repo: st.Repo, kube: KubeTest, group: str
) -> None:
    ns = kube.namespace
    repo.write("apps/web/hooks.yaml", hook_job("smoke", ns, "PostSync", fails=True) + "---\n"
               + hook_job("page-someone", ns, "SyncFail"))
    repo.commit("web with a failing smoke test")
    Controller(kube, group, ["Ready"], pause=0)
    result = engine.sync()
    assert result.result == "failure", result.message
    assert "PostSync hook Job.batch/" in result.message and "/smoke failed" in result.message
    assert "SyncFail hook(s) ran" in result.message
    assert condition(job(kube, "page-someone"), "Complete").get("status") == "True"


def test_a_failed_early_prune_runs_syncfail(tmp_path: Path, kube: KubeTest) -> None:
    """`prune_first: true`: the app's deletions run before its first batch, and
    when they fail the app has failed like any other, so its SyncFail hooks run.
    The prune fails for real: the object it must delete is terminating, held by
    a finalizer, past the target's `delete_timeout`."""
    ns = kube.namespace
    repo = st.create_repo(tmp_path)
    repo.kubernetes("prod", kube)
    repo.targets["prod"] = repo.targets["prod"].removesuffix("}") + ", delete_timeout: 2s}"
    repo.app("web", "prod", extra="timeout: 60s\nprune_first: true\n")
    repo.write("apps/web/config.yaml", st.configmap("web", {"k": "v1"}, ns))
    repo.write("apps/web/old.yaml", st.configmap("old", {"k": "v1"}, ns))
    repo.write("apps/web/hooks.yaml", hook_job("page-someone", ns, "SyncFail"))
    repo.commit("web")
    engine = st.engine(repo, tmp_path / "data")
    old = f"/api/v1/namespaces/{ns}/configmaps/old"
    try:
        first = engine.sync()
        assert first.result == "success", first.message
        assert job(kube, "page-someone") is None  # nothing failed: no SyncFail
        status, _ = kube.env.call("PATCH", old, {"metadata": {"finalizers": ["example.com/hold"]}},
                                  content_type="application/merge-patch+json")
        assert status == 200
        kube.env.delete(old)  # now terminating, held by the finalizer

        repo.remove("apps/web/old.yaml")
        repo.write("apps/web/config.yaml", st.configmap("web", {"k": "v2"}, ns))
        repo.commit("web without old")
        result = engine.sync()
        assert result.result == "failure", result.message
        assert "prune: ConfigMap/" in result.message
        assert "/old: still terminating after 2s (delete_timeout), held by finalizers: " \
            "example.com/hold" in result.message
        assert "SyncFail hook(s) ran: Job.batch/" in result.message
        assert condition(job(kube, "page-someone"), "Complete").get("status") == "True"
        # The early prune failed before any write of the app.
        web = st.live_object(kube, "configmaps", "web")
        assert web is not None and web["data"] == {"k": "v1"}
    finally:
        engine.close()
        kube.env.call("PATCH", old, {"metadata": {"finalizers": None}},
                      content_type="application/merge-patch+json")


def _group(repo: st.Repo) -> str:
    text = (repo.path / "apps/crds/crd.yaml").read_text()
    return text.split("group: ", 1)[1].split("\n", 1)[0]
