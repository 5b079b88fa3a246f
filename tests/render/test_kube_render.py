"""Rendered apps deployed on the real control plane through the Engine and the CLI.

A Kustomize base with two overlays in two namespaces of one target, and a Helm
chart installed twice with values per environment: each deploys its own
objects, a change to the base shows in both plans, a changed value touches
only the object it feeds, and a chart that fails to render is an `error`
deploy (exit 2 from the CLI) with helm's message and no write to the cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import pulls
from reconciler.engine import Engine
from reconciler.model import Action
from reconciler.reporters import State
from tests.engine import support_targets as st
from tests.render.support import BASE_DEPLOYMENT, CHART
from tests.support.kube_env import KubeTest

pytestmark = pytest.mark.usefixtures("render_tools")
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def second_namespace(kube: KubeTest) -> Iterator[str]:
    name = kube.env.namespace("render")
    yield name
    kube.env.drop_namespace(name)


@pytest.fixture
def repo(tmp_path: Path, kube: KubeTest, second_namespace: str) -> st.Repo:
    made = st.create_repo(tmp_path)
    kubeconfig = kube.kubeconfig("kubeconfig-prod")
    namespaces = f"[{kube.namespace}, {second_namespace}]"
    made.targets["prod"] = (f"{{backend: kubernetes, kubeconfig: {kubeconfig}, "
                            f"namespace: {kube.namespace}, namespaces: {namespaces}}}")
    return made


engine = st.engine_of_repo


def _base(repo: st.Repo, tag: str) -> None:
    repo.write("bases/api/kustomization.yaml",
               "resources: [deployment.yaml]\n"
               "configMapGenerator: [{name: api-config, literals: [MODE=normal]}]\n")
    repo.write("bases/api/deployment.yaml", BASE_DEPLOYMENT.replace("{tag}", tag))


def _overlay(repo: st.Repo, app: str, namespace: str, replicas: int) -> None:
    repo.app(app, "prod", extra="timeout: 90s\n")
    repo.write(f"apps/{app}/kustomization.yaml",
               f"namespace: {namespace}\nresources: [../../bases/api]\n"
               "patches: [{path: replicas.yaml}]\n"
               f"commonLabels: {{environment: {app}}}\n")
    repo.write(f"apps/{app}/replicas.yaml",
               "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"
               f"spec: {{replicas: {replicas}}}\n")


def _deployment(kube: KubeTest, namespace: str, name: str) -> dict[str, Any]:
    found = kube.env.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert found is not None, f"{namespace}/{name} was not deployed"
    return found


def test_two_overlays_deploy_their_own_objects_and_a_base_change_shows_in_both(
    engine: Engine, repo: st.Repo, kube: KubeTest, second_namespace: str
) -> None:
    _base(repo, "1.0")
    _overlay(repo, "api-staging", kube.namespace, 1)
    _overlay(repo, "api-prod", second_namespace, 3)
    repo.commit("api, staging and prod")
    first = engine.sync()
    assert first.result == "success", first.message
    for namespace, replicas, env in ((kube.namespace, 1, "api-staging"),
                                     (second_namespace, 3, "api-prod")):
        live = _deployment(kube, namespace, "api")
        assert live["spec"]["replicas"] == replicas
        assert live["metadata"]["labels"]["environment"] == env
        configs = kube.env.get(f"/api/v1/namespaces/{namespace}/configmaps")
        assert configs is not None
        generated = [c["metadata"]["name"] for c in configs["items"]
                     if c["metadata"]["name"].startswith("api-config-")]
        assert len(generated) == 1  # the generated ConfigMap, with its hash suffix

    _base(repo, "2.0")
    repo.commit("api 2.0 in the base")
    plan = engine.plan()
    updates = {(c.app, str(c.id)): c for c in plan.changes() if c.action is Action.UPDATE}
    assert set(updates) == {("api-staging", f"Deployment.apps/{kube.namespace}/api"),
                            ("api-prod", f"Deployment.apps/{second_namespace}/api")}
    for change in updates.values():
        assert "-          image: registry.example.com/api:1.0" in change.diff
        assert "+          image: registry.example.com/api:2.0" in change.diff
    assert plan.summary() == {"create": 0, "update": 2, "delete": 0}

    kube.proxy.reset_counts()
    second = engine.sync()
    assert second.result == "success", second.message
    for namespace in (kube.namespace, second_namespace):
        image = _deployment(kube, namespace, "api")["spec"]["template"]["spec"][
            "containers"][0]["image"]
        assert image == "registry.example.com/api:2.0"
    assert sorted(w[1] for w in st.object_writes(kube)) == sorted(
        f"/apis/apps/v1/namespaces/{ns}/deployments/api"
        for ns in (kube.namespace, second_namespace))


def _chart(repo: st.Repo) -> None:
    for name, text in CHART.items():
        repo.write(f"charts/hello/{name}", text)


def _helm_app(repo: st.Repo, app: str, namespace: str, values: str) -> None:
    repo.app(app, "prod", extra=f"timeout: 90s\nhelm:\n  chart: charts/hello\n"
                                f"  values: [values.yaml]\n  release: {app}\n"
                                f"  namespace: {namespace}\n")
    repo.write(f"apps/{app}/values.yaml", values)


def test_a_chart_with_values_per_environment_deploys_and_a_value_touches_only_its_object(
    engine: Engine, repo: st.Repo, kube: KubeTest, second_namespace: str
) -> None:
    _chart(repo)
    _helm_app(repo, "hello-staging", kube.namespace, "greeting: Hi\n")
    _helm_app(repo, "hello-prod", second_namespace, "greeting: Good day\nreplicas: 2\n")
    repo.commit("hello in two environments")
    first = engine.sync()
    assert first.result == "success", first.message
    assert first.summary == {"create": 4, "update": 0, "delete": 0}
    staging = kube.env.get(f"/api/v1/namespaces/{kube.namespace}/configmaps/hello-staging-greeting")
    prod = kube.env.get(f"/api/v1/namespaces/{second_namespace}/configmaps/hello-prod-greeting")
    assert staging is not None and staging["data"] == {"greeting": "Hi"}
    assert prod is not None and prod["data"] == {"greeting": "Good day"}
    assert _deployment(kube, kube.namespace, "hello-staging")["spec"]["replicas"] == 1
    assert _deployment(kube, second_namespace, "hello-prod")["spec"]["replicas"] == 2

    repo.write("apps/hello-prod/values.yaml", "greeting: Good evening\nreplicas: 2\n")
    repo.commit("a new greeting in prod")
    plan = engine.plan()
    (change,) = plan.changes()
    assert (change.app, str(change.id), change.action) == (
        "hello-prod", f"ConfigMap/{second_namespace}/hello-prod-greeting", Action.UPDATE)
    assert "-  greeting: Good day" in change.diff and "+  greeting: Good evening" in change.diff

    kube.proxy.reset_counts()
    second = engine.sync()
    assert second.result == "success", second.message
    assert second.summary == {"create": 0, "update": 1, "delete": 0}
    assert [w[1] for w in st.object_writes(kube)] == [
        f"/api/v1/namespaces/{second_namespace}/configmaps/hello-prod-greeting"]
    prod = kube.env.get(f"/api/v1/namespaces/{second_namespace}/configmaps/hello-prod-greeting")
    assert prod is not None and prod["data"] == {"greeting": "Good evening"}


def test_a_chart_that_fails_to_render_is_an_error_and_nothing_is_applied(
    engine: Engine, repo: st.Repo, kube: KubeTest, tmp_path: Path
) -> None:
    _chart(repo)
    _helm_app(repo, "hello", kube.namespace, "greeting: Hi\n")
    repo.write("apps/plain/app.yaml", "target: prod\n")
    repo.write("apps/plain/config.yaml", st.configmap("plain", {"k": "v"}, kube.namespace))
    repo.write("charts/hello/templates/needs-tag.yaml",
               "{{ required \"the release needs .Values.owner\" .Values.owner }}\n")
    sha = repo.commit("a chart that needs a value nobody set")

    kube.proxy.reset_counts()
    result = engine.sync()
    assert result.result == "error"
    (problem,) = result.problems
    assert str(problem.location) == "apps/hello/app.yaml:4"
    assert problem.message.startswith("app 'hello': helm template failed: Error: ")
    assert "the release needs .Values.owner" in problem.message
    assert kube.proxy.writes() == []  # not even the plain app next to it
    assert st.live_object(kube, "configmaps", "plain") is None
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.result == "error"

    # The CLI says the same: exit 2 from validate, sync and plan.
    data = tmp_path / "cli-data"
    for command in ("validate", "sync", "plan"):
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", command, "--repo", repo.url, "--rev", sha,
             "--data-dir", str(data)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(PROJECT)})
        assert done.returncode == 2, (command, done.stderr)
        assert "apps/hello/app.yaml:4: app 'hello': helm template failed: " in done.stderr
        assert "the release needs .Values.owner" in done.stderr
    assert kube.proxy.writes() == []


def test_reconciler_plan_shows_the_diff_of_rendered_objects(
    engine: Engine, repo: st.Repo, kube: KubeTest, second_namespace: str, tmp_path: Path
) -> None:
    _base(repo, "1.0")
    _overlay(repo, "api-staging", kube.namespace, 1)
    repo.commit("api in staging")
    assert engine.sync().result == "success"
    _overlay(repo, "api-staging", kube.namespace, 4)
    repo.commit("api-staging scaled to 4")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--repo", repo.url, "--rev", "main",
         "--data-dir", str(tmp_path / "cli-data")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert done.returncode == 0, done.stderr
    assert f"Deployment.apps/{kube.namespace}/api" in done.stdout
    assert "-  replicas: 1" in done.stdout and "+  replicas: 4" in done.stdout



def test_pull_request_plans_show_rendered_diffs_and_render_errors(
    engine: Engine, repo: st.Repo, kube: KubeTest, second_namespace: str
) -> None:
    _base(repo, "1.0")
    _overlay(repo, "api-staging", kube.namespace, 1)
    _overlay(repo, "api-prod", second_namespace, 3)
    _chart(repo)
    _helm_app(repo, "hello", kube.namespace, "greeting: Hi\n")
    repo.commit("deployed")
    assert engine.sync().result == "success"

    repo.branch("new-base")
    _base(repo, "2.0")
    repo.commit("api 2.0")
    good = repo.publish_pull_request(1, "new-base")
    repo.branch("bad-chart", "main")
    repo.write("charts/hello/templates/broken.yaml", "{{ .Values.nothing.here }}\n")
    repo.commit("a template that dereferences nothing")
    bad = repo.publish_pull_request(2, "bad-chart")

    kube.proxy.reset_counts()
    results = {r.sha: r for r in pulls.PullRequestPlanner(engine=engine).scan()}
    assert kube.proxy.writes() == []
    assert results[good].state is State.SUCCESS
    assert results[good].description == "0 to create, 2 to change, 0 to delete"
    plan = results[good].record()["plan"]
    changes = {(app["app"], c["resource"]): c for wave in plan["waves"]
               for app in wave["apps"] for c in app["changes"]}
    assert set(changes) == {("api-staging", f"Deployment.apps/{kube.namespace}/api"),
                            ("api-prod", f"Deployment.apps/{second_namespace}/api")}
    assert all("+          image: registry.example.com/api:2.0" in c["diff"]
               for c in changes.values())

    assert results[bad].state is State.ERROR
    (problem,) = results[bad].problems
    assert problem.startswith("apps/hello/app.yaml:4: app 'hello': helm template failed: ")
    assert "nil pointer evaluating interface {}.here" in problem
