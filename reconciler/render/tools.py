"""Where the render tools are, and what identifies their build.

`kustomize` and `helm` are found through RECONCILER_KUSTOMIZE and
RECONCILER_HELM when set, else on PATH (the container image ships both in
/usr/local/bin). A tool's identity in the render cache is its resolved path
with the size and modification time of the binary, so replacing the binary
(an upgrade) renders every app again, while looking it up costs one stat.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

_ENV = {"kustomize": "RECONCILER_KUSTOMIZE", "helm": "RECONCILER_HELM"}


@dataclass(frozen=True, kw_only=True)
class Tool:
    name: str
    path: str
    """Empty when the tool was not found."""
    identity: str
    """What the render cache keys on; changes when the binary does."""


def find_tool(name: str) -> Tool:
    configured = os.environ.get(_ENV[name], "")
    path = configured or shutil.which(name) or ""
    if path:
        path = os.path.realpath(path)
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    if st is None:
        return Tool(name=name, path="", identity="")
    return Tool(name=name, path=path, identity=f"{path}:{st.st_size}:{st.st_mtime_ns}")


def missing_message(name: str) -> str:
    return f"{name} is not installed: put it on PATH or name it in {_ENV[name]}"
