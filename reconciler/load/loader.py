"""load(): a state tree in, a validated DesiredState out, or every problem at once.

The steps: scan the tree's layout, parse reconciler.yaml, each app.yaml and
each resource file (through the cache, by blob id), then the checks that span
files: known targets, raw-file sources, restart_on references, duplicate
identities per target, and the wave/depends_on graph. Nothing is returned
unless every check passed, so a commit is applied whole or not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from reconciler.errors import Problem, ValidationError
from reconciler.load.apps import AppSpec, parse_app
from reconciler.load.cache import LoadCache
from reconciler.load.graph import check_graph
from reconciler.load.layout import CONFIG_FILE, MAX_RAW_BYTES, Layout, scan
from reconciler.load.resources import ParsedResource, parse_resource
from reconciler.load.schema import Problems, suggest
from reconciler.load.targets import Config, parse_config
from reconciler.load.tenants import AppUse, check_tenants
from reconciler.load.yamlio import MAX_YAML_BYTES, Document, shown
from reconciler.model import App, BackendKind, DesiredState, Location, Resource, Target
from reconciler.tree import EntryKind, StateTree, TreeEntry


@dataclasses.dataclass(frozen=True, kw_only=True)
class _AppUnit:
    """One app folder, validated on its own (cross-app checks come after)."""

    spec: AppSpec | None
    items: tuple[ParsedResource, ...] = ()
    keys: tuple[tuple[str, ...], ...] = ()
    app: App | None = None
    """The finished app with its resources, when the folder itself is valid."""
    problems: tuple[Problem, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class _FileResult:
    """The validated resources of one file, as cached."""

    items: tuple[ParsedResource, ...]
    problems: tuple[Problem, ...]
    keys: tuple[tuple[str, ...], ...]
    """(target, *identity) of each item, for the duplicate check across files."""


def load(tree: StateTree, *, cache: LoadCache | None = None) -> DesiredState:
    """Parse and validate the state tree; raise ValidationError with every problem."""
    cache = cache if cache is not None else LoadCache(keep=1)
    cache.begin()
    try:
        return _Loader(tree, cache).run()
    finally:
        cache.end()


class _Loader:
    def __init__(self, tree: StateTree, cache: LoadCache) -> None:
        self.tree = tree
        self.cache = cache
        self.problems: list[Problem] = []
        self.layout = Layout()
        self.config_key: tuple[str, ...] = ()

    def run(self) -> DesiredState:
        self.layout = scan(self.tree)
        self.problems.extend(self.layout.problems)
        config = self._config()
        units = {name: self._app_unit(name, config) for name in sorted(self.layout.apps)}
        specs = {name: u.spec for name, u in units.items() if u.spec is not None}
        keys = [key for unit in units.values() for key in unit.keys]
        if len(set(keys)) != len(keys):
            self._check_duplicates({name: u.items for name, u in units.items()}, specs)
        graph_key = ("graph", *((n, s.app.wave, tuple(s.dependency_lines.items()),
                                 s.app.location.file) for n, s in specs.items()))
        self.problems.extend(self.cache.result(graph_key, lambda: tuple(check_graph(specs))))
        if config.tenants:
            uses = [AppUse(app=name, file=u.spec.app.location.file, target=u.spec.app.target,
                           target_line=u.spec.target_line, resources=u.items)
                    for name, u in units.items()
                    if u.spec is not None and u.spec.app.target in config.targets]
            self.problems.extend(check_tenants(config.tenants, uses, config.targets))
        if self.problems:
            raise ValidationError(self.problems)
        apps = {name: unit.app for name, unit in units.items() if unit.app is not None}
        return DesiredState(revision=self.tree.revision, targets=config.targets, apps=apps,
                            sync_windows=config.sync_windows, prune_default=config.prune,
                            retry=config.retry)

    def _app_unit(self, name: str, config: Config) -> _AppUnit:
        """Everything one app folder yields, cached by the folder's content and the
        config's, so an unchanged app costs one lookup. Folders holding symlinks
        may depend on files elsewhere, so they are recomputed every time."""
        files = self.layout.apps[name]

        def compute() -> _AppUnit:
            outer, self.problems = self.problems, []
            try:
                return self._compute_unit(name, config)
            finally:
                self.problems = outer

        if any(e.kind is EntryKind.SYMLINK for e in files.entries):
            unit = compute()
        else:
            signature = tuple((e.path, e.blob_id) for e in files.entries)
            unit = self.cache.result(("unit", name, self.config_key, signature), compute)
        self.problems.extend(unit.problems)
        return unit

    def _compute_unit(self, name: str, config: Config) -> _AppUnit:
        spec = self._app_spec(name, config)
        target = self._target_of(spec, config) if spec is not None else None
        if spec is None or target is None:
            return _AppUnit(spec=spec, problems=tuple(self.problems))
        if spec.app.options and target.backend is not BackendKind.KUBERNETES:
            self._add(spec.app.location.file, spec.options_line,
                      f"'kubernetes' options need a kubernetes target; {target.name!r} is "
                      f"{target.backend.value}")
        keys: list[tuple[str, ...]] = []
        items = self._resources(name, target, keys)
        self._check_restart_on(name, items)
        app = dataclasses.replace(spec.app, resources=self._resolve_sources(items))
        return _AppUnit(spec=spec, items=tuple(items), keys=tuple(keys), app=app,
                        problems=tuple(self.problems))

    def _add(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(location=Location(file=file, line=line), message=message))

    def _documents(self, entry: TreeEntry) -> tuple[str, str, tuple[Document, ...]] | None:
        """(path for locations, blob id, documents) of a YAML entry, or None after
        reporting why it cannot be read."""
        real: TreeEntry | None = entry
        if entry.kind is EntryKind.SYMLINK:
            if entry.path in self.layout.bad_links:
                return None
            real, why = self.layout.resolve(entry.path)
            if real is None:
                self._add(entry.path, 1, f"symlink cannot be followed: {why}")
                return None
        assert real is not None
        if real.size > MAX_YAML_BYTES:
            self._add(real.path, 1, f"YAML file is {real.size} bytes, over the limit of "
                                    f"{MAX_YAML_BYTES}; it was not parsed")
            return None
        parsed = self.cache.parsed(real.blob_id, lambda: self.tree.read(real))
        for line, message in parsed.errors:
            self._add(real.path, line, message)
        return (real.path, real.blob_id, parsed.documents) if not parsed.errors else None

    def _single(self, entry: TreeEntry, what: str) -> tuple[str, str, Document] | None:
        found = self._documents(entry)
        if found is None:
            return None
        path, blob, docs = found
        if not docs:
            self._add(path, 1, f"{what} is empty; it must hold one YAML mapping")
            return None
        if len(docs) != 1:
            line = docs[1].line
            self._add(path, line, f"{what} must hold exactly one YAML document, not {len(docs)}")
            return None
        return path, blob, docs[0]

    def _config(self) -> Config:
        if self.layout.config is None:
            self._add(CONFIG_FILE, 1, "the state root has no reconciler.yaml")
            return Config()
        found = self._single(self.layout.config, CONFIG_FILE)
        if found is None:
            return Config()
        path, blob, doc = found

        def compute() -> tuple[Config, tuple[Problem, ...]]:
            p = Problems(path)
            return parse_config(p, doc.value, doc.line), tuple(p.items)

        self.config_key = ("config", blob, path)
        config, problems = self.cache.result(self.config_key, compute)
        self.problems.extend(problems)
        return config

    def _app_spec(self, name: str, config: Config) -> AppSpec | None:
        entry = self.layout.apps[name].app_yaml
        found = self._single(entry, "app.yaml") if entry is not None else None
        if found is None:
            return None
        path, _, doc = found
        p = Problems(path)
        spec = parse_app(p, name, doc.value, doc.line, prune=config.prune,
                         rollback=config.rollback)
        self.problems.extend(p.items)
        return spec

    def _target_of(self, spec: AppSpec, config: Config) -> Target | None:
        name = spec.app.target
        target = config.targets.get(name)
        if target is None and name and config.parsed and name not in config.declared:
            self._add(spec.app.location.file, spec.target_line,
                      f"unknown target {shown(name)}{suggest(name, config.declared)}")
        return target

    def _resources(self, app: str, target: Target,
                   keys: list[tuple[str, ...]]) -> list[ParsedResource]:
        out: list[ParsedResource] = []
        for entry in self.layout.apps[app].resources:
            found = self._documents(entry)
            if found is None:
                continue
            path, blob, docs = found

            def compute(path: str = path, docs: tuple[Document, ...] = docs) -> _FileResult:
                p = Problems(path)
                items = tuple(r for doc in docs
                              for r in parse_resource(p, target.backend, app, doc))
                return _FileResult(items=items, problems=tuple(p.items),
                                   keys=tuple((target.name, *r.identity) for r in items))

            key = ("resources", blob, path, app, target.name, target.backend)
            result = self.cache.result(key, compute)
            self.problems.extend(result.problems)
            out.extend(result.items)
            keys.extend(result.keys)
        return out

    def _resolve_sources(self, parsed: Iterable[ParsedResource]) -> tuple[Resource, ...]:
        out: list[Resource] = []
        for item in parsed:
            resource = item.resource
            if item.source is not None:
                entry, why = self.layout.resolve(item.source)
                if entry is None:
                    self._add(resource.location.file, item.source_line, f"File: source: {why}")
                    continue
                if entry.size > MAX_RAW_BYTES:
                    continue  # reported by the layout scan
                body = dict(resource.body)
                body["content"] = self.tree.read(entry)
                resource = dataclasses.replace(resource, body=body)
            out.append(resource)
        return tuple(out)

    def _check_restart_on(self, app: str, parsed: list[ParsedResource]) -> None:
        if not any(item.restart_on for item in parsed):
            return
        files = {r.resource.id.name for r in parsed if r.resource.id.kind == "File"}
        for item in parsed:
            for path, line in item.restart_on:
                if path not in files:
                    self._add(item.resource.location.file, line,
                              f"Service: restart_on {shown(path)} is not a File of app {app!r}")

    def _check_duplicates(self, resources: dict[str, tuple[ParsedResource, ...]],
                          specs: dict[str, AppSpec]) -> None:
        seen: dict[tuple[str, ...], ParsedResource] = {}
        for app in sorted(resources):
            target = specs[app].app.target
            for item in resources[app]:
                key = (target, *item.identity)
                first = seen.setdefault(key, item)
                if first is not item:
                    here = item.resource
                    self._add(here.location.file, here.location.line,
                              f"duplicate resource {here.id} on target {target!r}: "
                              f"already defined at {first.resource.location}")
