"""Rendering Kustomize and Helm apps into the manifests the loader reads.

The edge between a state tree and the pure loader: `load_rendered(tree)` runs
`kustomize build` or `helm template` for the apps that need it (cached by the
identity of their inputs) and loads the result. Modules: jobs (which apps,
which inputs, which cache key; pure), run (one tool run with its limits),
tools (finding the binaries), cache, renderer (the temp folders and threads).
"""

from reconciler.render.cache import RenderCache
from reconciler.render.renderer import RenderedTree, Renderer, load_rendered

__all__ = ["RenderCache", "RenderedTree", "Renderer", "load_rendered"]
