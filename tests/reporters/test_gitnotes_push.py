"""The gitnotes reporter with `push: true`, into every kind of remote.

A local non-bare repository with its branch checked out (the user's own clone,
the README's `--repo .`) is written into directly, since libgit2 cannot push
there; a bare one and an ssh remote (real sshd) still get a push. Each time,
`git log --notes=reconciler` in the remote shows the status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.reporters import CommitStatus, Context, State
from reconciler.reporters.gitnotes import GitNotesReporter
from reconciler.source import Credentials, Mirror
from tests.support.gitrepo import git
from tests.support.sshd import SshFleet


def _clone(tmp_path: Path) -> Path:
    work = tmp_path / "clone"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "reconciler.yaml").write_text("apiVersion: reconciler/v1\ntargets: {}\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "state")
    return work


def _status(sha: str, state: State, description: str) -> CommitStatus:
    return CommitStatus.make(sha=sha, context=Context.DEPLOY, state=state,
                             description=description)


def _shown(repo: Path, sha: str) -> list[tuple[str, str]]:
    text = git(repo, "log", "--notes=reconciler", "-1", "--format=%N", sha)
    return [(s["state"], s["description"]) for s in json.loads(text)["statuses"]]


def test_statuses_land_in_a_non_bare_clone_with_its_branch_checked_out(
    tmp_path: Path
) -> None:
    work = _clone(tmp_path)
    sha = git(work, "rev-parse", "HEAD")
    mirror = Mirror(str(work), tmp_path / "data")
    mirror.fetch()
    reporter = GitNotesReporter(mirror, push=True)

    reporter.report(_status(sha, State.PENDING, "deploying wave 1 of 1"))
    reporter.report(_status(sha, State.SUCCESS, "in sync: nothing to do"))

    assert _shown(work, sha) == [("pending", "deploying wave 1 of 1"),
                                 ("success", "in sync: nothing to do")]
    # Nothing else of the clone moved: its branch, index and work tree.
    assert git(work, "rev-parse", "HEAD") == sha
    assert git(work, "status", "--porcelain") == ""
    assert git(work, "fsck", "--no-progress") == ""
    # The next fetch brings the same notes back into the mirror, losing none.
    mirror.fetch()
    assert mirror.read_note(sha) == git(work, "notes", "--ref=reconciler", "show", sha) + "\n"


def test_a_clone_whose_notes_moved_on_is_not_overwritten(tmp_path: Path) -> None:
    work = _clone(tmp_path)
    sha = git(work, "rev-parse", "HEAD")
    mirror = Mirror(f"file://{work}", tmp_path / "data")
    mirror.fetch()
    git(work, "notes", "--ref=reconciler", "add", "-m", "the user's own note", sha)
    reporter = GitNotesReporter(mirror, push=True)

    with pytest.raises(SourceError, match=r"^push to file://.* rejected: "
                                          r"refs/notes/reconciler: non-fast-forward"):
        reporter.report(_status(sha, State.SUCCESS, "deployed"))
    assert git(work, "notes", "--ref=reconciler", "show", sha) == "the user's own note"


def test_statuses_are_pushed_to_a_bare_repository_and_over_ssh(
    tmp_path: Path, ssh_fleet_factory: Callable[..., SshFleet]
) -> None:
    work = _clone(tmp_path)
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    sha = git(work, "rev-parse", "HEAD")

    local = Mirror(str(bare), tmp_path / "data-local")
    local.fetch()
    GitNotesReporter(local, push=True).report(_status(sha, State.SUCCESS, "deployed"))
    assert _shown(bare, sha) == [("success", "deployed")]

    fleet = ssh_fleet_factory(1)
    host = fleet.hosts[0]
    url = f"ssh://{fleet.user}@{host.address}:{host.port}{bare}"
    creds = Credentials(ssh_key=fleet.identity_file, known_hosts=fleet.known_hosts)
    remote = Mirror(url, tmp_path / "data-ssh", creds)
    remote.fetch()
    GitNotesReporter(remote, push=True).report(_status(sha, State.FAILURE, "rolled back"))
    assert _shown(bare, sha) == [("success", "deployed"), ("failure", "rolled back")]
