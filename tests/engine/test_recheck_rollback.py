"""Hosts a stopped deploy left "applied" and the next sync's re-check fails:
they are rolled back with the app, as if that sync had changed them.

Real git, a real sshd fleet of five hosts and the real SQLite history. `web`
rolls out in batches of two; its v2 is healthy only on hosts whose root holds
`ready`, and no host does.
"""

from __future__ import annotations

from reconciler.engine import Engine
from reconciler.events import Event, EventKind
from tests.engine.staterepo import StateRepo


def web_states(engine: Engine, state_repo: StateRepo) -> list[str]:
    """The inventory state of web's page on hosts 1 to 5 ("" where it has none)."""
    states = {e.host: e.state for e in engine.history.inventory_entries("fleet")
              if e.app == "web"}
    return [next((s for h, s in states.items() if h.startswith(f"{address}:")), "")
            for address in state_repo.hosts]


def test_hosts_left_applied_by_a_stop_that_fail_their_recheck_are_rolled_back(
    engine: Engine, state_repo: StateRepo
) -> None:
    v1 = state_repo.release("v1")
    assert engine.sync().result == "success"
    # One Degraded probe is not yet a failure (retries 1): the stop abandons
    # the gate after it, and the next sync's gate fails after the second.
    v2 = state_repo.release("v2", f"test -e {state_repo.roots}/{{host}}/ready")

    def stop_after_first_batch(event: Event) -> None:
        if event.kind is EventKind.BATCH_APPLIED and event.app == "web":
            engine.request_stop()

    engine.subscribe(stop_after_first_batch)
    stopped = engine.sync()
    assert stopped.result == "interrupted"
    assert [state_repo.served(i) for i in range(1, 6)] == ["v2", "v2", "v1", "v1", "v1"]
    assert web_states(engine, state_repo)[:2] == ["applied", "applied"]

    engine.close()
    again = Engine(engine.settings)  # a stop is final: a restart resumes
    try:
        result = again.sync()
        assert (result.result, result.revision) == ("failure", v2)
        # Hosts 1 and 2 had nothing left to change, yet they are this deploy's to undo.
        assert result.rolled_back and not result.rollback_failed
        assert result.message.endswith(f"; rollback: web: success (back at {v1[:12]})")
        assert [state_repo.served(i) for i in range(1, 6)] == ["v1"] * 5
        assert again.history.last_good("web") == v1
        record = again.history.deploy(result.deploy_id)
        assert record is not None
        applied = [e for e in record.events
                   if e.kind is EventKind.BATCH_APPLIED and e.revision == v2]
        assert applied == []  # the failed re-check sent nothing
        [started] = [e for e in record.events if e.kind is EventKind.ROLLBACK_STARTED]
        assert [h.split(":")[0] for h in started.hosts] == state_repo.hosts[:2]
    finally:
        again.close()
