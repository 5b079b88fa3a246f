"""Fixtures for the YARN backend: a real HTTP YARN Services API on 127.0.0.1
and backends pointed at it, polling fast so that tests stay quick."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import backends.yarn
from backends.base import Backend, BackendContext
from reconciler.model import BackendKind, Location, Target
from tests.backends.yarn.helpers import TARGET
from tests.support.yarn_server import YarnServer


@pytest.fixture
def yarn_server() -> Iterator[YarnServer]:
    server = YarnServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_backend(yarn_server: YarnServer, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Open backends on `yarn_server`; keyword arguments become target options."""
    opened: list[Backend] = []

    def make(**options: Any) -> Backend:
        opts = {
            "url": yarn_server.url,
            "user": "deploy",
            "poll_interval": 0.001,
            "settle_timeout": 5,
            "timeout": 5,
            **options,
        }
        target = Target(
            name=TARGET,
            backend=BackendKind.YARN,
            options={k: v for k, v in opts.items() if v is not None},
            location=Location(file="reconciler.yaml"),
        )
        backend = backends.yarn.open(target, BackendContext(data_dir=tmp_path))
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()
