"""The daemon in-process against a real file:// repository and a real VM root."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from reconciler.daemon.service import Daemon, wait_idle
from tests.daemon.conftest import (
    GIT_ENV,
    StateRepo,
    app_yaml,
    deploys,
    git,
    notes,
    states,
    wait_for,
)

Factory = Callable[..., Daemon]


def test_a_commit_is_seen_by_the_file_watch_and_gets_pending_then_success(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    daemon = daemon_factory(state_repo)  # poll_interval is 1h: only the watch can explain it
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    assert state_repo.web_conf() == "version 1\n"
    sha = state_repo.commit("second", content="version 2\n")
    committed = time.time()
    wait_for(lambda: len(daemon.history.deploys()) == 2)
    started = daemon.history.deploys(limit=1)[0]
    assert started.revision == sha
    assert started.started - committed < 1.0
    wait_for(lambda: "success" in states(daemon, sha))
    assert state_repo.web_conf() == "version 2\n"
    seen = states(daemon, sha)
    assert seen[0] == "pending" and seen[-1] == "success"
    assert any("wave 1 of 1" in s["description"] for s in notes(daemon, sha))
    # The note is readable with plain git on the mirror.
    log = subprocess.run(["git", "--git-dir", str(daemon.engine.mirror.path), "log",
                          "--notes=reconciler", "-1", sha], capture_output=True, text=True,
                         env=GIT_ENV, check=True).stdout
    assert '"state": "success"' in log


def test_three_commits_during_a_slow_rollout_give_one_more_rollout_of_the_newest(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    slow = state_repo.commit("slow", app=app_yaml("sleep 1.5"))
    daemon = daemon_factory(state_repo)
    wait_for(lambda: daemon.worker.state.running == slow)
    later = [state_repo.commit(f"c{i}", content=f"version {i}\n") for i in (3, 4, 5)]
    wait_for(lambda: wait_idle(daemon, 0.1) and len(deploys(daemon)) >= 2, timeout=20)
    time.sleep(0.5)  # any stray trigger would have started by now
    assert wait_idle(daemon, 5)
    assert deploys(daemon) == [(slow, "success"), (later[-1], "success")]
    assert state_repo.web_conf() == "version 5\n"


def test_a_failing_commit_is_not_retried_until_a_new_commit_fixes_it(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    daemon = daemon_factory(state_repo)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    bad = state_repo.commit("bad", content="version 2\n", app=app_yaml("false", "1s"))
    wait_for(lambda: "failure" in states(daemon, bad))
    final = notes(daemon, bad)[-1]
    assert final["state"] == "failure" and "rolled back" in final["description"]
    assert len(final["description"]) <= 140
    assert state_repo.web_conf() == "version 1\n"  # rolled back to the last good revision
    for _ in range(3):
        daemon.trigger("poll")
        assert wait_idle(daemon, 5)
    assert [r for _, r in deploys(daemon)] == ["success", "failure"]
    fixed = state_repo.commit("fixed", content="version 3\n", app=app_yaml())
    wait_for(lambda: "success" in states(daemon, fixed))
    assert state_repo.web_conf() == "version 3\n"
    daemon.trigger("sync", explicit=True)  # an explicit sync deploys even a deployed commit
    wait_for(lambda: len(deploys(daemon)) == 4)


def test_an_invalid_commit_gets_an_error_status_with_file_and_line(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    daemon = daemon_factory(state_repo)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    bad = state_repo.commit("typo", app="target: laptop\nwav: 2\n")
    wait_for(lambda: "error" in states(daemon, bad))
    description = notes(daemon, bad)[-1]["description"]
    assert "apps/web/app.yaml:2" in description
    assert state_repo.web_conf() == "version 1\n"


def test_drift_is_reported_and_corrected_only_with_self_heal(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    daemon = daemon_factory(state_repo, self_heal=False)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    conf = state_repo.root / "etc/web.conf"
    conf.write_text("edited by hand\n")
    daemon.check_drift()
    wait_for(lambda: daemon.worker.state.last_drift is not None)
    report = daemon.worker.state.last_drift
    assert report is not None and report.summary["update"] == 1 and not report.healed
    assert any("/etc/web.conf" in r for r in report.resources)
    assert conf.read_text() == "edited by hand\n"
    assert len(deploys(daemon)) == 1

    daemon.worker.self_heal = True
    daemon.check_drift()
    wait_for(lambda: (d := daemon.worker.state.last_drift) is not None and d.healed)
    assert conf.read_text() == "version 1\n"
    assert deploys(daemon)[-1][1] == "success"
    assert daemon.history.deploys(limit=1)[0].trigger == "self-heal"


def test_a_self_heal_of_the_last_good_commit_does_not_retry_the_failed_head(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    daemon = daemon_factory(state_repo, self_heal=True)
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    good = deploys(daemon)[0][0]
    # No rollback: the failed commit's file stays, which the drift check finds.
    bad = state_repo.commit("bad", content="version 2\n",
                            app=app_yaml("false", "1s") + "rollback: none\n")
    wait_for(lambda: "failure" in states(daemon, bad))
    assert state_repo.web_conf() == "version 2\n"
    daemon.check_drift()
    wait_for(lambda: (d := daemon.worker.state.last_drift) is not None and d.healed)
    assert state_repo.web_conf() == "version 1\n"
    for _ in range(3):
        daemon.trigger("poll")
        assert wait_idle(daemon, 5)
    assert deploys(daemon) == [(good, "success"), (bad, "failure"), (good, "success")]
    # And after a restart: the memory comes back from the history.
    assert daemon.stop(timeout=10)
    again = daemon_factory(state_repo, self_heal=True)
    assert again.worker.state.memory.failed == frozenset({bad})
    assert wait_idle(again, 5)
    assert len(deploys(again)) == 3


def test_an_invalid_commit_under_a_state_folder_names_the_file_from_the_repo_root(
    state_repo: StateRepo, daemon_factory: Factory
) -> None:
    # The same layout as the README's demo: the state root is a folder of the repo.
    folder = state_repo.path / "deploy"
    for name in ("reconciler.yaml", "apps/web/app.yaml", "apps/web/files.yaml"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text((state_repo.path / name).read_text())
    (folder / "apps/web/app.yaml").write_text("target: laptop\nwav: 2\n")
    git(state_repo.path, "add", "-A")
    git(state_repo.path, "commit", "-q", "-m", "state in a folder, with a typo")
    bad = git(state_repo.path, "rev-parse", "HEAD")
    daemon = daemon_factory(state_repo, path="deploy")
    wait_for(lambda: "error" in states(daemon, bad))
    assert "invalid: deploy/apps/web/app.yaml:2: " in notes(daemon, bad)[-1]["description"]
