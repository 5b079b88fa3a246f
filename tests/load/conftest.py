"""Fixtures for loader tests: state repos written to real directories."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from reconciler.errors import ValidationError
from reconciler.load import LoadCache, load
from reconciler.model import DesiredState
from reconciler.tree import DirectoryTree

BASE_CONFIG = """\
apiVersion: reconciler/v1
defaults: {prune: true, rollback: auto}
targets:
  laptop: {backend: vm, transport: local, root: ./.demo-root}
  fleet: {backend: vm, hosts: [web-1, "web-2:2222"], identity_file: /secrets/id,
          known_hosts: /secrets/known_hosts}
  fleet2: {backend: vm, hosts: [db-1], identity_file: /secrets/id, known_hosts: /secrets/kh}
  prod: {backend: kubernetes, kubeconfig: /secrets/kubeconfig}
  analytics: {backend: yarn, url: "http://rm.example.com:8088", token_env: YARN_TOKEN}
"""

Files = Mapping[str, str | bytes]


def write_tree(root: Path, files: Files, *, base: bool = True) -> Path:
    """Write `files` (path -> text) under `root`, with BASE_CONFIG unless given."""
    everything: dict[str, str | bytes] = {"reconciler.yaml": BASE_CONFIG} if base else {}
    everything.update(files)
    for rel, text in everything.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            # Exactly these characters: cases test CR LF, lone CR and BOMs.
            path.write_text(text, encoding="utf-8", newline="")
    return root


def problems_of(root: Path, cache: LoadCache | None = None) -> list[str]:
    """Every problem as "file:line: message"; [] when the tree is valid."""
    try:
        load(DirectoryTree(root), cache=cache)
    except ValidationError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.fixture
def state(tmp_path: Path) -> Callable[..., Path]:
    def make(files: Files, *, base: bool = True) -> Path:
        return write_tree(tmp_path / "state", files, base=base)

    return make


@pytest.fixture
def loaded(state: Callable[..., Path]) -> Callable[..., DesiredState]:
    def make(files: Files) -> DesiredState:
        return load(DirectoryTree(state(files)))

    return make
