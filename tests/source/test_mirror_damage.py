"""A mirror deleted or damaged under a running process is cloned again by the
next fetch of the same `Mirror` object, without a restart; `damage()` says
what is wrong in the meantime."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.source import Mirror
from tests.source.conftest import Origin


def _delete(mirror: Mirror) -> None:
    shutil.rmtree(mirror.path)


def _bogus_branch(mirror: Mirror) -> None:
    (mirror.path / "packed-refs").unlink(missing_ok=True)
    (mirror.path / "refs/heads/main").write_text("ab" * 20 + "\n")


def _no_objects(mirror: Mirror) -> None:
    shutil.rmtree(mirror.path / "objects")
    (mirror.path / "objects").mkdir()


def _no_refs(mirror: Mirror) -> None:
    shutil.rmtree(mirror.path / "refs")


DAMAGE: dict[str, tuple[Callable[[Mirror], None], str]] = {
    "deleted": (_delete, "the mirror directory is missing"),
    "branch names no commit": (_bogus_branch, f"refs/heads/main names {'ab' * 6}, "),
    "objects gone": (_no_objects, "refs/heads/main names "),
    "refs gone": (_no_refs, "the mirror cannot be opened: "),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_the_next_fetch_clones_a_damaged_mirror_again(
    mirror: Mirror, origin: Origin, kind: str
) -> None:
    damage, said = DAMAGE[kind]
    assert mirror.damage("refs/heads/main") is None
    mirror.write_note(mirror.resolve("main"), "deployed")
    mirror.push_notes()
    damage(mirror)
    assert (mirror.damage("refs/heads/main") or "").startswith(said), mirror.damage()

    new = origin.commit({"apps/web/app.yaml": b"target: laptop\nwave: 3\n"}, "Wave 3")
    mirror.fetch()

    assert mirror.damage("refs/heads/main") is None
    assert mirror.resolve("main") == new
    entry = next(e for e in mirror.tree(new).entries() if e.path == "apps/web/app.yaml")
    assert mirror.tree(new).read(entry) == b"target: laptop\nwave: 3\n"
    # The note was pushed before the loss: the clone brings it back.
    assert mirror.read_note(origin.run("rev-parse", "main~1")) == "deployed"


def test_a_branch_the_remote_lacks_is_no_damage_to_fetch_over(
    mirror: Mirror, data_dir: Path
) -> None:
    inode = mirror.path.stat().st_ino
    assert mirror.damage() is None
    assert mirror.damage("refs/heads/trunk") == "refs/heads/trunk is not in the mirror"
    mirror.fetch()
    assert mirror.path.stat().st_ino == inode  # not cloned again


def test_a_mirror_replaced_by_another_process_is_reopened(
    mirror: Mirror, origin: Origin, data_dir: Path
) -> None:
    shutil.rmtree(mirror.path)
    other = Mirror(str(origin.bare), data_dir)
    other.fetch()
    new = origin.commit({"apps/web/app.yaml": b"target: laptop\nwave: 4\n"}, "Wave 4")
    mirror.fetch()
    assert mirror.resolve("main") == new == other.resolve("main")
