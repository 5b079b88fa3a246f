"""The real kustomize and helm, built by `.ci/build-tools` from pinned Go modules.

`tools_bin()` builds them on first use (minutes on a cold machine, nothing
after that) and returns their folder; RECONCILER_TOOLS_BIN names a folder that
already holds both instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tools_bin() -> Path:
    configured = os.environ.get("RECONCILER_TOOLS_BIN")
    if configured:
        return Path(configured)
    out = subprocess.run(["bash", str(ROOT / ".ci" / "build-tools")], check=False,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f".ci/build-tools failed:\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1])
