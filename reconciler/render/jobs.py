"""Which apps of a state tree are rendered, with what, and under which cache key.

Pure: reads the tree's listing and the app.yaml and reconciler.yaml it needs
(through the load cache when there is one), starts nothing. A rendered app is
a folder with a kustomization file, or an app.yaml with a `helm` key; its
other files are inputs of the tool, never manifests of their own.

What a render can see, and so what its key covers: the app's own folder and
every file of the state root outside apps/ (where bases and charts live).
Other apps' folders are not visible to it, so an overlay cannot quietly
depend on a folder whose changes its key would miss.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from backends.kubernetes.options import Options as KubernetesOptions
from reconciler.errors import Problem
from reconciler.load.cache import LoadCache
from reconciler.load.layout import CONFIG_FILE
from reconciler.load.rendered import HelmSpec, kustomization_in, parse_helm
from reconciler.load.schema import Problems
from reconciler.load.targets import Config, parse_config
from reconciler.load.vm import relative_parts
from reconciler.load.yamlio import MAX_YAML_BYTES, ParsedYaml, YamlMap, parse_yaml
from reconciler.model import BackendKind, Location
from reconciler.tree import EntryKind, StateTree, TreeEntry

Kind = Literal["kustomize", "helm"]


@dataclass(frozen=True, kw_only=True)
class Job:
    app: str
    kind: Kind
    location: Location
    """Where a render error points: the kustomization file, or app.yaml's `helm` line."""
    files: tuple[TreeEntry, ...]
    """Every file of the app folder (app.yaml included)."""
    helm: HelmSpec | None = None
    namespace: str = ""
    """The release namespace of a Helm app (its own, or its target's)."""
    target: str = ""
    """The app's target as app.yaml names it ("" when it names none)."""

    def key(self, tool_identity: str, shared: str) -> str:
        """The render cache key: every input of this render, hashed."""
        h = hashlib.sha256()
        for part in (self.kind, tool_identity, shared, self.app, self.namespace,
                     repr(self.helm)):
            h.update(part.encode() + b"\0")
        for e in self.files:
            h.update(f"{e.path}\0{e.blob_id}\0{e.kind.value}\0".encode())
        return h.hexdigest()


@dataclass(kw_only=True)
class Jobs:
    jobs: list[Job] = field(default_factory=list)
    hidden: set[str] = field(default_factory=set)
    """Paths that are a rendered app's inputs: the loader never sees them."""
    shared: list[TreeEntry] = field(default_factory=list)
    """The files outside apps/, visible to every render."""
    problems: list[Problem] = field(default_factory=list)

    def shared_signature(self) -> str:
        h = hashlib.sha256()
        for e in self.shared:
            h.update(f"{e.path}\0{e.blob_id}\0{e.kind.value}\0".encode())
        return h.hexdigest()


def plan_jobs(tree: StateTree, entries: Sequence[TreeEntry],
              cache: LoadCache | None = None) -> Jobs:
    by_path = {e.path: e for e in entries}
    folders: dict[str, list[TreeEntry]] = {}
    out = Jobs()
    for e in entries:
        parts = e.path.split("/")
        if parts[0] != "apps":
            out.shared.append(e)
        elif len(parts) >= 3:
            folders.setdefault(parts[1], []).append(e)

    parsed = yaml_reader(tree, cache)

    config: Config | None = None
    for app, files in sorted(folders.items()):
        kustomization = kustomization_in(by_path, f"apps/{app}")
        app_yaml = by_path.get(f"apps/{app}/app.yaml")
        doc = _mapping(parsed(app_yaml)) if app_yaml is not None else None
        if kustomization is None and (doc is None or "helm" not in doc):
            continue
        out.hidden.update(e.path for e in files if e is not app_yaml)
        if app_yaml is None and kustomization is not None:
            out.problems.append(Problem(location=Location(file=kustomization, line=1), message=(
                f"apps/{app}/ has a kustomization but no app.yaml")))
        if app_yaml is None:
            continue
        if doc is None:
            # A symlink, or what the loader reports as a broken app.yaml: a
            # Kustomize app still needs nothing from it to render.
            if kustomization is not None:
                out.jobs.append(Job(app=app, kind="kustomize", files=tuple(files),
                                    location=Location(file=kustomization, line=1)))
            continue
        if config is None:
            config = _config(by_path.get(CONFIG_FILE), parsed)
        job = _job(app, doc, app_yaml.path, kustomization, tuple(files), config, out.problems)
        if job is not None:
            out.jobs.append(job)
    return out


def yaml_reader(tree: StateTree, cache: LoadCache | None) -> Callable[[TreeEntry], ParsedYaml]:
    """Parse a tree's YAML file, through the load cache when there is one. A
    symlink or a file over the loader's size limit reads as nothing: the
    loader reports it, and nothing here should parse it first."""
    def parsed(entry: TreeEntry) -> ParsedYaml:
        if entry.kind is not EntryKind.FILE or entry.size > MAX_YAML_BYTES:
            return ParsedYaml()
        read: Callable[[], bytes] = lambda: tree.read(entry)  # noqa: E731
        return cache.parsed(entry.blob_id, read) if cache is not None else parse_yaml(read())
    return parsed


def _job(app: str, doc: YamlMap, app_path: str, kustomization: str | None,
         files: tuple[TreeEntry, ...], config: Config, problems: list[Problem]) -> Job | None:
    def problem(line: int, message: str) -> None:
        problems.append(Problem(location=Location(file=app_path, line=line), message=message))

    name = doc.get("target")
    target = config.targets.get(name) if isinstance(name, str) else None
    if target is not None and target.backend is not BackendKind.KUBERNETES:
        problem(doc.line_of("target"), f"app {app!r} is rendered by "
                f"{'kustomize' if kustomization else 'helm'}, which makes Kubernetes "
                f"manifests, but its target {target.name!r} is a {target.backend.value} target")
        return None
    if kustomization is not None:
        if "helm" in doc:
            problem(doc.line_of("helm"), f"app {app!r} has both a 'helm' chart and "
                                         f"{kustomization}: render it with one of them")
            return None
        return Job(app=app, kind="kustomize", location=Location(file=kustomization, line=1),
                   files=files, target=name if isinstance(name, str) else "")
    spec = parse_helm(Problems(app_path), doc["helm"], doc.line_of("helm"), app)
    if spec is None:
        return None  # the loader reports what is wrong with the key
    namespace = spec.namespace
    if not namespace and target is not None:
        options = target.options
        namespace = options.namespace if isinstance(options, KubernetesOptions) else "default"
    return Job(app=app, kind="helm", location=Location(file=app_path, line=doc.line_of("helm")),
               files=files, helm=spec, namespace=namespace or "default",
               target=name if isinstance(name, str) else "")


def _mapping(parsed: ParsedYaml) -> YamlMap | None:
    if parsed.errors or len(parsed.documents) != 1:
        return None
    value = parsed.documents[0].value
    return value if isinstance(value, YamlMap) else None


def _config(entry: TreeEntry | None, parsed: Callable[[TreeEntry], ParsedYaml]) -> Config:
    doc = _mapping(parsed(entry)) if entry is not None else None
    if doc is None:
        return Config()
    return parse_config(Problems(CONFIG_FILE), doc, doc.line)


_LOCAL_LISTS = ("resources", "bases", "components", "crds", "configurations", "generators",
                "transformers", "validators", "patchesStrategicMerge")
_PATH_ITEMS = ("patches", "patchesJson6902")
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://|^git@|^(github|gitlab|bitbucket)\.(com|org)/", re.I)


def remote_reference(start: str, entries: dict[str, TreeEntry],
                     parsed: Callable[[TreeEntry], ParsedYaml]) -> str | None:
    """The first URL that the kustomization `start`, or one it builds on, names
    as a file or folder to read: rendering is offline, so such an app is refused
    before kustomize runs rather than left to fail on the network."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        doc = _mapping(parsed(entries[path]))
        if doc is None:
            continue  # kustomize reports what is wrong with it
        folder = path.rpartition("/")[0]
        for ref in _references(doc):
            if _REMOTE.search(ref):
                return ref
            parts = relative_parts(f"{folder}/{ref}")
            if parts is None:
                continue
            inner = kustomization_in(entries, "/".join(parts))
            if inner is not None:
                todo.append(inner)
    return None


def _references(doc: YamlMap) -> Iterator[str]:
    for key in _LOCAL_LISTS:
        items = doc.get(key)
        if isinstance(items, list):
            yield from (item for item in items if isinstance(item, str))
    for key in _PATH_ITEMS:
        items = doc.get(key)
        if isinstance(items, list):
            yield from (item["path"] for item in items
                        if isinstance(item, dict) and isinstance(item.get("path"), str))
    openapi = doc.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield openapi["path"]
