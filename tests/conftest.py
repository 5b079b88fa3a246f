"""Fixtures shared by every test package: real sshd fleets, the real Kubernetes
control plane, the real YARN ResourceManager and a real PostgreSQL server (each
started once per session, only when a test asks for it)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.history import History, HistorySettings, open_history
from tests.support.kube_env import KubeEnv, KubeTest, kube_test
from tests.support.postgres import PASSWORD as PG_PASSWORD
from tests.support.postgres import PostgresServer, start_postgres
from tests.support.render_tools import tools_bin
from tests.support.sshd import SshFleet, start_fleet
from tests.support.yarn_cluster import RmClient, YarnCluster, yarn_cluster_session
from tests.support.yarn_proxy import YarnProxy


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    """The cluster of $KUBECONFIG, or else the control plane of tests/support/kube_cluster.py."""
    with KubeEnv.open(tmp_path_factory.mktemp("kube")) as env:
        yield env


@pytest.fixture
def kube(kube_env: KubeEnv, tmp_path: Path) -> Iterator[KubeTest]:
    """A namespace of this test's own, and a recording proxy in front of the server."""
    with kube_test(kube_env, tmp_path) as made:
        yield made


@pytest.fixture(scope="session")
def render_tools() -> Iterator[Path]:
    """The real kustomize and helm, named in RECONCILER_KUSTOMIZE and RECONCILER_HELM
    for this process and the reconciler processes the tests start."""
    folder = tools_bin()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECONCILER_KUSTOMIZE", str(folder / "kustomize"))
        patch.setenv("RECONCILER_HELM", str(folder / "helm"))
        yield folder


# Every `python -m reconciler` a test starts imports this checkout, not another
# copy the interpreter may have installed.
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)


def _worker_network() -> str:
    """127.0.<n> for pytest-xdist worker gw<n> (127.0.0 without workers): fleets
    of parallel workers never probe the same addresses for a free port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"127.0.{index % 250}"


@pytest.fixture
def ssh_fleet_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SshFleet]]:
    """Start fleets of real sshd hosts on 127.0.0.x; all are stopped after the test."""
    fleets: list[SshFleet] = []
    counter = [0]

    def make(count: int = 5) -> SshFleet:
        counter[0] += 1
        directory: Path = tmp_path_factory.mktemp(f"sshd{counter[0]}")
        # Each fleet takes its own addresses so that fleets in one test never clash.
        fleet = start_fleet(directory, count, first=2 + 20 * (counter[0] - 1),
                            network=_worker_network())
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()


@pytest.fixture(scope="session")
def yarn_cluster() -> Iterator[YarnCluster]:
    yield from yarn_cluster_session()


@pytest.fixture
def rm(yarn_cluster: YarnCluster) -> RmClient:
    """Direct access to the RM as user deploy (not through the proxy)."""
    return yarn_cluster.client("deploy")


@pytest.fixture
def yarn(yarn_cluster: YarnCluster) -> Iterator[YarnProxy]:
    """A proxy in front of the RM: the request log, and faults on demand."""
    proxy = YarnProxy(yarn_cluster.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (tests/support/postgres.py), started once per session."""
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of this test's own on the session's server, made from the
    template, dropped after the test; the URL has no password (see PASSWORD)."""
    name = "t_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    postgres.drop_database(name)
    yield postgres.create_database(name)
    postgres.drop_database(name)


PG_PASSWORD_ENV = "RECONCILER_TEST_HISTORY_PASSWORD"


@pytest.fixture(params=["sqlite", "postgresql"])
def history_settings(request: pytest.FixtureRequest,
                     monkeypatch: pytest.MonkeyPatch) -> HistorySettings:
    """Each store in turn: SQLite under data_dir, then a database of this test's
    own on the real PostgreSQL server, its password in an environment variable."""
    if request.param == "sqlite":
        return HistorySettings()
    url: str = request.getfixturevalue("postgres_url")
    monkeypatch.setenv(PG_PASSWORD_ENV, PG_PASSWORD)
    return HistorySettings(url=url, password_env=PG_PASSWORD_ENV, timeout=5.0)


@pytest.fixture
def open_store(history_settings: HistorySettings,
               tmp_path: Path) -> Iterator[Callable[[], History]]:
    """Open the history of `history_settings` (again: a restart); all closed after."""
    opened: list[History] = []

    def make() -> History:
        history = open_history(history_settings, tmp_path / "data")
        opened.append(history)
        return history

    yield make
    for history in opened:
        history.close()
