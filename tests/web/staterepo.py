"""A state repository for status-page tests, made with the git CLI.

Two apps on one VM target on the local transport (rooted in tmp): `config`
(wave 0) and `web` (wave 1). `web` holds a File marked `secret: true` whose
content is `SECRET`, so every test can check that the value never leaves the
engine: not in a page, not in JSON, not in an event stream. Commits are by
Ada Lovelace (`tests.support.gitrepo`), whom the history page names.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import gitrepo
from tests.support.gitrepo import git

SECRET = "pl4nted-s3cret-value-9f2c"


def file_doc(path: str, content: str, *, secret: bool = False) -> str:
    flag = "secret: true\n" if secret else ""
    return f"kind: File\npath: {path}\ncontent: {json.dumps(content)}\nmode: \"0600\"\n{flag}"


class StateRepo(gitrepo.LocalStateRepo):
    def release(self, version: str, password: str, message: str) -> str:
        self.write("apps/web/files.yaml",
                   file_doc("/etc/web/version", version) + "---\n"
                   + file_doc("/etc/web/password", password, secret=True))
        return self.commit(message)

    def pull_request(self, number: int, version: str, password: str) -> str:
        """A branch with a new release, published as refs/pull/<number>/head."""
        git(self.path, "checkout", "-q", "-b", f"pr-{number}")
        sha = self.release(version, password, f"web {version}: rotate the password")
        self.publish_pull_request(number, sha)
        git(self.path, "checkout", "-q", "main")
        return sha


def create(tmp: Path) -> StateRepo:
    repo = StateRepo.create(tmp)
    repo.write("apps/config/app.yaml", "target: laptop\nwave: 0\n")
    repo.write("apps/config/files.yaml", file_doc("/etc/config/app.ini", "mode=prod\n"))
    repo.write("apps/web/app.yaml", "target: laptop\nwave: 1\ndepends_on: []\n")
    repo.release("1.0\n", SECRET, "web 1.0: first release")
    return repo
