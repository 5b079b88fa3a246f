"""Fixtures for the reporters: the recording `forge` server (tests.support.httpservers),
a client whose waits are recorded instead of taken, and a commit status."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from reconciler.reporters import http
from tests.support.httpservers import Forge, Recorded, Reply, forge

__all__ = ["Forge", "Recorded", "Reply", "Sleeps", "Status", "forge"]


class Sleeps:
    """Records the waits a client asks for instead of taking them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> http.Client:
    policy = http.RetryPolicy(attempts=4, base_delay=0.01, max_delay=5.0, timeout=5.0)
    return http.Client(policy=policy, sleep=sleeps)


@dataclass(frozen=True, kw_only=True)
class Status:
    """Shaped like reporters.CommitStatus."""

    sha: str = "3f786850e387550fdab836ed7e6dc881de23001b"
    context: str = "reconciler/deploy"
    state: str = "success"
    description: str = "deployed: 2 created, 1 changed, 0 deleted"
    target_url: str | None = "https://deploy.example.com/deploys/7"
