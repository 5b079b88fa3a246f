"""A host that goes down during a rollout does not keep the others from rolling back.

Real git, a real sshd fleet of three hosts and the real SQLite history. `web`
rolls out in batches of two; its v2 fails its health check on every host.
Host 2's sshd (listener and open sessions) is killed as soon as the first
batch is applied, so the gate fails and the rollback finds host 2 unreachable.
The last two tests use the in-memory fleet for what the rollback decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.errors import HostsUnreachable
from reconciler.events import Event, EventKind
from reconciler.model import DesiredState, LiveView
from reconciler.rollout import rollback
from reconciler.rollout.rollback import ReadLive
from reconciler.rollout.runner import RolloutOptions
from tests.engine import staterepo
from tests.engine.staterepo import StateRepo
from tests.rollout.conftest import Harness, app, desired
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


def _unreachable(harness: Harness, lost: str) -> ReadLive:
    """A live read that cannot reach `lost`, as the VM backend reports it."""

    def read(state: DesiredState, targets: Sequence[str]) -> dict[str, LiveView]:
        view = harness.views(state)["fleet"]
        kept = tuple(h for h in view.hosts if h != lost)
        partial = replace(
            view, hosts=kept,
            desired={k: v for k, v in view.desired.items() if k[0] != lost},
            live={k: v for k, v in view.live.items() if k[0] != lost})
        raise HostsUnreachable(f"{lost}: unreachable", hosts=(lost,), view=partial)

    return read


def test_a_new_app_is_removed_from_reachable_hosts_and_kept_in_mind_elsewhere(
    harness: Harness,
) -> None:
    state = desired("B", app("web", {"/index": "bad"}, batch=2))
    runner, result = harness.sync(state)
    assert not result.ok and result.outcomes[0].hosts == ("h1", "h2")
    back = rollback.roll_back(
        runner, result.outcomes, last_good=harness.history.last_good,
        load_revision=lambda rev: state, read_live=_unreachable(harness, "h2"),
        make_rollout=harness.rollout)
    [web] = back.apps
    assert web.status == "partial" and not back.rolled_back and back.failed
    assert web.message.endswith("unreachable, left for the next sync: h2")
    assert harness.contents("/index") == {"h2": "bad"}
    # h2 still holds what it was sent: its inventory row stays for the next sync.
    assert {h for h, _ in harness.history.inventory("fleet")} == {"h2"}


def test_an_unreachable_host_the_app_never_changed_leaves_a_full_rollback(
    harness: Harness,
) -> None:
    good = desired("A", app("web", {"/index": "old"}))
    harness.sync(good)
    harness.history.mark_good(["web"], "A", 1)
    state = desired("B", app("web", {"/index": "bad"}, batch=1))
    runner, result = harness.sync(state)
    assert result.outcomes[0].hosts == ("h1",)
    back = rollback.roll_back(
        runner, result.outcomes, last_good=harness.history.last_good,
        load_revision={"A": good}.__getitem__, read_live=_unreachable(harness, "h5"),
        make_rollout=harness.rollout)
    assert [(a.app, a.status) for a in back.apps] == [("web", "success")]
    assert back.rolled_back
    assert harness.contents("/index")["h1"] == "old"


def test_a_rollback_that_reaches_none_of_its_hosts_failed(harness: Harness) -> None:
    good = desired("A", app("web", {"/index": "old"}))
    harness.sync(good)
    harness.history.mark_good(["web"], "A", 1)
    state = desired("B", app("web", {"/index": "bad"}, batch=1))
    runner, result = harness.sync(state)
    back = rollback.roll_back(
        runner, result.outcomes, last_good=harness.history.last_good,
        load_revision={"A": good}.__getitem__, read_live=_unreachable(harness, "h1"),
        make_rollout=harness.rollout)
    assert [(a.app, a.status, a.message) for a in back.apps] == [
        ("web", "failure", "not rolled back: unreachable: h1")]
    assert harness.contents("/index")["h1"] == "bad"
