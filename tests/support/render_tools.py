"""The real kustomize and helm, built by `.ci/build-tools` from pinned Go modules.

`tools_bin()` builds them on first use (minutes on a cold machine, nothing
after that) and returns their folder; RECONCILER_TOOLS_BIN names a folder that
already holds both instead.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.builds import built


def tools_bin() -> Path:
    return built("build-tools", env="RECONCILER_TOOLS_BIN")
