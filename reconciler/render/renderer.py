"""Render the Kustomize and Helm apps of a state tree, and hand the loader the result.

`Renderer.render(tree)` returns a `RenderedTree`: the same tree, where each
rendered app's folder holds its app.yaml and one file of the tool's output
(`(kustomize build).yaml` or `(helm template).yaml`) instead of the tool's
inputs, plus the problems of the renders that failed. `load_rendered()` loads
that tree and reports render and load problems together.

Each render that the cache does not answer runs in a private temporary folder
(mode 0700, removed afterwards) into which the app's folder and the files
outside apps/ are written from the tree: from git objects for a commit, never
from a checkout. Renders run on a few threads, each in its own folder, with a
time limit, an output limit and no network (see `run`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reconciler.errors import Problem, ValidationError
from reconciler.load import LoadCache, load
from reconciler.load.rendered import HELM_OUTPUT, KUSTOMIZE_OUTPUT
from reconciler.load.vm import relative_parts
from reconciler.load.yamlio import MAX_YAML_BYTES
from reconciler.model import DesiredState
from reconciler.render.cache import Outcome, RenderCache
from reconciler.render.jobs import Job, plan_jobs, remote_reference, yaml_reader
from reconciler.render.run import offline_env, run_tool
from reconciler.render.tools import Tool, find_tool, missing_message
from reconciler.tree import EntryKind, StateTree, TreeEntry, blob_id

MAX_MESSAGE = 2_000
"""How much of a tool's error message a problem keeps."""
_HELM_DEBUG_HINT = "Use --debug flag to render out invalid YAML"


class RenderedTree:
    """A StateTree whose rendered apps hold their output in place of their inputs."""

    def __init__(self, source: StateTree, entries: list[TreeEntry],
                 outputs: dict[str, bytes], problems: Sequence[Problem]) -> None:
        self.revision = source.revision
        self.problems = tuple(problems)
        self._source = source
        self._entries = entries
        self._outputs = outputs

    def entries(self) -> Iterator[TreeEntry]:
        yield from self._entries

    def read(self, entry: TreeEntry) -> bytes:
        output = self._outputs.get(entry.path)
        return output if output is not None else self._source.read(entry)


class Renderer:
    def __init__(self, *, cache: RenderCache | None = None, timeout: float = 60.0,
                 max_output: int = MAX_YAML_BYTES, workers: int | None = None,
                 targets: frozenset[str] = frozenset()) -> None:
        self.cache = cache if cache is not None else RenderCache()
        self.targets = targets
        """When set, only apps of these targets are rendered: a daemon or sync
        limited to some targets never needs (nor runs) the tools for the others,
        whose apps load with no objects."""
        self.timeout = timeout
        self.max_output = max_output
        self.workers = workers or min(4, os.cpu_count() or 1)

    def render(self, tree: StateTree, load_cache: LoadCache | None = None) -> RenderedTree:
        entries = list(tree.entries())
        jobs = plan_jobs(tree, entries, load_cache)
        if not jobs.jobs and not jobs.hidden:
            return RenderedTree(tree, entries, {}, jobs.problems)
        problems = list(jobs.problems)
        tools = {"kustomize": find_tool("kustomize"), "helm": find_tool("helm")}
        shared = jobs.shared_signature()
        outcomes: dict[str, Outcome] = {}
        misses: list[tuple[Job, str]] = []
        by_path = {e.path: e for e in entries}
        parsed = yaml_reader(tree, load_cache)
        for job in jobs.jobs:
            tool = tools[job.kind]
            if self.targets and job.target not in self.targets:
                outcomes[job.app] = Outcome(output=b"")
                continue
            remote = (remote_reference(job.location.file, by_path, parsed)
                      if job.kind == "kustomize" else None)
            if remote is not None:
                outcomes[job.app] = Outcome(output=None, error=(
                    f"{remote!r} is not in the repository: rendering runs without network, "
                    "so vendor it into the repository"))
                continue
            if not tool.path:
                outcomes[job.app] = Outcome(output=None, error=missing_message(job.kind))
                continue
            key = job.key(tool.identity, shared)
            hit = self.cache.get(key)
            if hit is not None:
                outcomes[job.app] = hit
            else:
                misses.append((job, key))
        if misses:
            outcomes.update(self._run(tree, jobs.shared, misses, tools))
        outputs: dict[str, bytes] = {}
        listing = [e for e in entries if e.path not in jobs.hidden]
        for job in jobs.jobs:
            outcome = outcomes[job.app]
            if outcome.output is None:
                problems.append(Problem(location=job.location, message=(
                    f"app {job.app!r}: {_command(job)} failed: {outcome.error}")))
                continue
            path = f"apps/{job.app}/{KUSTOMIZE_OUTPUT if job.kind == 'kustomize' else HELM_OUTPUT}"
            outputs[path] = outcome.output
            listing.append(TreeEntry(path=path, blob_id=blob_id(outcome.output),
                                     size=len(outcome.output)))
        listing.sort(key=lambda e: e.path)
        return RenderedTree(tree, listing, outputs, problems)

    def _run(self, tree: StateTree, shared: list[TreeEntry], misses: list[tuple[Job, str]],
             tools: dict[str, Tool]) -> dict[str, Outcome]:
        results: dict[str, Outcome] = {}
        with tempfile.TemporaryDirectory(prefix="reconciler-render-") as scratch:
            local = threading.local()
            roots: list[Path] = []
            lock = threading.Lock()

            def root() -> Path:
                # One folder per thread, the shared files written once into each.
                mine: Path | None = getattr(local, "root", None)
                if mine is None:
                    with lock:
                        mine = Path(scratch) / f"w{len(roots)}"
                        roots.append(mine)
                    _write(tree, shared, mine)
                    local.root = mine
                return mine

            def one(item: tuple[Job, str]) -> tuple[str, Outcome]:
                job, key = item
                outcome, keep = self._render(tree, job, root(), tools[job.kind])
                self.cache.count_render()
                if keep:
                    self.cache.put(key, outcome)
                return job.app, outcome

            workers = max(1, min(self.workers, len(misses)))
            if workers == 1:
                results.update(map(one, misses))
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    results.update(pool.map(one, misses))
        return results

    def _render(self, tree: StateTree, job: Job, root: Path, tool: Tool) -> tuple[Outcome, bool]:
        """The outcome of one render, and whether it may be cached."""
        folder = root / "apps" / job.app
        _write(tree, job.files, root)
        try:
            argv = _argv(job, tool.path, root)
            if isinstance(argv, str):
                return Outcome(output=None, error=argv), True
            home = root.parent / f"{root.name}-home"
            run = run_tool(argv, cwd=root, env=offline_env(home), timeout=self.timeout,
                           max_output=self.max_output)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if run.stopped:
            return Outcome(output=None, error=f"stopped: {run.stopped}"), False
        if run.code != 0:
            message = _clean(run.errors, root) or f"exit status {run.code}"
            return Outcome(output=None, error=message), True
        return Outcome(output=run.output), True


def load_rendered(tree: StateTree, *, cache: LoadCache | None = None,
                  renderer: Renderer | None = None) -> DesiredState:
    """Render the tree's Kustomize and Helm apps, then load it: every render and
    load problem together in one ValidationError, or the desired state."""
    rendered = (renderer or Renderer()).render(tree, cache)
    try:
        state = load(rendered, cache=cache)
    except ValidationError as error:
        raise ValidationError([*rendered.problems, *error.problems]) from None
    if rendered.problems:
        raise ValidationError(rendered.problems)
    return state


def _command(job: Job) -> str:
    return "kustomize build" if job.kind == "kustomize" else "helm template"


def _argv(job: Job, tool: str, root: Path) -> list[str] | str:
    """The command line of the render, or why it cannot run."""
    if job.kind == "kustomize":
        return [tool, "build", f"apps/{job.app}"]
    spec = job.helm
    assert spec is not None
    if not (root / spec.chart / "Chart.yaml").is_file():
        return (f"chart {spec.chart!r} is not a chart folder of the state repository "
                "(no Chart.yaml there)")
    argv = [tool, "template", spec.release, spec.chart, "--namespace", job.namespace,
            "--include-crds", "--skip-tests"]
    for values in spec.values:
        if not (root / values).is_file():
            return f"values file {values!r} is not a file of the state repository"
        argv += ["--values", values]
    return argv


def _clean(message: str, root: Path) -> str:
    """The tool's message with the private folder's path taken out, shortened."""
    text = message.replace(f"{root}/", "").replace(str(root), ".").strip()
    # helm's hint names a flag of its own command line, which users do not have here.
    lines = (line.strip() for line in text.splitlines())
    text = " ".join(line for line in lines if line and line != _HELM_DEBUG_HINT)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ..."


def _write(tree: StateTree, entries: Sequence[TreeEntry], root: Path) -> None:
    """Write `entries` under `root` at their paths. In-repo symlinks become
    symlinks; one that would leave the state root is left out (the loader
    reports it)."""
    made: set[Path] = set()
    for entry in entries:
        target = root / entry.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        data = tree.read(entry)
        if entry.kind is EntryKind.SYMLINK:
            link = data.decode("utf-8", "replace")
            where = entry.path.rpartition("/")[0]
            if link.startswith("/") or relative_parts(f"{where}/{link}") is None:
                continue
            os.symlink(link, target)
        elif entry.kind is EntryKind.FILE:
            target.write_bytes(data)
