"""defaults.retry: a failed deploy is tried again a bounded number of times, with
backoff, by the daemon itself (no trigger), against a real repository and VM root."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from reconciler.daemon.service import Daemon, wait_idle
from tests.daemon.conftest import StateRepo, app_yaml, deploys, wait_for

Factory = Callable[..., Daemon]
RETRY = "defaults:\n  retry: {limit: 2, backoff: {duration: 300ms, factor: 2}}\n"


def test_a_failed_deploy_is_retried_with_backoff_until_it_succeeds(
    state_repo: StateRepo, daemon_factory: Factory, tmp_path: Path
) -> None:
    marker = tmp_path / "ready"
    state_repo.commit("retry policy", windows=RETRY)
    daemon = daemon_factory(state_repo)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    flaky = state_repo.commit("needs the marker", content="version 2\n",
                              app=app_yaml(f"test -f {marker}", "1s"))
    wait_for(lambda: [r for s, r in deploys(daemon) if s == flaky] == ["failure"])
    failed_at = time.monotonic()
    # The history has the deploy a moment before the worker plans its retry.
    retry = wait_for(lambda: daemon.worker.state.retry)
    assert retry.sha == flaky and retry.attempt == 1
    marker.write_text("")  # what the deploy waited for is now there
    wait_for(lambda: [r for s, r in deploys(daemon) if s == flaky] == ["failure", "success"],
             timeout=20)
    # The first retry waited its backoff (300 ms) before it started.
    retried = daemon.history.deploys(limit=1)[0]
    assert retried.revision == flaky
    assert time.monotonic() - failed_at >= 0.3
    assert state_repo.web_conf() == "version 2\n"
    assert wait_for(lambda: wait_idle(daemon, 5) and daemon.worker.state.retry is None)


def test_retries_stop_at_the_limit(state_repo: StateRepo, daemon_factory: Factory) -> None:
    state_repo.commit("retry policy", windows=RETRY)
    daemon = daemon_factory(state_repo)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    bad = state_repo.commit("never healthy", content="version 2\n", app=app_yaml("false", "1s"))
    # The deploy, then exactly `limit` retries: 300 ms, then 600 ms apart.
    wait_for(lambda: [r for s, r in deploys(daemon) if s == bad] == ["failure"] * 3, timeout=30)
    time.sleep(2.0)  # a further retry would be due after 1.2 s
    assert wait_idle(daemon, 5)
    assert [r for s, r in deploys(daemon) if s == bad] == ["failure"] * 3
    assert daemon.worker.state.retry is None
    assert bad in daemon.worker.state.memory.failed
