"""The mirror's life: incremental fetches, revisions, refs, notes and locking."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source import Mirror
from tests.source.conftest import Origin, git


def test_mirror_is_bare_under_data_dir_and_keeps_no_url(mirror: Mirror, data_dir: Path) -> None:
    assert mirror.path.parent == data_dir / "mirrors"
    assert (mirror.path / "HEAD").is_file() and not (mirror.path / ".git").exists()
    config = (mirror.path / "config").read_text()
    assert "bare = true" in config and "[remote" not in config


def test_incremental_fetch_sees_a_new_commit(mirror: Mirror, origin: Origin) -> None:
    first = mirror.resolve("main")
    second = origin.commit({"apps/web/app.yaml": b"target: laptop\nwave: 2\n"}, "Wave 2")
    assert mirror.resolve("main") == first  # nothing changes until the next fetch
    mirror.fetch()
    assert mirror.resolve("main") == second != first
    tree = mirror.tree(second)
    entry = next(e for e in tree.entries() if e.path == "apps/web/app.yaml")
    assert tree.read(entry) == b"target: laptop\nwave: 2\n"


def test_a_second_mirror_object_reuses_the_same_directory(
    mirror: Mirror, origin: Origin, data_dir: Path
) -> None:
    again = Mirror(str(origin.bare), data_dir)
    assert again.path == mirror.path
    assert again.resolve("main") == mirror.resolve("main")  # readable without fetching


def test_resolve_branch_tag_short_sha_and_head(mirror: Mirror, origin: Origin) -> None:
    sha = origin.run("rev-parse", "main")
    git("tag", "-a", "v1", "-m", "release 1", cwd=origin.work)
    git("tag", "light", cwd=origin.work)
    git("push", "-q", "origin", "v1", "light", cwd=origin.work)
    mirror.fetch()
    for rev in ("main", "refs/heads/main", "v1", "light", sha, sha[:8], "HEAD", "main~0"):
        assert mirror.resolve(rev) == sha, rev


def test_head_follows_the_remote_default_branch(origin: Origin, data_dir: Path) -> None:
    trunk = origin.commit({"trunk.txt": b"t\n"}, "On trunk", branch="trunk")
    origin.run("symbolic-ref", "HEAD", "refs/heads/trunk")
    mirror = Mirror(str(origin.bare), data_dir)
    mirror.fetch()
    assert mirror.resolve("HEAD") == trunk != mirror.resolve("main")


@pytest.mark.parametrize("rev", ["nope", "0123456789abcdef", "main~99", "", "v1..v2"])
def test_unknown_revision(mirror: Mirror, rev: str) -> None:
    with pytest.raises(SourceError) as caught:
        mirror.resolve(rev)
    assert str(caught.value) == f"unknown revision '{rev}'"


def test_a_tree_is_not_a_revision(mirror: Mirror) -> None:
    with pytest.raises(SourceError, match=r"^revision 'main\^\{tree\}' is not a commit$"):
        mirror.resolve("main^{tree}")


def test_reading_before_any_fetch(origin: Origin, data_dir: Path) -> None:
    with pytest.raises(SourceError, match=r"has not been fetched yet$"):
        Mirror(str(origin.bare), data_dir).resolve("main")


def test_deleted_branches_leave_the_mirror(mirror: Mirror, origin: Origin) -> None:
    origin.commit({"x.txt": b"x\n"}, "Topic", branch="topic")
    mirror.fetch()
    assert "refs/heads/topic" in mirror.refs("refs/heads/*")
    origin.run("branch", "-D", "topic")
    mirror.fetch()
    assert set(mirror.refs("refs/heads/*")) == {"refs/heads/main"}


def test_pull_request_heads_with_extra_refspecs(mirror: Mirror, origin: Origin) -> None:
    head = origin.commit({"pr.txt": b"pr\n"}, "A proposal", branch="proposal")
    origin.run("update-ref", "refs/pull/7/head", head)
    mirror.fetch()
    assert mirror.refs("refs/pull/*/head") == {}  # not mirrored by default
    mirror.fetch(["+refs/pull/*/head:refs/pull/*/head"])
    assert mirror.refs("refs/pull/*/head") == {"refs/pull/7/head": head}
    assert mirror.resolve("refs/pull/7/head") == head
    origin.run("update-ref", "refs/pull/8/head", head)
    mirror.fetch(["refs/pull/*/head"])  # the daemon config's short spelling
    assert set(mirror.refs("refs/pull/*/head")) == {"refs/pull/7/head", "refs/pull/8/head"}


def test_commit_info(mirror: Mirror, origin: Origin) -> None:
    sha = mirror.resolve("main")
    info = mirror.commit_info(sha)
    assert info.sha == sha
    assert (info.author_name, info.author_email) == ("Ada Lovelace", "ada@example.com")
    assert info.summary == "Initial state"
    assert info.message.startswith("Initial state\n\nWith a body.")
    stamp = int(origin.run("log", "-1", "--format=%at", sha))
    assert int(info.time.timestamp()) == stamp and info.time.utcoffset() is not None


def test_commit_info_of_unknown_sha(mirror: Mirror) -> None:
    with pytest.raises(SourceError, match=r"^unknown revision 'f{40}'$"):
        mirror.commit_info("f" * 40)


def test_notes_write_read_push_round_trip(mirror: Mirror, origin: Origin) -> None:
    sha = mirror.resolve("main")
    assert mirror.read_note(sha) is None
    mirror.write_note(sha, '{"state": "pending"}')
    mirror.write_note(sha, '{"state": "success"}')  # overwrites
    assert mirror.read_note(sha) == '{"state": "success"}'
    assert mirror.read_note(sha, ref="refs/notes/other") is None
    mirror.push_notes()
    shown = origin.run("log", "-1", "--notes=reconciler", "--format=%N", sha)
    assert shown == '{"state": "success"}'
    # A fetch brings the same note back; it is not lost.
    mirror.fetch()
    assert mirror.read_note(sha) == '{"state": "success"}'


def test_push_of_a_diverged_notes_ref_is_rejected(mirror: Mirror, origin: Origin) -> None:
    sha = mirror.resolve("main")
    git("notes", "--ref=reconciler", "add", "-m", "theirs", sha, cwd=origin.work)
    git("push", "-q", "origin", "refs/notes/reconciler", cwd=origin.work)
    mirror.write_note(sha, "ours")
    with pytest.raises(SourceError,
                       match=r"^push to .*origin.git rejected: refs/notes/reconciler: non-fast"):
        mirror.push("refs/notes/reconciler:refs/notes/reconciler")
    assert origin.run("notes", "--ref=reconciler", "show", sha) == "theirs"


def test_concurrent_fetches_of_one_mirror_take_turns(
    origin: Origin, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirrors = [Mirror(str(origin.bare), data_dir) for _ in range(4)]
    inside, most = [0], [0]
    guard = threading.Lock()
    real = Mirror._open

    def counting_open(self: Mirror, *, create: bool = False) -> object:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            threading.Event().wait(0.05)  # widen the window a race would need
            return real(self, create=create)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(Mirror, "_open", counting_open)
    errors: list[BaseException] = []

    def run(m: Mirror) -> None:
        try:
            m.fetch()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in mirrors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and most[0] == 1
    assert mirrors[0].resolve("main") == origin.run("rev-parse", "main")
    assert (data_dir / "mirrors" / f"{mirrors[0].path.name}.lock").exists()


def test_fetch_waits_for_another_process_holding_the_lock(mirror: Mirror, origin: Origin) -> None:
    lock_file = mirror.path.parent / f"{mirror.path.name}.lock"
    holder = subprocess.Popen(
        ["python", "-c",
         "import fcntl,sys,time\n"
         f"f=open({str(lock_file)!r},'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('held', flush=True); time.sleep(0.5)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    try:
        started = time.monotonic()
        mirror.fetch()
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=10)
        holder.stdout.close()
    assert waited >= 0.3
