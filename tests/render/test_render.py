"""Rendering with the real kustomize and helm, from commits read out of a bare mirror.

What is checked: the rendered objects are what the tools make (patched per
overlay, values per app), loaded with locations in the rendered output; render
errors are validation problems naming the app, its file and the tool's own
message; the cache renders an app again only when something it can read
changed; rendering never reaches the network, and an app cannot read another
app's folder.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import ValidationError
from reconciler.load import LoadCache, load
from reconciler.model import DesiredState
from reconciler.render import Renderer, load_rendered
from reconciler.tree import DirectoryTree
from tests.render.support import RenderRepo, make_repo, tree_of

pytestmark = pytest.mark.usefixtures("render_tools")


@pytest.fixture
def repo(tmp_path: Path) -> RenderRepo:
    return make_repo(tmp_path)


def _load(repo: RenderRepo, data: Path, renderer: Renderer | None = None,
          cache: LoadCache | None = None) -> DesiredState:
    return load_rendered(tree_of(repo, data), renderer=renderer, cache=cache)


def _problems(repo: RenderRepo, data: Path) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _load(repo, data)
    return [str(p) for p in caught.value.problems]


def test_two_overlays_of_one_base_render_their_own_patched_objects(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.base()
    repo.overlay("api-staging", "staging", 1)
    repo.overlay("api-prod", "prod", 3)
    repo.commit("api in two namespaces")
    desired = _load(repo, tmp_path / "data")
    for app, namespace, replicas in (("api-staging", "staging", 1), ("api-prod", "prod", 3)):
        (deployment,) = desired.apps[app].resources
        assert str(deployment.id) == f"Deployment.apps/{namespace}/api"
        assert deployment.body["spec"]["replicas"] == replicas
        assert deployment.location.file == f"apps/{app}/(kustomize build).yaml"
        assert deployment.location.line == 1


def test_a_helm_app_renders_its_chart_with_its_own_values(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.chart()
    repo.helm_app("hello-a", "team-a", "greeting: Hi\nreplicas: 2\n", release="hello-a")
    repo.helm_app("hello-b", "team-b", "greeting: Hallo\n", release="hello-b")
    repo.commit("hello twice")
    desired = _load(repo, tmp_path / "data")
    a = {r.id.kind: r for r in desired.apps["hello-a"].resources}
    b = {r.id.kind: r for r in desired.apps["hello-b"].resources}
    assert str(a["ConfigMap"].id) == "ConfigMap/team-a/hello-a-greeting"
    assert a["ConfigMap"].body["data"] == {"greeting": "Hi"}
    assert a["Deployment"].body["spec"]["replicas"] == 2
    assert b["ConfigMap"].body["data"] == {"greeting": "Hallo"}
    assert b["Deployment"].body["spec"]["replicas"] == 1  # the chart's default
    # helm's "# Source:" comment lines stay in the output the locations count in.
    assert a["ConfigMap"].location.file == "apps/hello-a/(helm template).yaml"
    assert a["ConfigMap"].location.line > 1


def test_a_helm_release_defaults_to_the_app_name_and_the_target_namespace(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.config("{backend: kubernetes, namespace: shop}")
    repo.chart()
    repo.write("apps/hello/app.yaml", "target: k8s\nhelm: {chart: charts/hello}\n")
    repo.commit("defaults")
    ids = {str(r.id) for r in _load(repo, tmp_path / "data").apps["hello"].resources}
    assert ids == {"ConfigMap/shop/hello-greeting", "Deployment.apps/shop/hello"}


def test_a_chart_that_fails_to_render_is_a_problem_with_helms_message(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.chart()
    repo.write("charts/hello/templates/broken.yaml",
               "value: {{ required \"set tag!\" .Values.x }}\n")
    repo.helm_app("hello", "team-a", "greeting: Hi\n")
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.commit("a broken chart")
    problems = _problems(repo, tmp_path / "data")
    # One problem, at app.yaml's helm key; the healthy Kustomize app adds none.
    assert len(problems) == 1, problems
    assert problems[0].startswith("apps/hello/app.yaml:2: app 'hello': helm template failed: ")
    assert "set tag!" in problems[0]
    assert "/tmp/" not in problems[0]  # the private folder's path is not shown


def test_a_kustomize_error_names_the_app_and_kustomizes_message(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.write("apps/api/kustomization.yaml", "resources: [../../bases/api, missing.yaml]\n")
    repo.commit("names a file that is not there")
    (problem,) = _problems(repo, tmp_path / "data")
    assert problem.startswith("apps/api/kustomization.yaml:1: app 'api': kustomize build failed: ")
    assert "missing.yaml" in problem


def test_an_error_in_a_rendered_object_points_into_the_rendered_output(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.base()
    # kustomize passes any apiVersion through; the loader does not.
    repo.write("bases/api/odd.yaml", "apiVersion: V1\nkind: ConfigMap\nmetadata: {name: odd}\n")
    repo.write("bases/api/kustomization.yaml", "resources: [deployment.yaml, odd.yaml]\n")
    repo.overlay("api", "staging", 1)
    repo.commit("an apiVersion in capitals")
    (problem,) = _problems(repo, tmp_path / "data")
    assert problem.startswith("apps/api/(kustomize build).yaml:1: manifest: apiVersion 'V1'")


def test_missing_chart_or_values_and_undeclared_dependencies_are_problems(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.chart()
    repo.write("apps/nochart/app.yaml", "target: k8s\nhelm: {chart: charts/nope}\n")
    repo.write("apps/novalues/app.yaml",
               "target: k8s\nhelm: {chart: charts/hello, values: [gone.yaml]}\n")
    # A dependency that is not vendored under charts/: helm would have to fetch it.
    repo.chart("charts/withdep")
    repo.write("charts/withdep/Chart.yaml",
               "apiVersion: v2\nname: withdep\nversion: 1.0.0\ndependencies:\n"
               "  - {name: redis, version: 1.0.0, repository: https://charts.example.com}\n")
    repo.write("apps/withdep/app.yaml", "target: k8s\nhelm: {chart: charts/withdep}\n")
    repo.commit("three bad helm apps")
    problems = "\n".join(_problems(repo, tmp_path / "data"))
    assert "apps/nochart/app.yaml:2: app 'nochart': helm template failed: chart 'charts/nope' " \
           "is not a chart folder" in problems
    assert "values file 'apps/novalues/gone.yaml' is not a file" in problems
    assert "apps/withdep/app.yaml:2: app 'withdep': helm template failed:" in problems
    assert "missing in charts/ directory: redis" in problems


def test_a_vendored_dependency_renders_offline(repo: RenderRepo, tmp_path: Path) -> None:
    repo.chart("charts/umbrella/charts/hello")
    repo.write("charts/umbrella/Chart.yaml",
               "apiVersion: v2\nname: umbrella\nversion: 1.0.0\ndependencies:\n"
               "  - {name: hello, version: 1.0.0, repository: https://charts.example.com}\n")
    repo.write("charts/umbrella/values.yaml", "hello: {greeting: From the umbrella}\n")
    repo.write("apps/umbrella/app.yaml",
               "target: k8s\nhelm: {chart: charts/umbrella, release: big}\n")
    repo.commit("a chart with a vendored subchart")
    resources = _load(repo, tmp_path / "data").apps["umbrella"].resources
    config = next(r for r in resources if r.id.kind == "ConfigMap")
    assert config.body["data"] == {"greeting": "From the umbrella"}


def test_the_helm_key_is_checked_with_file_and_line(repo: RenderRepo, tmp_path: Path) -> None:
    repo.write("apps/bad/app.yaml", "target: k8s\nhelm:\n  chart: /etc\n  values: [../../../x]\n"
                                    "  release: Not_Valid\n  colour: red\n")
    repo.commit("a bad helm key")
    problems = _problems(repo, tmp_path / "data")
    assert "apps/bad/app.yaml:3: helm: chart '/etc' must be a path inside the state " \
           "repository" in problems
    assert any(p.startswith("apps/bad/app.yaml:4: helm: values file") for p in problems)
    assert any(p.startswith("apps/bad/app.yaml:5: helm: release 'Not_Valid'") for p in problems)
    assert any(p.startswith("apps/bad/app.yaml:6: helm: unknown key 'colour'") for p in problems)


def test_rendered_apps_need_a_kubernetes_target_and_one_tool(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.config("{backend: vm, transport: local, root: /tmp/nowhere}")
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.commit("kustomize on a VM target")
    (problem,) = _problems(repo, tmp_path / "data")
    assert problem.startswith("apps/api/app.yaml:1: app 'api' is rendered by kustomize")
    assert "'k8s' is a vm target" in problem

    repo.config()
    repo.chart()
    repo.write("apps/api/app.yaml", "target: k8s\nhelm: {chart: charts/hello}\n")
    repo.commit("both kustomize and helm")
    (problem,) = _problems(repo, tmp_path / "data2")
    assert problem.startswith("apps/api/app.yaml:2: app 'api' has both a 'helm' chart and "
                              "apps/api/kustomization.yaml")


def test_an_unchanged_app_is_not_rendered_again(repo: RenderRepo, tmp_path: Path) -> None:
    repo.base()
    for i in range(3):
        repo.overlay(f"api-{i}", f"ns-{i}", i + 1)
    repo.chart()
    repo.helm_app("hello", "team-a", "greeting: Hi\n")
    repo.commit("four rendered apps")
    renderer, cache = Renderer(), LoadCache()
    data = tmp_path / "data"
    first = _load(repo, data, renderer, cache)
    assert renderer.cache.renders == 4

    again = _load(repo, data, renderer, cache)
    assert renderer.cache.renders == 4
    assert again.apps == first.apps

    # One overlay changed: that app alone is rendered.
    repo.overlay("api-1", "ns-1", 7)
    repo.commit("api-1 scaled")
    changed = _load(repo, data, renderer, cache)
    assert renderer.cache.renders == 5
    assert changed.apps["api-1"].resources[0].body["spec"]["replicas"] == 7

    # The base outside apps/ is an input of every render: all are made again.
    repo.base(tag="2.0")
    repo.commit("new api image")
    rebased = _load(repo, data, renderer, cache)
    assert renderer.cache.renders == 9
    for i in range(3):
        container = rebased.apps[f"api-{i}"].resources[0].body["spec"]["template"]["spec"]
        assert container["containers"][0]["image"] == "registry.example.com/api:2.0"

    # A values file is the helm app's own input; the overlays are not rendered.
    repo.write("apps/hello/values.yaml", "greeting: Bye\n")
    repo.commit("new greeting")
    _load(repo, data, renderer, cache)
    assert renderer.cache.renders == 10


def test_an_overlay_cannot_read_another_apps_folder(repo: RenderRepo, tmp_path: Path) -> None:
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.overlay("copycat", "prod", 1)
    repo.write("apps/copycat/kustomization.yaml", "resources: [../api]\n")
    repo.commit("copycat builds on api's folder")
    (problem,) = _problems(repo, tmp_path / "data")
    assert problem.startswith("apps/copycat/kustomization.yaml:1: app 'copycat': kustomize "
                              "build failed: ")


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that serves a manifest and records every request."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remote}\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_rendering_never_fetches_a_remote_resource(
    repo: RenderRepo, tmp_path: Path, web_server: tuple[str, list[str]]
) -> None:
    url, seen = web_server
    repo.base()
    repo.write("bases/api/kustomization.yaml", f"resources: [deployment.yaml, {url}/cm.yaml]\n")
    repo.overlay("api", "staging", 1)
    repo.overlay("gitbase", "prod", 1)
    git_url = "github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0"
    repo.write("apps/gitbase/kustomization.yaml", f"resources: ['{git_url}']\n")
    repo.commit("remote resources")
    problems = _problems(repo, tmp_path / "data")
    assert len(problems) == 2, problems
    assert f"'{url}/cm.yaml' is not in the repository: rendering runs without network" \
        in problems[0]
    assert "helloWorld" in problems[1] and "without network" in problems[1]
    assert seen == []


def test_a_url_kustomize_itself_would_fetch_fails_without_a_connection(
    repo: RenderRepo, tmp_path: Path
) -> None:
    # A field the pre-check does not read: kustomize tries, through a proxy that
    # refuses every connection, and no name is even looked up.
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.write("apps/api/kustomization.yaml", "resources: [../../bases/api]\n"
               "replacements: [{path: 'https://config.example.com/r.yaml'}]\n")
    repo.commit("a remote replacement file")
    (problem,) = _problems(repo, tmp_path / "data")
    assert "kustomize build failed" in problem
    assert "connection refused" in problem


def test_a_missing_tool_is_named(repo: RenderRepo, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_HELM", str(tmp_path / "no-helm-here"))
    repo.chart()
    repo.helm_app("hello", "team-a", "greeting: Hi\n")
    repo.commit("a helm app")
    (problem,) = _problems(repo, tmp_path / "data")
    assert problem.startswith("apps/hello/app.yaml:2: app 'hello': helm template failed: helm "
                              "is not installed")
    assert "RECONCILER_HELM" in problem


def test_a_renderer_limited_to_other_targets_needs_no_tools(
    repo: RenderRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `reconciler run --target laptop` on a machine without kustomize or helm:
    # the Kubernetes apps it never syncs load with no objects instead of failing.
    monkeypatch.setenv("RECONCILER_HELM", str(tmp_path / "no-helm-here"))
    monkeypatch.setenv("RECONCILER_KUSTOMIZE", str(tmp_path / "no-kustomize-here"))
    repo.chart()
    repo.helm_app("hello", "team-a", "greeting: Hi\n")
    repo.base()
    repo.overlay("api-prod", "prod", 3)
    repo.commit("rendered apps of k8s")
    desired = _load(repo, tmp_path / "data", renderer=Renderer(targets=frozenset({"other"})))
    assert desired.apps["hello"].resources == ()
    assert desired.apps["api-prod"].resources == ()
    with pytest.raises(ValidationError):
        _load(repo, tmp_path / "data2", renderer=Renderer(targets=frozenset({"k8s"})))


def test_limits_of_time_and_output_stop_a_render(repo: RenderRepo, tmp_path: Path) -> None:
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.commit("one overlay")
    tree = tree_of(repo, tmp_path / "data")
    with pytest.raises(ValidationError, match="over the limit of 100 bytes"):
        load_rendered(tree, renderer=Renderer(max_output=100))
    with pytest.raises(ValidationError, match=r"ran longer than 0\.001 s"):
        load_rendered(tree, renderer=Renderer(timeout=0.001))


def test_a_directory_renders_too_and_the_plain_loader_refuses_unrendered_apps(
    repo: RenderRepo
) -> None:
    repo.base()
    repo.overlay("api", "staging", 2)
    tree = DirectoryTree(repo.path)
    (deployment,) = load_rendered(tree).apps["api"].resources
    assert deployment.body["spec"]["replicas"] == 2
    with pytest.raises(ValidationError) as caught:
        load(tree)
    assert "apps/api/kustomization.yaml:1: apps/api/ is a Kustomize app and was not rendered " \
           "before loading" in [str(p) for p in caught.value.problems]


def test_a_kustomization_without_app_yaml_is_a_problem(repo: RenderRepo, tmp_path: Path) -> None:
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.remove("apps/api/app.yaml")
    repo.commit("no app.yaml")
    assert _problems(repo, tmp_path / "data") == [
        "apps/api/kustomization.yaml:1: apps/api/ has a kustomization but no app.yaml"]


def test_a_render_runs_in_a_private_folder_with_only_what_it_may_read(
    repo: RenderRepo, tmp_path: Path, render_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real kustomize, started through a script that first records where and
    # how it runs (it gets no PATH, hence the absolute paths).
    seen = tmp_path / "seen"
    wrapper = tmp_path / "kustomize"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"/usr/bin/stat -c %a .. > {seen}.mode\n"
        f"/usr/bin/pwd > {seen}.cwd\n"
        f"/usr/bin/find . -type f | /usr/bin/sort > {seen}.files\n"
        f"/usr/bin/env > {seen}.env\n"
        f"exec {render_tools / 'kustomize'} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("RECONCILER_KUSTOMIZE", str(wrapper))
    repo.base()
    repo.overlay("api", "staging", 1)
    repo.overlay("other", "prod", 1)
    repo.write("README.md", "state of the shop\n")
    repo.commit("two overlays")
    desired = load_rendered(tree_of(repo, tmp_path / "data"), renderer=Renderer(workers=1))
    assert desired.apps["api"].resources[0].body["spec"]["replicas"] == 1

    assert (tmp_path / "seen.mode").read_text().strip() == "700"
    env = dict(line.split("=", 1) for line in (tmp_path / "seen.env").read_text().splitlines())
    assert env["PATH"] == "" and env["HTTPS_PROXY"] == "http://127.0.0.1:1"
    assert env["HOME"].startswith(str(Path((tmp_path / "seen.cwd").read_text().strip()).parent))
    assert "RECONCILER_KUSTOMIZE" not in env  # nothing of the reconciler's own environment
    files = (tmp_path / "seen.files").read_text().split()
    # The last render made (renders run in app order): its own folder and the
    # files outside apps/, never the other app's folder.
    assert files == ["./README.md", "./apps/other/app.yaml", "./apps/other/kustomization.yaml",
                     "./apps/other/replicas.yaml", "./bases/api/deployment.yaml",
                     "./bases/api/kustomization.yaml", "./reconciler.yaml"]
    # The private folder is gone afterwards.
    assert not Path((tmp_path / "seen.cwd").read_text().strip()).exists()


def test_a_kustomize_app_whose_app_yaml_is_a_symlink_still_renders(
    repo: RenderRepo, tmp_path: Path
) -> None:
    repo.base()
    repo.overlay("api", "staging", 2)
    repo.write("shared/app.yaml", "target: k8s\n")
    repo.remove("apps/api/app.yaml")
    (repo.path / "apps/api/app.yaml").symlink_to("../../shared/app.yaml")
    repo.commit("app.yaml shared through a symlink")
    (deployment,) = _load(repo, tmp_path / "data").apps["api"].resources
    assert deployment.body["spec"]["replicas"] == 2
