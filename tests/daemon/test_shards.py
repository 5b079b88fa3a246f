"""Shards on the real control plane and one real PostgreSQL history: three
`reconciler run` processes, three shards (one Lease each, in the test's own
namespace), three VM targets on the local transport with roots of their own.

Each target has two apps: `web` (wave 1, its health check set per commit, so a
slow or failing check makes the window a test needs) and `api` (wave 2), so a
replica that went on after losing its shard would still have something to
write. The shared history is read with its own connection; processes are
killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT) as a node would.

Durations are short (a 3 s lease, 0.5 s retries) and waits generous: the
assertions are about order and bounds, never about exact timings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.daemon.config import missing_secrets, parse_config
from reconciler.daemon.shards import fair_share, shard_of
from reconciler.engine import Engine, EngineSettings
from reconciler.errors import ConfigError
from reconciler.events import Event, EventKind
from reconciler.history import History, HistorySettings, open_history
from reconciler.history.database import Cursor
from reconciler.history.fence import FencedError
from reconciler.webhooks import sign
from tests.daemon.conftest import git, wait_for
from tests.support.kube_env import KubeTest
from tests.support.postgres import PASSWORD as PG_PASSWORD

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "reconciler-shards"
SHARDS = 3
LEASE_S, RENEW_S, RETRY_S = 3.0, 2.0, 0.5
MARGIN = 2.0
"""Beyond lease_duration + retry_period: followers' jittered waits (client-go's
factor 1.2) and requests on a loaded machine."""
PASSWORD_ENV = "RECONCILER_TEST_SHARDS_PASSWORD"
SECRET_ENV, SECRET = "RECONCILER_TEST_SHARDS_HOOK", "shards-webhook-secret"


def pick_targets() -> list[str]:
    """One target name per shard, found with the daemon's own hash: target i is
    the one of shard i."""
    chosen: dict[int, str] = {}
    for k in range(1000):
        chosen.setdefault(shard_of(f"site-{k}", SHARDS), f"site-{k}")
        if len(chosen) == SHARDS:
            return [chosen[i] for i in range(SHARDS)]
    raise AssertionError("no spread of names over the shards")


TARGETS = pick_targets()
FAST = "test -f $RECONCILER_ROOT/etc/web.conf"


def test_the_hash_spreads_targets_stably_and_the_share_is_ceil() -> None:
    assert [shard_of(t, SHARDS) for t in TARGETS] == [0, 1, 2]
    assert shard_of("site-0", 1) == 0
    # FNV-1a of "a" is 0xe40c292c: stable across processes and versions.
    assert shard_of("a", 2**31) == 0xE40C292C % 2**31
    assert [fair_share(3, n) for n in (0, 1, 2, 3, 4)] == [3, 3, 2, 1, 1]
    assert fair_share(4, 3) == 2


def test_shards_in_the_config_name_file_and_line_when_wrong() -> None:
    head = "repo: /r\nleader_election:\n  enabled: true\n"
    assert parse_config(head + "  shards: 3\n").leader_election.shards == 3
    assert parse_config(head).leader_election.shards is None  # one Lease, as before
    for bad in ("0", "true", "2.5", "1001", "three"):
        with pytest.raises(ConfigError, match=r"^d.yaml:4: shards must be a whole number"):
            parse_config(head + f"  shards: {bad}\n", source="d.yaml")
    with pytest.raises(ConfigError, match="did you mean 'shards'"):
        parse_config(head + "  shard: 3\n", source="d.yaml")


def test_the_ha_component_runs_three_sharded_replicas_on_postgresql(
        render_tools: Path, tmp_path: Path) -> None:
    """deploy/kubernetes with the ha component, built by the real kustomize."""
    shutil.copytree(REPO_ROOT / "deploy" / "kubernetes", tmp_path / "base")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "kustomization.yaml").write_text(
        "resources: [../base]\ncomponents: [../base/ha]\n")
    built = subprocess.run([str(render_tools / "kustomize"), "build", str(tmp_path / "site")],
                           capture_output=True, text=True, check=True).stdout
    docs = {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(built)}
    deployment = docs["Deployment/reconciler"]["spec"]
    assert deployment["replicas"] == 3
    assert deployment["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}
    pod = deployment["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    assert "PersistentVolumeClaim/reconciler-data" not in docs
    assert docs["PodDisruptionBudget/reconciler"]["spec"]["maxUnavailable"] == 1
    config = parse_config(docs["ConfigMap/reconciler-config"]["data"]["config.yaml"])
    le = config.leader_election
    assert (le.enabled, le.in_cluster, le.shards) == (True, True, 3)
    assert config.history.url is not None and config.history.url.startswith("postgresql://")
    env = {e["name"]: "set" for e in pod["containers"][0]["env"]}
    assert missing_secrets(config, env) == []
    assert "POD_NAME" in env  # the holder identity of every shard's Lease


@dataclass(kw_only=True)
class Fleet:
    """The state repository and the three targets' roots."""

    path: Path
    roots: dict[str, Path]
    health: dict[str, str] = field(default_factory=dict)

    def commit(self, message: str, version: str, **health: str) -> str:
        self.health.update(health)
        targets = "".join(f"  {t}: {{backend: vm, transport: local, root: {r}}}\n"
                          for t, r in self.roots.items())
        files = {"reconciler.yaml": f"apiVersion: reconciler/v1\ntargets:\n{targets}"}
        for t in self.roots:
            check = self.health.get(t, FAST)
            files[f"apps/web-{t}/app.yaml"] = (
                f"target: {t}\nwave: 1\nhealth:\n  - command: {json.dumps(check)}\n"
                "    timeout: 30s\n    retries: 0\n    interval: 0.1s\n")
            files[f"apps/web-{t}/files.yaml"] = (
                f"kind: File\npath: /etc/web.conf\ncontent: {json.dumps(version)}\n")
            files[f"apps/api-{t}/app.yaml"] = f"target: {t}\nwave: 2\n"
            files[f"apps/api-{t}/files.yaml"] = (
                f"kind: File\npath: /etc/api.conf\ncontent: {json.dumps(version)}\n")
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def web(self, target: str) -> str | None:
        conf = self.roots[target] / "etc/web.conf"
        return conf.read_text() if conf.exists() else None

    def api(self, target: str) -> str | None:
        conf = self.roots[target] / "etc/api.conf"
        return conf.read_text() if conf.exists() else None


def test_a_fence_that_refuses_stops_the_rollout_before_its_next_apply(
        fleet: Fleet, tmp_path: Path) -> None:
    """The engine alone, no Lease: the guard starts refusing once wave 1's health
    gate passed on one target; wave 2 is never applied, nothing more recorded."""
    target = TARGETS[0]
    sha = fleet.commit("first", "version 1\n")
    engine = Engine(EngineSettings(repo=f"file://{fleet.path}", data_dir=tmp_path / "data"))
    refusing = False
    refused: list[str] = []

    def guard(_db: Cursor) -> None:
        if refusing:
            refused.append("refused")
            engine.interrupt("fenced: shard 0 is held by another since token 2")
            raise FencedError("fenced: shard 0 is held by another since token 2")

    def watch(event: Event) -> None:
        nonlocal refusing
        if event.kind is EventKind.HEALTH_CHECKED and event.app == f"web-{target}":
            refusing = True

    engine.subscribe(watch)  # after the history's own listener: the gate's event is kept
    try:
        result = engine.sync(sha, targets=[target], guard=guard)
        assert result.result == "interrupted" and "fenced" in result.message
        assert fleet.web(target) == "version 1\n"
        assert fleet.api(target) is None  # wave 2's apply never ran
        assert all(fleet.web(t) is None for t in TARGETS[1:])  # other shards' targets
        assert refused
        [record] = engine.history.deploys()
        assert record.targets == (target,) and record.result == "running"  # end refused
        full = engine.history.deploy(record.id)
        assert full is not None
        assert full.events[-1].kind is EventKind.HEALTH_CHECKED
        assert engine.history.last_good(f"web-{target}", target) is None
        assert engine.record_pending() == 0  # and nothing is kept to be recorded later
    finally:
        engine.close()


class Replica:
    """`reconciler run` with shards, as one pod of the Deployment runs it."""

    def __init__(self, name: str, config: Path, tmp: Path, *, port: int | None = None,
                 poll: str = "0.5s") -> None:
        self.name, self.log = name, tmp / f"{name}.log"
        self.url = f"http://127.0.0.1:{port}" if port else ""
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "POD_NAME": name,
               PASSWORD_ENV: PG_PASSWORD, SECRET_ENV: SECRET}
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "run", "--config", str(config),
                 "--data-dir", str(tmp / f"{name}-data"),
                 "--listen", f"127.0.0.1:{port}" if port else "off",
                 "--poll-interval", poll, "--drift-interval", "0", "--log-format", "json"],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=REPO_ROOT)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def push(self, sha: str) -> int:
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        request = urllib.request.Request(
            f"{self.url}/hooks/github", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                     "X-Hub-Signature-256": "sha256=" + sign(body, SECRET)})
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()
                if line.startswith("{")]

    def messages(self) -> list[str]:
        return [str(line["message"]) for line in self.lines()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process cannot die of TERM
            self.proc.kill()
            self.proc.wait(timeout=10)


def holder(kube: KubeTest, shard: int) -> str:
    found = kube.env.get(f"/apis/coordination.k8s.io/v1/namespaces/{kube.namespace}"
                         f"/leases/{NAME}-{shard}") or {}
    return str((found.get("spec") or {}).get("holderIdentity") or "")


def holders(kube: KubeTest, replicas: list[Replica]) -> dict[int, str]:
    """Shard -> the name of the replica holding it ("" none)."""
    out: dict[int, str] = {}
    for shard in range(SHARDS):
        who = holder(kube, shard)
        out[shard] = next((r.name for r in replicas if who.startswith(f"{r.name}_")), "")
    return out


@dataclass(frozen=True)
class Row:
    id: int
    revision: str
    result: str
    targets: tuple[str, ...]
    pid: int
    events: int


def deploys(history: History) -> list[Row]:
    """Every deploy in the shared history, oldest first, with its pid and events."""
    with history.database.transaction(write=False) as db:
        found = db.execute("SELECT d.id, d.revision, d.result, d.targets, d.pid, "
                           "(SELECT COUNT(*) FROM events e WHERE e.deploy_id = d.id) AS n "
                           "FROM deploys d ORDER BY d.id")
    return [Row(int(r["id"]), str(r["revision"]), str(r["result"]),
                tuple(json.loads(r["targets"])), int(r["pid"]), int(r["n"])) for r in found]


def of(rows: list[Row], target: str, sha: str, *results: str) -> list[Row]:
    return [r for r in rows if target in r.targets and r.revision == sha
            and (not results or r.result in results)]


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    path = tmp_path / "state"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return Fleet(path=path, roots={t: tmp_path / f"root-{t}" for t in TARGETS})


@pytest.fixture
def shared(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[History]:
    monkeypatch.setenv(PASSWORD_ENV, PG_PASSWORD)
    history = open_history(HistorySettings(url=postgres_url, password_env=PASSWORD_ENV),
                           tmp_path / "reader")
    yield history
    history.close()


@pytest.fixture
def start(kube: KubeTest, fleet: Fleet, postgres_url: str, shared: History,
          tmp_path: Path) -> Iterator[Callable[[str], Replica]]:
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        f"repo: file://{fleet.path}\n"
        f"history:\n  url: {postgres_url}\n  password_env: {PASSWORD_ENV}\n  timeout: 5s\n"
        f"leader_election:\n  enabled: true\n  shards: {SHARDS}\n"
        f"  kubeconfig: {kube.kubeconfig()}\n  namespace: {kube.namespace}\n  name: {NAME}\n"
        f"  lease_duration: {LEASE_S}s\n  renew_deadline: {RENEW_S}s\n"
        f"  retry_period: {RETRY_S}s\n"
        f"webhooks:\n  github_secret_env: {SECRET_ENV}\nwatch: false\n")
    started: list[Replica] = []

    def make(name: str, **options: Any) -> Replica:
        started.append(Replica(name, config, tmp_path, **options))
        return started[-1]

    yield make
    for replica in started:
        replica.kill()


def balanced(kube: KubeTest, replicas: list[Replica]) -> bool:
    held = holders(kube, replicas)
    return sorted(held.values()) == sorted(r.name for r in replicas)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def steady(kube: KubeTest, fleet: Fleet, shared: History,
           start: Callable[[str], Replica]) -> tuple[list[Replica], str, str]:
    """Three replicas, one shard each, the first commit deployed on every target;
    then a second one (same content) deployed by the balanced holders, so each
    target's last good revision is its holder's record. Returns both shas."""
    first = fleet.commit("first", "version 1\n")
    replicas = [start(n) for n in ("replica-a", "replica-b", "replica-c")]
    wait_for(lambda: balanced(kube, replicas), timeout=90, step=0.2)
    wait_for(lambda: all(of(deploys(shared), t, first, "success") for t in TARGETS),
             timeout=90, step=0.2)
    second = fleet.commit("second", "version 1\n")
    wait_for(lambda: all(of(deploys(shared), t, second, "success") for t in TARGETS),
             timeout=90, step=0.2)
    assert balanced(kube, replicas)
    return replicas, first, second


def ready(replica: Replica) -> bool:
    try:
        with urllib.request.urlopen(replica.url + "/readyz", timeout=10) as answer:
            return int(answer.status) == 200
    except urllib.error.HTTPError as err:
        assert err.code == 503, err
        return False


def by_name(replicas: list[Replica], name: str) -> Replica:
    return next(r for r in replicas if r.name == name)


def test_three_replicas_hold_one_shard_each_and_deploy_every_target_once(
        kube: KubeTest, fleet: Fleet, shared: History,
        start: Callable[[str], Replica]) -> None:
    replicas, first, second = steady(kube, fleet, shared, start)
    for target in TARGETS:
        assert fleet.web(target) == "version 1\n" and fleet.api(target) == "version 1\n"
    # Stays balanced, and nothing is deployed again, over several polls.
    time.sleep(3.0)
    assert balanced(kube, replicas)
    rows = deploys(shared)
    for target in TARGETS:
        for sha in (first, second):
            assert len(of(rows, target, sha, "success")) == 1, rows
    # The second commit was deployed by the holder of each target's shard.
    held = holders(kube, replicas)
    for shard, target in enumerate(TARGETS):
        pid = of(rows, target, second, "success")[0].pid
        assert pid == by_name(replicas, held[shard]).proc.pid
    # Each deploy covers the targets of one shard: here, exactly one target.
    assert all(len(r.targets) == 1 for r in rows), rows
    # Every target's fence names the replica holding its shard now.
    fences = shared.fences()
    for shard, target in enumerate(TARGETS):
        assert fences[target].holder.startswith(f"{held[shard]}_"), (fences, held)


def test_a_holder_killed_mid_wave_is_replaced_in_time_and_the_deploy_ends_once(
        kube: KubeTest, fleet: Fleet, shared: History,
        start: Callable[[str], Replica]) -> None:
    replicas, _, first = steady(kube, fleet, shared, start)
    target = TARGETS[1]
    victim = by_name(replicas, holders(kube, replicas)[1])
    # The last good revision of the target is the victim's record.
    good = of(deploys(shared), target, first, "success")[0]
    assert good.pid == victim.proc.pid
    assert shared.last_good(f"web-{target}", target) == first

    # A commit whose health check on this target is slow, then fails: the victim
    # applies it and waits in its gate when it is killed.
    bad = fleet.commit("slow and bad", "version 2\n",
                       **{target: "sleep 3; test -f $RECONCILER_ROOT/etc/never"})
    wait_for(lambda: fleet.web(target) == "version 2\n", timeout=120, step=0.05)
    assert of(deploys(shared), target, bad, "running")
    killed = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    others = [r for r in replicas if r is not victim]
    wait_for(lambda: holders(kube, others)[1] != "", timeout=30, step=0.05)
    took = time.monotonic() - killed
    assert took <= LEASE_S + RETRY_S + MARGIN, took

    # The new holder re-plans from live state: the file is already there, so it
    # only re-checks the host, which fails, and rolls back to the dead one's record.
    wait_for(lambda: of(deploys(shared), target, bad, "failure"), timeout=120, step=0.2)
    wait_for(lambda: fleet.web(target) == "version 1\n", timeout=30)
    rows = deploys(shared)
    ended = of(rows, target, bad, "success", "failure")
    assert len(ended) == 1, rows  # once, not twice
    assert ended[0].pid != victim.proc.pid
    assert [r.result for r in of(rows, target, bad)] == ["interrupted", "failure"]
    record = shared.deploy(ended[0].id)
    assert record is not None and record.rolled_back
    assert any(e.kind.value == "rollback_started" and first in e.message
               for e in record.events), record.events
    # The other targets got the commit (their checks are fast) and keep it.
    for other in (TARGETS[0], TARGETS[2]):
        wait_for(lambda other=other: of(deploys(shared), other, bad, "success"), timeout=60)
    # The failed commit is not retried by the new holder: no third deploy.
    time.sleep(3.0)
    assert len(of(deploys(shared), target, bad)) == 2


def test_a_commit_that_failed_on_one_replica_is_not_retried_by_the_next_holder(
        kube: KubeTest, fleet: Fleet, shared: History,
        start: Callable[[str], Replica]) -> None:
    replicas, _, _ = steady(kube, fleet, shared, start)
    target = TARGETS[2]
    first_holder = by_name(replicas, holders(kube, replicas)[2])
    bad = fleet.commit("bad", "version 2\n",
                       **{target: "test -f $RECONCILER_ROOT/etc/never"})
    wait_for(lambda: of(deploys(shared), target, bad, "failure"), timeout=120, step=0.2)
    wait_for(lambda: fleet.web(target) == "version 1\n", timeout=30)
    assert of(deploys(shared), target, bad)[0].pid == first_holder.proc.pid

    def takes(replica: Replica) -> list[dict[str, Any]]:
        return [line for line in replica.lines()
                if line.get("message") == "took shard" and line.get("shard") == 2]

    others = [r for r in replicas if r is not first_holder]
    earlier = {r.name: len(takes(r)) for r in others}  # while the replicas balanced
    first_holder.proc.send_signal(signal.SIGKILL)
    first_holder.proc.wait(timeout=10)
    wait_for(lambda: holders(kube, others)[2] != "", timeout=30, step=0.05)
    new = by_name(others, holders(kube, others)[2])
    wait_for(lambda: len(takes(new)) > earlier[new.name], timeout=30)
    took = takes(new)[-1]
    assert bad in took["failed"], took
    # Several polls later: the new holder left the failed commit alone.
    time.sleep(4.0)
    assert len(of(deploys(shared), target, bad)) == 1
    assert fleet.web(target) == "version 1\n"

    # A new commit is deployed again, once, by a live holder: `new`, or the other
    # replica if `new` took the orphaned shard while the dead one still counted
    # as live (above its share) and handed it on once the count dropped.
    fixed = fleet.commit("fixed", "version 3\n", **{target: FAST})
    wait_for(lambda: of(deploys(shared), target, fixed, "success"), timeout=120, step=0.2)
    assert fleet.web(target) == "version 3\n"
    rows = of(deploys(shared), target, fixed)
    assert len(rows) == 1 and rows[0].pid in {r.proc.pid for r in others}, rows


def test_a_paused_holder_is_fenced_and_writes_nothing_after_the_new_holder_started(
        kube: KubeTest, fleet: Fleet, shared: History,
        start: Callable[[str], Replica]) -> None:
    replicas, _, _ = steady(kube, fleet, shared, start)
    target = TARGETS[0]
    stale = by_name(replicas, holders(kube, replicas)[0])
    slow = fleet.commit("slow", "version 2\n",
                        **{target: "sleep 4; test -f $RECONCILER_ROOT/etc/web.conf"})
    wait_for(lambda: fleet.web(target) == "version 2\n", timeout=120, step=0.05)
    stale.proc.send_signal(signal.SIGSTOP)  # inside its health gate, past its deadline
    others = [r for r in replicas if r is not stale]
    wait_for(lambda: holders(kube, others)[0] != "", timeout=30, step=0.05)
    new = by_name(others, holders(kube, others)[0])
    # The new holder resumes the commit, then deploys a newer one.
    wait_for(lambda: [r for r in of(deploys(shared), target, slow, "success")
                      if r.pid == new.proc.pid], timeout=120, step=0.2)
    newer = fleet.commit("newer", "version 3\n", **{target: FAST})
    wait_for(lambda: of(deploys(shared), target, newer, "success"), timeout=120, step=0.2)
    assert fleet.web(target) == "version 3\n" and fleet.api(target) == "version 3\n"
    before = [r for r in deploys(shared) if r.pid == stale.proc.pid]
    fence = shared.fences()[target]

    stale.proc.send_signal(signal.SIGCONT)
    # The stale replica wakes in its gate with wave 2 still to apply: it says it
    # is fenced, and stops.
    said = f"fenced: shard 0 is held by {fence.holder} since token {fence.token}"
    wait_for(lambda: any(m.startswith(said) for m in stale.messages()), timeout=30)
    time.sleep(2.0)
    # Nothing written: not to the target (wave 2 would put version 2 back)...
    assert fleet.web(target) == "version 3\n" and fleet.api(target) == "version 3\n"
    # ...nor to the history: its deploys are as they were, events and all.
    assert [r for r in deploys(shared) if r.pid == stale.proc.pid] == before
    assert shared.fences()[target] == fence
    assert stale.proc.poll() is None  # and it runs on, as a replica without that shard


def test_a_webhook_on_one_replica_reaches_every_holder_and_every_page_is_the_same(
        kube: KubeTest, fleet: Fleet, shared: History,
        start: Callable[..., Replica]) -> None:
    # Polls once an hour, no file watch: only the webhook explains a later deploy.
    first = fleet.commit("first", "version 1\n")
    replicas = [start(n, port=free_port(), poll="1h")
                for n in ("replica-a", "replica-b", "replica-c")]
    wait_for(lambda: balanced(kube, replicas), timeout=90, step=0.2)
    wait_for(lambda: all(of(deploys(shared), t, first, "success") for t in TARGETS),
             timeout=90, step=0.2)
    # Every replica is ready, holding shard 0 or not. One that got its first shard
    # from another after the deploys is "starting" until that shard's job fetched.
    for replica in replicas:
        wait_for(lambda replica=replica: ready(replica), timeout=30, step=0.2)
    receiver = by_name(replicas, holders(kube, replicas)[0])
    sha = fleet.commit("second", "version 2\n")
    time.sleep(2.0)
    assert not of(deploys(shared), TARGETS[1], sha)  # nobody polls
    sent = time.monotonic()
    assert receiver.push(sha) == 202
    # The receiver holds shard 0 only; the holders of shards 1 and 2 hear of it
    # through the history, within a heartbeat or two.
    wait_for(lambda: all(of(deploys(shared), t, sha, "success") for t in TARGETS),
             timeout=30, step=0.1)
    assert time.monotonic() - sent < 15
    assert all(fleet.web(t) == "version 2\n" for t in TARGETS)
    for other in replicas:
        if other is not receiver:
            assert "relayed webhook" in other.messages()

    # Every replica serves the same deploys, read from the shared history.
    pages = [[(d["id"], d["revision"], d["result"]) for d in r.get("/api/v1/deploys")["deploys"]]
             for r in replicas]
    assert pages[0] == pages[1] == pages[2]
    assert {(row.id, row.revision, row.result) for row in deploys(shared)} == set(pages[0])
    assert len(pages[0]) == 6
    # Every replica's status lists the three shards; each is held by exactly one
    # replica, the one its Lease names.
    held = holders(kube, replicas)
    statuses = {r.name: r.get("/api/v1/status")["shards"] for r in replicas}
    for name, shards in statuses.items():
        assert [s["index"] for s in shards] == [0, 1, 2], shards
        assert all(s["lease"] == f"{kube.namespace}/{NAME}-{s['index']}" for s in shards)
        assert {s["index"] for s in shards if s["is_leader"]} == {
            i for i, who in held.items() if who == name}, (name, shards, held)
        assert all(s["holder"].startswith(f"{held[s['index']]}_") for s in shards), shards
