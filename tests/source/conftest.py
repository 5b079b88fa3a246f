"""Fixtures for the source tests: an origin repository written with the git CLI,
and real git servers (git daemon, git http-backend) that serve it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.source import Mirror
from tests.source.servers import (
    GitDaemon,
    GitHttpServer,
    make_certificate,
    start_git_daemon,
    start_git_http,
)
from tests.support import gitrepo


def git(*args: str, cwd: Path) -> str:
    """`tests.support.gitrepo.git` (as Ada Lovelace, no user config), `cwd` last."""
    return gitrepo.git(cwd, *args)


@dataclass
class Origin:
    """A bare repository (the remote) and a working clone that commits and pushes to it."""

    bare: Path
    work: Path

    def commit(self, files: Mapping[str, bytes], message: str, branch: str = "main") -> str:
        for name, data in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def run(self, *args: str) -> str:
        return git(*args, cwd=self.bare)


STATE_FILES = {
    "reconciler.yaml": b"apiVersion: reconciler/v1\ntargets: {}\n",
    "apps/web/app.yaml": b"target: laptop\nwave: 1\n",
    "apps/web/files/blob.bin": bytes(range(256)) * 4,
}


def make_origin(root: Path) -> Origin:
    bare = root / "origin.git"
    work = root / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
    git("init", "-q", "-b", "main", str(work), cwd=root)
    git("remote", "add", "origin", str(bare), cwd=work)
    return Origin(bare=bare, work=work)


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """An origin whose main branch holds a small state repo, a symlink and a submodule."""
    made = make_origin(tmp_path)
    (made.work / "apps/web").mkdir(parents=True)
    (made.work / "apps/web/current").symlink_to("files/blob.bin")
    (made.work / ".gitmodules").write_text(
        '[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.com/lib.git\n'
    )
    # A gitlink entry is what `git submodule add` records; no clone of it is needed,
    # and its empty folder keeps `git add -A` from dropping it.
    (made.work / "vendor/lib").mkdir(parents=True)
    git("update-index", "--add", "--cacheinfo", f"160000,{'ab' * 20},vendor/lib", cwd=made.work)
    made.commit(STATE_FILES, "Initial state\n\nWith a body.")
    return made


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def mirror(origin: Origin, data_dir: Path) -> Mirror:
    """A mirror of the origin, fetched once."""
    made = Mirror(str(origin.bare), data_dir)
    made.fetch()
    return made


@pytest.fixture
def git_daemon(origin: Origin) -> Iterator[GitDaemon]:
    daemon = start_git_daemon(origin.bare.parent)
    yield daemon
    daemon.stop()


TOKEN = "s3cr3t-t0ken-4f9a"


@pytest.fixture
def git_http(origin: Origin) -> Iterator[GitHttpServer]:
    server = start_git_http(origin.bare.parent, user="x-access-token", token=TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def git_https(origin: Origin, certificate: tuple[Path, Path]) -> Iterator[GitHttpServer]:
    server = start_git_http(origin.bare.parent, user="x-access-token", token=TOKEN,
                            tls=certificate)
    yield server
    server.stop()

