"""A state repository for status-page tests, made with the git CLI.

Two apps on one VM target on the local transport (rooted in tmp): `config`
(wave 0) and `web` (wave 1). `web` holds a File marked `secret: true` whose
content is `SECRET`, so every test can check that the value never leaves the
engine: not in a page, not in JSON, not in an event stream.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SECRET = "pl4nted-s3cret-value-9f2c"
ENV = {"GIT_AUTHOR_NAME": "Ada Lovelace", "GIT_AUTHOR_EMAIL": "ada@example.com",
       "GIT_COMMITTER_NAME": "Ada Lovelace", "GIT_COMMITTER_EMAIL": "ada@example.com",
       "HOME": "/nonexistent", "PATH": "/usr/bin:/bin:/usr/local/bin"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


def file_doc(path: str, content: str, *, secret: bool = False) -> str:
    flag = "secret: true\n" if secret else ""
    return f"kind: File\npath: {path}\ncontent: {json.dumps(content)}\nmode: \"0600\"\n{flag}"


@dataclass
class StateRepo:
    path: Path
    root: Path

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def release(self, version: str, password: str, message: str) -> str:
        self.write("apps/web/files.yaml",
                   file_doc("/etc/web/version", version) + "---\n"
                   + file_doc("/etc/web/password", password, secret=True))
        return self.commit(message)

    def pull_request(self, number: int, version: str, password: str) -> str:
        """A branch with a new release, published as refs/pull/<number>/head."""
        git(self.path, "checkout", "-q", "-b", f"pr-{number}")
        sha = self.release(version, password, f"web {version}: rotate the password")
        git(self.path, "update-ref", f"refs/pull/{number}/head", sha)
        git(self.path, "checkout", "-q", "main")
        return sha


def create(tmp: Path) -> StateRepo:
    repo = StateRepo(path=tmp / "state", root=tmp / "root")
    repo.path.mkdir()
    repo.root.mkdir()
    git(repo.path, "init", "-q", "-b", "main")
    repo.write("reconciler.yaml", "apiVersion: reconciler/v1\ntargets:\n"
               f"  laptop: {{backend: vm, transport: local, root: {repo.root}}}\n")
    repo.write("apps/config/app.yaml", "target: laptop\nwave: 0\n")
    repo.write("apps/config/files.yaml", file_doc("/etc/config/app.ini", "mode=prod\n"))
    repo.write("apps/web/app.yaml", "target: laptop\nwave: 1\ndepends_on: []\n")
    repo.release("1.0\n", SECRET, "web 1.0: first release")
    return repo
