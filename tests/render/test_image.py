"""The container image ships the render tools CI builds, from the same pins."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_builds_kustomize_and_helm_with_the_ci_script_and_go_of_the_pins() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = re.search(r"^FROM golang:(\d+\.\d+)-bookworm AS tools$", dockerfile, re.M)
    assert stage is not None
    for module in ("kustomize", "helm"):
        go_mod = (ROOT / ".ci/tools" / module / "go.mod").read_text()
        wanted = re.search(r"^go (\d+\.\d+)", go_mod, re.M)
        assert wanted is not None and wanted.group(1) == stage.group(1), module
    assert "COPY .ci/tools /src/.ci/tools" in dockerfile
    assert 'bash .ci/build-tools' in dockerfile
    assert "COPY --from=tools /out/kustomize /out/helm /usr/local/bin/" in dockerfile
    # The final stage is the Python one: the Go toolchain stays out of the image.
    assert dockerfile.rindex("FROM ") == dockerfile.index("FROM python:")
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert not any(line in (".ci", ".ci/", ".ci/tools", ".ci/build-tools") for line in ignored)
