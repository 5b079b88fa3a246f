"""A state repository with one VM target on the local transport, built with the git CLI.

The target `laptop` writes under `<tmp>/root`, so a test can prove that a plan
touched nothing there (`snapshot`). Pull-request heads are published the way
GitHub does, as `refs/pull/<n>/head` in the remote repository.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

APP = "target: laptop\nwave: 1\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


def file_doc(path: str, content: str) -> str:
    return f'kind: File\npath: {path}\ncontent: "{content}\\n"\nmode: "0644"\n'


@dataclass
class LocalStateRepo:
    path: Path
    root: Path

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, relative: str) -> None:
        (self.path / relative).unlink()

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def branch(self, name: str, start: str = "main") -> None:
        git(self.path, "checkout", "-q", "-B", name, start)

    def pull_request(self, number: int, branch: str) -> str:
        """Publish `branch` as GitHub's refs/pull/<number>/head; the head sha."""
        sha = git(self.path, "rev-parse", branch)
        git(self.path, "update-ref", f"refs/pull/{number}/head", sha)
        return sha

    def snapshot(self) -> dict[str, tuple[int, int, bytes]]:
        """Every file under the root with inode, mtime and bytes: equal means untouched."""
        return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def create(tmp: Path) -> LocalStateRepo:
    repo = LocalStateRepo(path=tmp / "state", root=tmp / "root")
    repo.path.mkdir()
    repo.root.mkdir()
    git(repo.path, "init", "-q", "-b", "main")
    repo.write("reconciler.yaml", "apiVersion: reconciler/v1\ntargets:\n"
               f"  laptop: {{backend: vm, transport: local, root: {repo.root}}}\n")
    repo.write("apps/web/app.yaml", APP)
    repo.write("apps/web/files.yaml", file_doc("/etc/web/a.conf", "a=1") + "---\n"
               + file_doc("/etc/web/b.conf", "b=1"))
    repo.commit("web: a and b")
    return repo
