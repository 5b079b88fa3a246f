"""prune_first: an app's deletions run before its writes, not after every wave.

The last test is end to end: real git, the local transport, a 1 MiB tmpfs as the
root (root only), and a revert that can only free space when it prunes first.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from backends.base import ApplyResult
from reconciler import plan as planner
from reconciler.engine import Engine, EngineSettings
from reconciler.errors import BackendError
from reconciler.events import EventKind
from reconciler.history import InventoryEntry
from reconciler.model import Action, App, Change, ResourceId
from tests.backends.vm.test_full_disk import fill, mount_tmpfs
from tests.rollout.conftest import Harness, app, desired
from tests.support.gitrepo import LocalStateRepo, git


def _owned(harness: Harness, name: str, owner: str) -> None:
    for host in ("h1", "h2"):
        harness.backend.live[(host, ResourceId(kind="File", name=name))] = {"content": "x"}
        harness.history.set_inventory([InventoryEntry(
            target="fleet", host=host, id=ResourceId(kind="File", name=name), app=owner,
            revision="r0")])


def _order(harness: Harness, first: bool) -> list[tuple[str, str, str]]:
    _owned(harness, "/old-blob", "web")
    web: App = replace(app("web", {"/conf": "v2"}, wave=1, batch=1), prune_first=first)
    state = desired("r1", app("db", {"/db": "x"}, wave=0), web)
    runner = harness.rollout(state)
    steps = planner.plan(state, harness.views(state))
    assert runner.run_waves(steps).ok and runner.run_prune(steps).ok
    assert not any(rid.name == "/old-blob" for _, rid in harness.backend.live)
    return [(entry[1], entry[2], entry[3]) for entry in harness.log if entry[0] == "apply"]


def test_without_it_deletions_wait_for_every_wave(harness: Harness) -> None:
    order = _order(harness, first=False)
    assert order[-2:] == [("web", "h1", "/old-blob"), ("web", "h2", "/old-blob")]


def test_with_it_the_apps_deletions_go_before_its_first_batch(harness: Harness) -> None:
    order = _order(harness, first=True)
    web = [step for step in order if step[0] == "web"]
    assert web[:2] == [("web", "h1", "/old-blob"), ("web", "h2", "/old-blob")]
    assert {step[2] for step in web[2:]} == {"/conf"}
    # The earlier wave still goes first, and the prune phase does not delete twice.
    assert order[0][0] == "db"
    kinds = [(e.kind, e.app, e.status) for e in harness.events
             if e.kind in (EventKind.PRUNE_DONE, EventKind.BATCH_STARTED) and e.app == "web"]
    assert kinds[0] == (EventKind.PRUNE_DONE, "web", "success")
    assert [k for k in kinds if k[0] is EventKind.PRUNE_DONE] == kinds[:1]


def test_a_failed_early_prune_fails_the_app_before_any_write(harness: Harness) -> None:
    _owned(harness, "/old-blob", "web")
    web = replace(app("web", {"/conf": "v2"}), prune_first=True)
    state = desired("r1", web)
    original = harness.backend.apply

    def refuse_deletes(the_app: App, changes: Sequence[Change]) -> ApplyResult:
        if any(c.action is Action.DELETE for c in changes):
            raise BackendError("h1: cannot delete /old-blob: no space left on device")
        return original(the_app, changes)

    harness.backend.apply = refuse_deletes  # type: ignore[method-assign, assignment]
    told: list[tuple[str, str]] = []

    def sync_failed(the_app: App, reason: str) -> tuple[str, ...]:
        told.append((the_app.name, reason))
        return ("SyncFail hook(s) ran: page-someone",)

    harness.backend.sync_failed = sync_failed  # type: ignore[attr-defined]
    runner = harness.rollout(state)
    result = runner.run_waves(planner.plan(state, harness.views(state)))
    assert result.halted and not result.ok
    [outcome] = result.outcomes
    assert outcome.status == "failure" and "no space left on device" in outcome.message
    assert outcome.hosts == ("h1", "h2")  # changed: a rollback returns them
    assert harness.contents("/conf") == {}
    # A failure like any other: the backend hears of it once, and its notes end the message.
    assert [name for name, _ in told] == ["web"] and "no space left" in told[0][1]
    assert outcome.message.endswith("SyncFail hook(s) ran: page-someone")


@pytest.fixture
def small_repo(tmp_path: Path) -> Iterator[LocalStateRepo]:
    """A state repo whose local target's root is a 1 MiB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    repo = LocalStateRepo.create(tmp_path)
    mount_tmpfs(repo.root)
    try:
        yield repo
    finally:
        subprocess.run(["umount", "-l", str(repo.root)], check=False)


def test_a_revert_frees_space_on_a_full_disk_only_with_prune_first(
    small_repo: LocalStateRepo, tmp_path: Path
) -> None:
    repo, root = small_repo, small_repo.root
    repo.write("apps/data/app.yaml", "target: laptop\n")
    repo.write("apps/data/conf.yaml", "kind: File\npath: /etc/app.conf\ncontent: one\n")
    repo.commit("conf one")
    engine = Engine(EngineSettings(repo=str(repo.path), rev="main", data_dir=tmp_path / "data",
                                   targets=("laptop",)))
    try:
        assert engine.sync().result == "success"
        # A release with a large blob that fits, then a log fills what is left.
        repo.write("apps/data/files/blob.bin", "b" * 600_000)
        repo.write("apps/data/blob.yaml", "kind: File\npath: /var/blob.bin\nsource: blob.bin\n")
        repo.write("apps/data/conf.yaml", "kind: File\npath: /etc/app.conf\ncontent: two\n")
        bad = repo.commit("blob")
        assert engine.sync().result == "success"
        fill(root)

        git(repo.path, "revert", "--no-edit", bad)
        reverted = engine.sync()
        assert reverted.result == "failure"
        assert f"localhost: cannot write {root}/etc/app.conf: no space left on device" \
            in reverted.message
        assert (root / "var/blob.bin").exists()  # the prune never came

        repo.write("apps/data/app.yaml", "target: laptop\nprune_first: true\n")
        repo.commit("prune first")
        freed = engine.sync()
        assert freed.result == "success", freed.message
        assert not (root / "var/blob.bin").exists()
        assert (root / "etc/app.conf").read_text() == "one"
    finally:
        engine.close()
