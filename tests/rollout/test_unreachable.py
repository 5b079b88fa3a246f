"""A host that goes down during a rollout does not keep the others from rolling back.

Real git, a real sshd fleet of three hosts and the real SQLite history. `web`
rolls out in batches of two; its v2 fails its health check on every host.
Host 2's sshd (listener and open sessions) is killed as soon as the first
batch is applied, so the gate fails and the rollback finds host 2 unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.events import Event, EventKind
from reconciler.rollout.runner import RolloutOptions
from tests.engine import staterepo
from tests.engine.staterepo import StateRepo
from tests.support.sshd import SshFleet


@pytest.fixture
def state_repo(tmp_path: Path, ssh_fleet_factory: Callable[..., SshFleet]) -> StateRepo:
    return staterepo.create(tmp_path, ssh_fleet_factory(3))


@pytest.fixture
def engine(tmp_path: Path, state_repo: StateRepo) -> Iterator[Engine]:
    settings = EngineSettings(repo=str(state_repo.path), rev="main",
                              data_dir=tmp_path / "data", targets=("fleet",))
    eng = Engine(settings, rollout_options=RolloutOptions(max_workers=2))
    yield eng
    eng.close()


def test_a_host_lost_mid_rollout_is_named_and_every_reachable_host_is_rolled_back(
    engine: Engine, state_repo: StateRepo
) -> None:
    v1 = state_repo.release("v1")
    assert engine.sync().result == "success"
    (state_repo.root(1) / "broken").write_text("")
    (state_repo.root(2) / "broken").write_text("")
    state_repo.release("v2", state_repo.broken_check(), timeout="3s")
    lost = state_repo.fleet.hosts[1].spec

    def crash_host_2(event: Event) -> None:
        if event.kind is EventKind.BATCH_APPLIED and event.revision != v1:
            state_repo.fleet.stop_host(1)
            unsubscribe()

    unsubscribe = engine.subscribe(crash_host_2)
    result = engine.sync()

    assert result.result == "failure"
    # Host 1 is back, host 3 was never touched, host 2 still serves v2.
    assert [state_repo.served(i) for i in (1, 2, 3)] == ["v1", "v2", "v1"]
    assert not result.rolled_back and result.rollback_failed
    assert result.message.endswith(
        f"; rollback failed: web: partial (back at {v1[:12]} on the reachable hosts; "
        f"unreachable, left for the next sync: {lost})")
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.message == result.message
    [done] = [e for e in record.events if e.kind is EventKind.ROLLBACK_DONE]
    assert done.status == "partial" and lost in done.message
    # What host 2 holds is not recorded as verified: the next sync looks again.
    states = {e.host: e.state for e in engine.history.inventory_entries("fleet")
              if e.app == "web"}
    assert states[lost] == "applied"

    # Host 2 is back; the next commit (v1 again) converges it with the others.
    state_repo.fleet.start_host(1)
    state_repo.release("v1")
    again = engine.sync()
    assert again.result == "success", again.message
    assert [state_repo.served(i) for i in (1, 2, 3)] == ["v1", "v1", "v1"]
