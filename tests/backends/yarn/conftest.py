"""Fixtures for the YARN backend: a real ResourceManager (Hadoop's MiniYARNCluster
with the Services API, one per test session), a recording and fault-injecting
proxy in front of it per test, and backends pointed at the proxy.

Every test names its services through `names`, which makes them unique in the
session and destroys them when the test ends, so tests share the RM safely.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import backends.yarn
from backends.base import Backend, BackendContext
from reconciler.model import BackendKind, Location, Target
from tests.backends.yarn.helpers import TARGET
from tests.support.yarn_cluster import RmClient
from tests.support.yarn_proxy import YarnProxy

_serial = itertools.count(1)


@pytest.fixture
def names(rm: RmClient) -> Iterator[Callable[[str], str]]:
    """`names("web")` -> a service name unique in the session; destroyed at the end."""
    made: list[str] = []

    def name(base: str) -> str:
        made.append(f"t{next(_serial)}-{base}")
        return made[-1]

    yield name
    for service in made:
        rm.destroy(service)


@pytest.fixture
def make_backend(yarn: YarnProxy, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Open backends on the proxy; keyword arguments become target options."""
    opened: list[Backend] = []

    def make(**options: Any) -> Backend:
        opts = {
            "url": yarn.url,
            "user": "deploy",
            "poll_interval": 0.5,
            "settle_timeout": 120,
            "timeout": 30,
            "min_ready": 2,
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
