"""A state repository with one VM target on the local transport, built with the git CLI.

The target `laptop` writes under `<tmp>/root`, so a test can prove that a plan
touched nothing there (`snapshot`). Pull-request heads are published the way
GitHub does, as `refs/pull/<n>/head` in the remote repository.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import gitrepo
from tests.support.gitrepo import git

__all__ = ["APP", "LocalStateRepo", "create", "file_doc", "git"]

APP = "target: laptop\nwave: 1\n"


def file_doc(path: str, content: str) -> str:
    return f'kind: File\npath: {path}\ncontent: "{content}\\n"\nmode: "0644"\n'


class LocalStateRepo(gitrepo.LocalStateRepo):
    def pull_request(self, number: int, branch: str) -> str:
        """Publish `branch` as GitHub's refs/pull/<number>/head; the head sha."""
        return self.publish_pull_request(number, branch)


def create(tmp: Path) -> LocalStateRepo:
    repo = LocalStateRepo.create(tmp)
    repo.write("apps/web/app.yaml", APP)
    repo.write("apps/web/files.yaml", file_doc("/etc/web/a.conf", "a=1") + "---\n"
               + file_doc("/etc/web/b.conf", "b=1"))
    repo.commit("web: a and b")
    return repo
