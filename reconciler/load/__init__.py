"""Load and validate a state repository (format v1) into a DesiredState.

`load(tree, cache=...)` reads through the `StateTree` seam only, so the same
validation runs on a git commit and on a directory. It raises
`ValidationError` holding every problem of the commit, each with a file and
line; it never returns a partially valid state. `LoadCache` keeps parsed
documents and per-file results by blob id across loads.

Modules: yamlio (safe parsing with lines), schema (key and type checks),
layout (which files mean what), targets (reconciler.yaml), apps (app.yaml),
resources with k8s, vm and yarn (resource documents per backend), graph
(waves and depends_on), tenants (what the apps of some folders may use),
cache, loader (the orchestration). Target options are parsed by each
backend's own schema (`backends.<name>.options`), called from targets.
"""

from reconciler.load.cache import LoadCache
from reconciler.load.loader import load

__all__ = ["LoadCache", "load"]
