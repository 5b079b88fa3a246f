"""A fetch brings only what the mirror lacks, and a killed fetch leaves nothing behind.

The origin holds 20 random (incompressible) blobs of 4 MB. They are committed,
removed and brought back by a revert; the mirror fetched each step, so after
the revert it has every blob already and the fetch must bring little more
than one commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.source import Mirror
from tests.source.conftest import Origin, git, make_origin
from tests.source.servers import start_git_daemon

BLOBS = 20
BLOB_SIZE = 4 * 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


def _objects_size(mirror: Mirror) -> int:
    return sum(p.stat().st_size for p in (mirror.path / "objects").rglob("*") if p.is_file())


def _big(origin: Origin) -> None:
    origin.commit({f"blobs/b{i:02}.bin": os.urandom(BLOB_SIZE) for i in range(BLOBS)},
                  "20 blobs of 4 MB")


def _remove_and_revert(origin: Origin, mirror: Mirror) -> None:
    git("rm", "-q", "-r", "blobs", cwd=origin.work)
    git("commit", "-q", "-m", "remove the blobs", cwd=origin.work)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=origin.work)
    mirror.fetch()
    git("revert", "--no-edit", "HEAD", cwd=origin.work)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=origin.work)


@pytest.fixture
def big_origin(tmp_path: Path) -> Origin:
    made = make_origin(tmp_path)
    for repo in (made.work, made.bare):
        # Random blobs do not compress: spare the origin's side the zlib and
        # delta work (seconds per step); the mirror's side is what is measured.
        git("config", "core.compression", "0", cwd=repo)
        git("config", "pack.window", "0", cwd=repo)
    made.commit({"reconciler.yaml": b"apiVersion: reconciler/v1\ntargets: {}\n"}, "start")
    return made


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_a_revert_of_a_local_repository_copies_no_blob_again(
    big_origin: Origin, data_dir: Path, form: str
) -> None:
    url = str(big_origin.bare) if form == "path" else f"file://{big_origin.bare}"
    mirror = Mirror(url, data_dir)
    mirror.fetch()
    _big(big_origin)
    first = mirror.fetch()
    assert first.bytes >= BLOBS * BLOB_SIZE  # the blobs came once
    _remove_and_revert(big_origin, mirror)
    before = _objects_size(mirror)

    again = mirror.fetch()

    grown = _objects_size(mirror) - before
    assert again.objects == 1, again  # the revert commit; its tree is the first one's
    assert again.bytes < 10_000, again
    assert grown < 100_000, grown
    head = big_origin.run("rev-parse", "main")
    assert mirror.resolve("main") == head
    entry = next(e for e in mirror.tree(head).entries() if e.path == "blobs/b07.bin")
    assert len(mirror.tree(head).read(entry)) == BLOB_SIZE


def test_a_revert_over_the_network_receives_what_git_receives(
    big_origin: Origin, data_dir: Path
) -> None:
    """Over a network transport the server chooses what it sends; with reachability
    bitmaps (as forges keep them) it knows the mirror has the blobs of the
    commits it named as haves, and sends little more than the commit."""
    daemon = start_git_daemon(big_origin.bare.parent)
    try:
        mirror = Mirror(daemon.url("origin.git"), data_dir)
        mirror.fetch()
        _big(big_origin)
        assert mirror.fetch().bytes >= BLOBS * BLOB_SIZE
        _remove_and_revert(big_origin, mirror)
        big_origin.run("repack", "-a", "-d", "-b", "-q")

        again = mirror.fetch()
    finally:
        daemon.stop()
    assert again.bytes < 10_000, again
    assert mirror.resolve("main") == big_origin.run("rev-parse", "main")


_KILLED_FETCH = """
import sys
from pathlib import Path
from reconciler.source import Mirror
Mirror(sys.argv[1], Path(sys.argv[2])).fetch()
"""


def test_temporary_packs_of_a_killed_fetch_are_removed_by_the_next_fetch(
    big_origin: Origin, data_dir: Path
) -> None:
    _big(big_origin)
    daemon = start_git_daemon(big_origin.bare.parent)
    url = daemon.url("origin.git")
    mirror = Mirror(url, data_dir)
    pack_dir = mirror.path / "objects" / "pack"
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_FETCH, url, str(data_dir)],
                                env=env, cwd=REPO_ROOT)
        deadline = time.monotonic() + 60
        while not list(pack_dir.glob("pack_git2_*")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the fetch ended before it could be killed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        leftovers = list(pack_dir.glob("pack_git2_*"))
        assert leftovers, "no temporary pack to clean up"
        # git's own spelling, as a `git fetch` into the mirror killed midway leaves it.
        (pack_dir / "tmp_pack_Xy12ab").write_bytes(b"PACK\0\0\0\2")

        mirror.fetch()
    finally:
        daemon.stop()
    assert sorted(p.name for p in pack_dir.iterdir()
                  if p.name.startswith(("pack_git2_", "tmp_pack_"))) == []
    assert mirror.resolve("main") == big_origin.run("rev-parse", "main")
