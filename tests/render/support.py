"""State repositories with rendered apps, and their commits read as the daemon reads them.

`RenderRepo` writes a Kustomize base outside apps/ with overlays per namespace,
and a small Helm chart with values per app. `tree_of` reads a commit through a
bare mirror (`reconciler.source.Mirror`), so renders run from git objects with
no checkout anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.source import Mirror
from reconciler.source.gittree import GitTree
from tests.support.gitrepo import GitRepo

BASE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: registry.example.com/api:{tag}
"""

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: hello\nversion: 1.0.0\n",
    "values.yaml": "replicas: 1\ngreeting: Hello\ntag: '1.0'\n",
    "templates/configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-greeting
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
""",
    "templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: hello
          image: "registry.example.com/hello:{{ .Values.tag }}"
""",
}


@dataclass
class RenderRepo(GitRepo):
    target: str = "{backend: kubernetes, namespace: default}"

    def config(self, target: str | None = None) -> None:
        self.write("reconciler.yaml", "apiVersion: reconciler/v1\ntargets:\n"
                                      f"  k8s: {target or self.target}\n")

    def base(self, tag: str = "1.0") -> None:
        self.write("bases/api/kustomization.yaml", "resources: [deployment.yaml]\n")
        self.write("bases/api/deployment.yaml", BASE_DEPLOYMENT.replace("{tag}", tag))

    def overlay(self, app: str, namespace: str, replicas: int, extra: str = "") -> None:
        self.write(f"apps/{app}/app.yaml", "target: k8s\n")
        self.write(f"apps/{app}/kustomization.yaml",
                   f"namespace: {namespace}\nresources: [../../bases/api]\n"
                   f"patches: [{{path: replicas.yaml}}]\n{extra}")
        self.write(f"apps/{app}/replicas.yaml",
                   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"
                   f"spec: {{replicas: {replicas}}}\n")

    def chart(self, folder: str = "charts/hello") -> None:
        for name, text in CHART.items():
            self.write(f"{folder}/{name}", text)

    def helm_app(self, app: str, namespace: str, values: str, *, release: str = "hello",
                 chart: str = "charts/hello") -> None:
        self.write(f"apps/{app}/app.yaml",
                   f"target: k8s\nhelm:\n  chart: {chart}\n  values: [values.yaml]\n"
                   f"  release: {release}\n  namespace: {namespace}\n")
        self.write(f"apps/{app}/values.yaml", values)


def make_repo(tmp: Path) -> RenderRepo:
    repo = RenderRepo(path=tmp / "state")
    repo.init()
    repo.config()
    return repo


def tree_of(repo: GitRepo, data: Path, rev: str = "main") -> GitTree:
    mirror = Mirror(f"file://{repo.path}", data)
    mirror.fetch()
    return mirror.tree(mirror.resolve(rev))
