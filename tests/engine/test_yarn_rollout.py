"""YARN rollouts through the Engine: a real git repo and the YARN Services API test
server over real HTTP (services advance one step per GET, as it documents)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.events import EventKind
from tests.engine import support_targets as st
from tests.support.yarn_server import ROOT, YarnServer


@pytest.fixture
def yarn() -> Iterator[YarnServer]:
    server = YarnServer().start()
    yield server
    server.stop()


@pytest.fixture
def repo(tmp_path: Path, yarn: YarnServer) -> st.Repo:
    made = st.create_repo(tmp_path)
    made.yarn("analytics", yarn)
    made.app("batch", "analytics", extra="timeout: 20s\n")
    return made


@pytest.fixture
def engine(tmp_path: Path, repo: st.Repo) -> Iterator[Engine]:
    eng = st.engine(repo, tmp_path / "data")
    yield eng
    eng.close()


def release(repo: st.Repo, version: str = "1.0.0", count: int = 1) -> str:
    """ingest at `version` (whose image is the version's) with `count` containers."""
    image = f"registry.test/ingest:{version}"
    repo.write("apps/batch/ingest.yaml", st.yarn_service("ingest", version, count, image))
    return repo.commit(f"ingest {version} x{count}")


def ready(yarn: YarnServer, name: str) -> tuple[str, str, int]:
    """(state, version, READY containers) of a live service."""
    live = yarn.service(name)
    assert live is not None, f"service {name} does not exist"
    containers = [c for comp in live["components"] for c in comp["containers"]]
    return live["state"], live["version"], sum(c["state"] == "READY" for c in containers)


def test_create_flex_upgrade_then_a_noop_without_writes(
    engine: Engine, repo: st.Repo, yarn: YarnServer
) -> None:
    release(repo, "1.0.0", 1)
    created = engine.sync()
    assert created.result == "success", created.message
    assert yarn.writes() == [("POST", ROOT)]
    assert ready(yarn, "ingest") == ("STABLE", "1.0.0", 1)

    release(repo, "1.0.0", 3)
    yarn.reset()
    flexed = engine.sync()
    assert flexed.result == "success", flexed.message
    assert yarn.writes() == [("PUT", f"{ROOT}/ingest/components/worker")]
    assert ready(yarn, "ingest") == ("STABLE", "1.0.0", 3)

    release(repo, "2.0.0", 3)
    yarn.reset()
    upgraded = engine.sync()
    assert upgraded.result == "success", upgraded.message
    assert yarn.writes() == [("PUT", f"{ROOT}/ingest"),
                             ("PUT", f"{ROOT}/ingest/components/worker")]
    # The gate waited for the upgrade to finish: the new version runs everywhere.
    assert ready(yarn, "ingest") == ("STABLE", "2.0.0", 3)

    yarn.reset()
    again = engine.sync()
    assert (again.result, again.message) == ("success", "in sync: nothing to do")
    assert yarn.writes() == []


def test_prune_destroys_only_services_this_tool_created(
    engine: Engine, repo: st.Repo, yarn: YarnServer
) -> None:
    yarn.seed({"name": "foreign", "version": "1", "components": [
        {"name": "c", "number_of_containers": 1, "artifact": {"id": "x"}}]})
    repo.write("apps/batch/extra.yaml", st.yarn_service("extra"))
    release(repo)
    assert engine.sync().result == "success"
    assert ready(yarn, "extra")[0] == "STABLE"

    repo.remove("apps/batch/extra.yaml")
    repo.commit("drop extra")
    yarn.reset()
    result = engine.sync()

    assert result.result == "success", result.message
    assert result.summary == {"create": 0, "update": 0, "delete": 1}
    assert yarn.writes() == [("DELETE", f"{ROOT}/extra")]
    assert yarn.service("extra") is None
    assert yarn.service("foreign") is not None and yarn.service("ingest") is not None
    assert {e.id.name for e in engine.history.inventory_entries("analytics")} == {"ingest"}


def test_a_failed_service_halts_its_wave_and_rolls_back(
    engine: Engine, repo: st.Repo, yarn: YarnServer
) -> None:
    repo.app("report", "analytics", wave=1, extra="timeout: 20s\n")
    repo.write("apps/report/report.yaml", st.yarn_service("report", "1.0.0"))
    good = release(repo, "1.0.0", 2)
    assert engine.sync().result == "success"

    # The new release upgrades ingest and adds enrich, which YARN fails; the
    # later wave's report changes too, but must never be started.
    yarn.doom("enrich")
    repo.write("apps/batch/enrich.yaml", st.yarn_service("enrich"))
    repo.write("apps/report/report.yaml", st.yarn_service("report", "1.0.0", 4))
    release(repo, "2.0.0", 2)
    yarn.reset()
    result = engine.sync()

    assert result.result == "failure" and result.rolled_back
    assert "enrich is FAILED" in result.message
    assert not [w for w in yarn.writes() if w[1].startswith(f"{ROOT}/report")]
    assert ready(yarn, "report") == ("STABLE", "1.0.0", 1)
    # Rolled back to the last good revision: ingest at 1.0.0, enrich destroyed.
    assert ready(yarn, "ingest") == ("STABLE", "1.0.0", 2)
    assert yarn.service("enrich") is None
    assert ("DELETE", f"{ROOT}/enrich") in yarn.writes()

    record = engine.history.deploy(result.deploy_id)
    assert record is not None and record.rolled_back
    apps = {a.app: a for a in record.apps}
    assert apps["batch"].status == "failure" and apps["batch"].rollback.startswith("success")
    assert "report" not in apps
    # Wave 1 never started; the rollback's own wave runs at the good revision.
    waves = [(e.wave, e.revision) for e in record.events if e.kind is EventKind.WAVE_STARTED]
    assert waves == [(0, result.revision), (0, good)]
    assert engine.history.last_good("batch") == good
