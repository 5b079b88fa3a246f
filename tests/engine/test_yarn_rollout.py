"""YARN rollouts through the Engine: a real git state repo and a real
ResourceManager (MiniYARNCluster with the Services API, shared by the test
session) behind a recording, fault-injecting proxy. Services really start,
flex, upgrade, crash and roll back; health gates wait for the real states."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine, EngineSettings
from reconciler.events import EventKind
from reconciler.rollout.runner import RolloutOptions
from tests.engine import support_targets as st
from tests.support.yarn_cluster import RmClient
from tests.support.yarn_proxy import YarnProxy

ROOT = "/app/v1/services"
_serial = itertools.count(1)
Names = Callable[[str], str]


@pytest.fixture
def names(rm: RmClient) -> Iterator[Names]:
    """Service names unique in the session, destroyed when the test ends."""
    made: list[str] = []

    def name(base: str) -> str:
        made.append(f"e{next(_serial)}-{base}")
        return made[-1]

    yield name
    for service in made:
        rm.destroy(service)


@pytest.fixture
def repo(tmp_path: Path, yarn: YarnProxy) -> st.Repo:
    made = st.create_repo(tmp_path)
    made.targets["analytics"] = (
        f'{{backend: yarn, url: "{yarn.url}", user: deploy, '
        "poll_interval: 500ms, settle_timeout: 120s, timeout: 30s}"
    )
    made.app("batch", "analytics", extra="timeout: 150s\n")
    return made


@pytest.fixture
def engine(tmp_path: Path, repo: st.Repo) -> Iterator[Engine]:
    # The gate's timeouts run on the real clock; its pauses are at most half a
    # second so that the RM is not asked fifty times a second.
    def sleep(seconds: float) -> None:
        threading.Event().wait(min(seconds, 0.5))

    settings = EngineSettings(repo=repo.url, rev="main", data_dir=tmp_path / "data")
    eng = Engine(settings, rollout_options=RolloutOptions(max_workers=2, sleep=sleep))
    yield eng
    eng.close()


def service_yaml(name: str, version: str = "1.0.0", count: int = 1,
                 command: str = "sleep 900000", image: str = "") -> str:
    """A service whose image follows its version (DOCKER artifacts run as local
    processes in MiniYARNCluster). NodeManager relaunches are off, so a command
    that exits shows as a FAILED container."""
    text = st.yarn_service(name, version, count, image or f"registry.test/{name}:{version}")
    text = text.replace('launch_command: "sleep 900000"', f'launch_command: "{command}"')
    return text + ('configuration:\n  properties:\n'
                   '    yarn.service.container-failure.retry.max: "0"\n')


def release(repo: st.Repo, name: str, version: str = "1.0.0", count: int = 1,
            command: str = "sleep 900000") -> str:
    repo.write(f"apps/batch/{name}.yaml", service_yaml(name, version, count, command))
    return repo.commit(f"{name} {version} x{count}")


def ready(rm: RmClient, name: str) -> tuple[str, str, int]:
    """(state, version, READY containers) of a live service."""
    live: dict[str, Any] | None = rm.service(name)
    assert live is not None, f"service {name} does not exist"
    containers = [c for comp in live.get("components", []) for c in comp.get("containers", [])]
    return live["state"], live.get("version", ""), sum(c["state"] == "READY" for c in containers)


def test_create_flex_upgrade_then_a_noop_without_writes(
    engine: Engine, repo: st.Repo, yarn: YarnProxy, rm: RmClient, names: Names
) -> None:
    name = names("ingest")
    release(repo, name, "1.0.0", 1)
    created = engine.sync()
    assert created.result == "success", created.message
    assert yarn.writes() == [("POST", ROOT)]
    assert ready(rm, name) == ("STABLE", "1.0.0", 1)

    release(repo, name, "1.0.0", 3)
    yarn.reset()
    flexed = engine.sync()
    assert flexed.result == "success", flexed.message
    assert flexed.summary == {"create": 0, "update": 1, "delete": 0}
    assert yarn.writes() == [("PUT", f"{ROOT}/{name}/components/worker")]
    assert ready(rm, name) == ("STABLE", "1.0.0", 3)

    # A new version with a new image: a real upgrade, health-gated.
    release(repo, name, "2.0.0", 3)
    yarn.reset()
    upgraded = engine.sync()
    assert upgraded.result == "success", upgraded.message
    assert yarn.writes() == [("PUT", f"{ROOT}/{name}"),
                             ("PUT", f"{ROOT}/{name}/components/worker")]
    # The gate waited for the upgrade to finish: the new version runs everywhere.
    assert ready(rm, name) == ("STABLE", "2.0.0", 3)
    live = rm.service(name)
    assert live is not None
    assert live["components"][0]["artifact"]["id"] == f"registry.test/{name}:2.0.0"

    yarn.reset()
    again = engine.sync()
    assert (again.result, again.message) == ("success", "in sync: nothing to do")
    assert yarn.writes() == []


def test_prune_destroys_only_services_this_tool_created(
    engine: Engine, repo: st.Repo, yarn: YarnProxy, rm: RmClient, names: Names
) -> None:
    foreign, extra, keep = names("foreign"), names("extra"), names("keep")
    rm.create({"name": foreign, "version": "1", "state": "STOPPED", "components": [
        {"name": "c", "number_of_containers": 1, "launch_command": "sleep 1",
         "resource": {"cpus": 1, "memory": "64"}}]})
    # Declared stopped: YARN only saves them, which keeps this test quick.
    repo.write(f"apps/batch/{extra}.yaml", service_yaml(extra) + "state: STOPPED\n")
    repo.write(f"apps/batch/{keep}.yaml", service_yaml(keep) + "state: STOPPED\n")
    repo.commit("two stopped services")
    first = engine.sync()
    assert first.result == "success", first.message

    repo.remove(f"apps/batch/{extra}.yaml")
    repo.commit("drop extra")
    yarn.reset()
    result = engine.sync()

    assert result.result == "success", result.message
    assert result.summary == {"create": 0, "update": 0, "delete": 1}
    assert yarn.writes() == [("DELETE", f"{ROOT}/{extra}")]
    assert rm.service(extra) is None
    assert rm.service(foreign) is not None and rm.service(keep) is not None
    assert not [r for r in yarn.requests if foreign in r.path]
    assert {e.id.name for e in engine.history.inventory_entries("analytics")} == {keep}


def test_an_upgrade_whose_command_exits_fails_its_gate_and_rolls_back(
    engine: Engine, repo: st.Repo, yarn: YarnProxy, rm: RmClient, names: Names
) -> None:
    name = names("job")
    good = release(repo, name, "1.0.0", 1)
    assert engine.sync().result == "success"

    release(repo, name, "2.0.0", 1, command="exit 3")
    yarn.reset()
    result = engine.sync()

    assert result.result == "failure" and result.rolled_back, result.message
    assert name in result.message
    # The upgrade, then the rollback: the service is stuck mid-upgrade, so it
    # is destroyed and re-created at the last good spec.
    assert yarn.writes() == [("PUT", f"{ROOT}/{name}"), ("PUT", f"{ROOT}/{name}/components/worker"),
                             ("DELETE", f"{ROOT}/{name}"), ("POST", ROOT)]
    # Rolled back to the last good spec: version 1.0.0 runs, healthy.
    assert ready(rm, name) == ("STABLE", "1.0.0", 1)
    live = rm.service(name)
    assert live is not None and live["components"][0]["launch_command"] == "sleep 900000"
    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.rolled_back
    apps = {a.app: a for a in record.apps}
    assert apps["batch"].status == "failure" and apps["batch"].rollback.startswith("success")
    waves = [(e.wave, e.revision) for e in record.events if e.kind is EventKind.WAVE_STARTED]
    assert waves == [(0, result.revision), (0, good)]
    assert engine.history.last_good("batch") == good


def test_rm_down_mid_deploy_fails_clearly_and_the_next_sync_converges(
    engine: Engine, repo: st.Repo, yarn: YarnProxy, rm: RmClient, names: Names
) -> None:
    first, second = names("first"), names("second")
    repo.write(f"apps/batch/{first}.yaml", service_yaml(first) + "state: STOPPED\n")
    repo.write(f"apps/batch/{second}.yaml", service_yaml(second) + "state: STOPPED\n")
    repo.commit("two services")
    # The RM goes away after the live read and the first create.
    def cut_after_first_post() -> None:
        while not yarn.count("POST"):
            threading.Event().wait(0.005)
        yarn.down()

    watcher = threading.Thread(target=cut_after_first_post, daemon=True)
    watcher.start()
    failed = engine.sync()
    watcher.join(10)

    assert failed.result == "failure", failed.message
    assert "cannot reach" in failed.message and yarn.url in failed.message
    assert yarn.count("POST") == 1  # the first create went through, the second did not
    record = engine.history.deploy(failed.deploy_id)
    assert record is not None and record.result == "failure"

    yarn.up()
    healed = engine.sync()
    assert healed.result == "success", healed.message
    assert rm.service(first) is not None and rm.service(second) is not None
    yarn.reset()
    assert engine.sync().message == "in sync: nothing to do"
    assert yarn.writes() == []


def test_a_spec_the_rm_rejects_fails_the_deploy_with_its_words_and_the_file_line(
    engine: Engine, repo: st.Repo, yarn: YarnProxy, rm: RmClient, names: Names
) -> None:
    # Valid by the API definition, beyond this cluster's limits: only the RM knows.
    name = names("huge")
    text = service_yaml(name).replace('memory: "256"', 'memory: "100000"')
    assert 'memory: "100000"' in text
    repo.write(f"apps/batch/{name}.yaml", text)
    repo.commit("a service too big for the cluster")

    result = engine.sync()

    assert result.result == "failure", result.message
    record = engine.history.deploy(result.deploy_id)
    assert record is not None
    words = " ".join([result.message, *(a.error for a in record.apps)])
    assert f"apps/batch/{name}.yaml:1: " in words
    assert "is larger than configured max container memory size" in words
    assert "HTTP 500" in words
    assert yarn.writes() == [("POST", ROOT)]
    assert rm.service(name) is None
