"""Git repositories for tests and benchmarks, built with the git CLI as a user would.

Every git call runs as one fixed author and committer (Ada Lovelace, which a
test may assert on), with neither the user's global and system git config nor
any `GIT_*` variable of the caller's environment, so a signing key, a hook or a
git hook's own `GIT_DIR` on the machine never changes what a test commits.

`LocalStateRepo.create(tmp)` is the smallest state repository that deploys:
`reconciler.yaml` with one VM target, `laptop`, on the local transport, rooted
in `<tmp>/root`; callers add their apps and commit.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Self

AUTHOR = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run `git args` in `cwd`; its output without surrounding whitespace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | AUTHOR
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def local_target(root: Path, name: str = "laptop") -> str:
    """The reconciler.yaml line of a VM target on the local transport rooted at `root`."""
    return f"  {name}: {{backend: vm, transport: local, root: {root}}}\n"


@dataclass
class GitRepo:
    """A working repository on branch main: write files, commit them all, branch."""

    path: Path

    def init(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        git(self.path, "init", "-q", "-b", "main")

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, relative: str) -> None:
        (self.path / relative).unlink()

    def commit(self, message: str, *, allow_empty: bool = False) -> str:
        """Commit every change in the work tree; the new commit's sha."""
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", *(["--allow-empty"] if allow_empty else []),
            "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def branch(self, name: str, start: str = "main") -> None:
        git(self.path, "checkout", "-q", "-B", name, start)

    def publish_pull_request(self, number: int, rev: str) -> str:
        """Publish `rev` the way GitHub does, as refs/pull/<number>/head; its sha."""
        sha = git(self.path, "rev-parse", rev)
        git(self.path, "update-ref", f"refs/pull/{number}/head", sha)
        return sha


@dataclass
class LocalStateRepo(GitRepo):
    """A state repository whose `laptop` target writes under `root`."""

    root: Path

    @classmethod
    def create(cls, tmp: Path) -> Self:
        """`<tmp>/state` with reconciler.yaml written (not committed), `<tmp>/root` empty."""
        repo = cls(path=tmp / "state", root=tmp / "root")
        repo.init()
        repo.root.mkdir()
        repo.write("reconciler.yaml",
                   "apiVersion: reconciler/v1\ntargets:\n" + local_target(repo.root))
        return repo

    def snapshot(self) -> dict[str, tuple[int, int, bytes]]:
        """Every file under the root with inode, mtime and bytes: equal means untouched."""
        return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
                for p in sorted(self.root.rglob("*")) if p.is_file()}
