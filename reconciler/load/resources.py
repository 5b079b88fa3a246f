"""What every backend's resource parser returns, and the dispatch by backend.

A parsed resource carries, next to the `model.Resource`, what the loader must
still check across files: the key of its identity on the target (VM files,
directories and symlinks share one path space), a raw-file `source` to resolve,
and `restart_on` references to other resources of the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.load.schema import Problems
from reconciler.load.yamlio import Document
from reconciler.model import BackendKind, Resource


@dataclass(frozen=True, kw_only=True)
class ParsedResource:
    resource: Resource
    identity: tuple[str, ...]
    """Two resources of one target with the same identity are duplicates."""
    source: str | None = None
    """Path (relative to the state root) of the raw file whose bytes become the content."""
    source_line: int = 0
    restart_on: tuple[tuple[str, int], ...] = ()
    """(normalised path, line) of File resources whose change restarts this service."""


def parse_resource(p: Problems, backend: BackendKind, app: str,
                   doc: Document) -> tuple[ParsedResource, ...]:
    """The valid resources of one document: usually one, several for a
    Kubernetes List, none (after reporting why) when it is invalid."""
    # Imported here so each backend's rules stay in their own module.
    if backend is BackendKind.KUBERNETES:
        from reconciler.load import k8s

        return k8s.parse_all(p, app, doc)
    if backend is BackendKind.VM:
        from reconciler.load import vm

        found = vm.parse(p, app, doc)
    else:
        from reconciler.load import yarn

        found = yarn.parse(p, app, doc)
    return (found,) if found is not None else ()
