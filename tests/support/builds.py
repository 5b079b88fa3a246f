"""The pinned builds of `.ci/` (control plane, kustomize and helm, ResourceManager)
as the tests reach them: a folder named by an environment variable when one is
set, else the build script's answer. Each script builds on a cold cache
(minutes) and only prints the cached folder after that."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class BuildError(RuntimeError):
    """A build script failed; the message holds the tail of what it wrote."""


def built(script: str, *args: str, env: str | None = None) -> Path:
    """The folder `.ci/<script> <args>` printed last (`env`, when set, names one)."""
    configured = os.environ.get(env) if env else None
    if configured:
        return Path(configured)
    path = ROOT / ".ci" / script
    done = subprocess.run(["bash", str(path), *args], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"{path} failed:\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise BuildError(f"{path} printed no folder")
    return Path(lines[-1])
