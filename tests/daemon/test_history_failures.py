"""A history write that fails must still end the deploy: a folder name that is
not UTF-8 (made with the real git CLI) and a full disk under SQLite (a real
tmpfs) once left a deploy `running` for good and its commit without a status."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.daemon.service import Daemon, wait_idle
from tests.daemon.conftest import StateRepo, deploys, git, notes, wait_for

Factory = Callable[..., Daemon]


def commit_bad_folder(repo: StateRepo) -> str:
    """apps/w<0xff>eb/app.yaml: a tree entry name with a byte that is not UTF-8."""
    folder = repo.path / os.fsdecode(b"apps/w\xffeb")
    folder.mkdir(parents=True)
    (folder / "app.yaml").write_text("target: laptop\n")
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-q", "-m", "an app folder whose name is not UTF-8")
    return git(repo.path, "rev-parse", "HEAD")


def test_a_folder_name_that_is_not_utf8_gets_an_error_status_and_a_closed_deploy(
    state_repo: StateRepo, daemon_factory: Factory,
) -> None:
    daemon = daemon_factory(state_repo, listen="127.0.0.1:0")
    wait_for(lambda: wait_idle(daemon, 5) and len(deploys(daemon)) == 1)
    sha = commit_bad_folder(state_repo)
    daemon.trigger("poll")
    wait_for(lambda: any(s["state"] == "error" for s in notes(daemon, sha)), timeout=20)
    assert wait_idle(daemon, 10)

    [status] = [s for s in notes(daemon, sha) if s["state"] == "error"]
    assert "apps/w\\xffeb/app.yaml:1" in status["description"]
    assert deploys(daemon)[-1] == (sha, "error")
    assert daemon.history.running() == []
    [record] = [d for d in daemon.history.deploys() if d.revision == sha]
    assert record.message.startswith("invalid: apps/w\\xffeb/app.yaml:1: ")
    # The page and the API show it, escaped, and no rollout in progress.
    assert daemon.web_url is not None
    with urllib.request.urlopen(f"{daemon.web_url}/api/v1/deploys/{record.id}") as answer:
        body = answer.read().decode("utf-8")
    assert "w\\\\xffeb" in body and '"error"' in body
    with urllib.request.urlopen(f"{daemon.web_url}/") as answer:
        page = answer.read().decode("utf-8")
    assert "w\\xffeb" in page and "in progress" not in page.lower()
