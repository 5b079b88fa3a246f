"""Fetching from, and pushing a ref to, a repository on this machine, object by object.

For a remote on the same file system (a path or a file:// URL: the README's
`--repo .`), libgit2's local transport builds a pack of everything reachable
from the new tips that is not reachable from the tips' old values by its
boundary commits alone: after a revert it sends again every blob the revert
brings back, although the mirror holds them all (20 blobs of 4 MB: 80 MB
copied and compressed again). Here the mirror is asked about each object
instead: a walk from the new tips stops at every object the mirror already
has, so a revert copies one commit. libgit2 also cannot push to a non-bare
repository, which the user's own clone is; `push_ref` writes the objects and
the ref into it directly.

Invariants:
- A repository that has an object has everything it refers to: objects are
  written children first (loose ones one by one, in post-order; more than
  `LOOSE_LIMIT` as one pack, which becomes visible only whole), so a kill
  mid-copy never leaves a commit without its tree. The walk relies on it.
- Refs move only after every object they need is written.
- A ref a refspec does not force moves only forward; `push_ref` never forces.
- Gitlinks (submodule commits) are never followed: their objects live in
  another repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pygit2
from pygit2.enums import FileMode, ObjectType, ReferenceType

from reconciler.errors import SourceError

LOOSE_LIMIT = 100
"""Fewer objects than this are written loose, as git's receive.unpackLimit does."""


@dataclass(frozen=True)
class Transfer:
    """What one fetch brought into the mirror."""

    objects: int
    bytes: int
    """Network fetches: bytes received. Local ones: the size of the objects copied."""


@dataclass(frozen=True)
class Advertised:
    """A source repository's refs, as a remote's advertisement lists them."""

    refs: Mapping[str, pygit2.Oid]
    head: str | None
    """The branch HEAD names, when it is symbolic."""


def local_path(url: str) -> Path | None:
    """The directory of a local repository URL (an absolute path or file://); else None."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if "://" in url or not url.startswith("/"):
        return None
    return Path(url)


def open_repository(path: Path, what: str) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(path))
    except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
        raise SourceError(f"cannot {what} {path}: not a git repository ({_line(exc)})") from None


def advertise(repo: pygit2.Repository) -> Advertised:
    refs: dict[str, pygit2.Oid] = {}
    for name in repo.references:
        try:
            target = repo.references[name].resolve().target
        except (pygit2.GitError, KeyError, ValueError):
            continue  # a dangling symbolic ref names nothing
        if isinstance(target, pygit2.Oid):
            refs[name] = target
    head: str | None = None
    try:
        ref = repo.lookup_reference("HEAD")
        if ref.type == ReferenceType.SYMBOLIC:
            head = str(ref.target)
    except (pygit2.GitError, KeyError, ValueError):
        pass
    return Advertised(refs=refs, head=head)


@dataclass(frozen=True)
class Update:
    name: str
    target: pygit2.Oid
    force: bool


def updates(advertised: Advertised, specs: Sequence[str]) -> list[Update]:
    """The mirror refs that `specs` map the advertised refs to (first match wins)."""
    out: dict[str, Update] = {}
    for spec in specs:
        force = spec.startswith("+")
        src, _, dst = spec.lstrip("+").partition(":")
        for name, target in advertised.refs.items():
            mapped = map_ref(name, src, dst or src)
            if mapped is not None and mapped not in out:
                out[mapped] = Update(name=mapped, target=target, force=force)
    return list(out.values())


def map_ref(name: str, src: str, dst: str) -> str | None:
    """`name` through the refspec `src:dst` (one `*` on each side, or none)."""
    if "*" not in src:
        return dst if name == src else None
    if src.count("*") != 1 or dst.count("*") != 1:
        return None
    head, tail = src.split("*")
    if not (name.startswith(head) and name.endswith(tail)) or len(name) < len(head) + len(tail):
        return None
    middle = name[len(head):len(name) - len(tail)]
    return dst.replace("*", middle)


def missing(src: pygit2.Repository, dst: pygit2.Repository,
            tips: Iterable[pygit2.Oid]) -> list[pygit2.Oid]:
    """Objects reachable from `tips` in `src` that `dst` lacks, children first.

    The walk does not enter an object `dst` has (see the invariant above), and
    reads no blob: its type comes from the tree entry that names it."""
    order: list[pygit2.Oid] = []
    seen: set[pygit2.Oid] = set()
    # (id, known to be a blob, children already pushed)
    stack: list[tuple[pygit2.Oid, bool, bool]] = [(t, False, False) for t in tips]
    has = dst.odb.exists
    while stack:
        oid, blob, expanded = stack.pop()
        if expanded:
            order.append(oid)
            continue
        if oid in seen:
            continue
        seen.add(oid)
        if has(oid):
            continue
        if blob:
            order.append(oid)
            continue
        try:
            obj = src[oid]
        except (KeyError, ValueError, pygit2.GitError):
            continue  # the edge of a shallow source: git would not send it either
        stack.append((oid, False, True))
        stack.extend((child, is_blob, False) for child, is_blob in _children(obj)
                     if child not in seen)
    return order


def _children(obj: pygit2.Object) -> Iterable[tuple[pygit2.Oid, bool]]:
    if isinstance(obj, pygit2.Commit):
        yield obj.tree_id, False
        for parent in obj.parent_ids:
            yield parent, False
    elif isinstance(obj, pygit2.Tree):
        for entry in obj:
            if entry.filemode == FileMode.COMMIT:
                continue  # a submodule's commit lives in its own repository
            yield entry.id, entry.type == ObjectType.BLOB
    elif isinstance(obj, pygit2.Tag):
        yield obj.target, False


def copy(src: pygit2.Repository, dst: pygit2.Repository, oids: Sequence[pygit2.Oid],
         pack_dir: Path | None) -> Transfer:
    """Write `oids` (children first) from `src` into `dst`: loose when few or when
    `pack_dir` is None, else one pack written into `pack_dir`."""
    size = sum(int(src.odb.read_header(oid)[1]) for oid in oids)
    if pack_dir is None or len(oids) < LOOSE_LIMIT:
        for oid in oids:
            kind, data = src.odb.read(oid)
            dst.odb.write(kind, data)
    else:
        builder = pygit2.PackBuilder(src)
        for oid in oids:
            builder.add(oid)
        builder.write(str(pack_dir))
    return Transfer(objects=len(oids), bytes=size)


def fetch(src: pygit2.Repository, dst: pygit2.Repository, pack_dir: Path,
          specs: Sequence[str]) -> tuple[Transfer, Advertised]:
    """Bring `dst` up to date with `src` through `specs`; refs last."""
    advertised = advertise(src)
    wanted = updates(advertised, specs)
    moved = [u for u in wanted if _current(dst, u.name) != u.target]
    done = copy(src, dst, missing(src, dst, {u.target for u in moved}), pack_dir)
    for update in moved:
        old = _current(dst, update.name)
        if not update.force and old is not None and not _descends(dst, update.target, old):
            continue  # git: "rejected (non-fast-forward)"; the ref stays
        if (update.name.startswith("refs/notes/") and old is not None
                and _descends(dst, old, update.target)):
            continue  # statuses written here since the last push are not undone
        dst.references.create(update.name, update.target, force=True)
    return done, advertised


def push_ref(src: pygit2.Repository, dst: pygit2.Repository, src_ref: str, dst_ref: str,
             where: str) -> Transfer:
    """Write `src_ref` of `src` and what it needs into `dst` as `dst_ref`,
    fast-forward only."""
    new = _current(src, src_ref)
    if new is None:
        raise SourceError(f"cannot push {src_ref} to {where}: no such ref here")
    old = _current(dst, dst_ref)
    if old == new:
        return Transfer(objects=0, bytes=0)
    # Loose objects only: a pack's place in a linked worktree's repository is
    # the common directory, which the odb knows and a path would have to guess.
    done = copy(src, dst, missing(src, dst, [new]), None)
    if old is not None and not _descends(dst, new, old):
        raise SourceError(f"push to {where} rejected: {dst_ref}: non-fast-forward "
                          "(the ref there moved; fetch it first)")
    dst.references.create(dst_ref, new, force=True)
    return done


def _current(repo: pygit2.Repository, name: str) -> pygit2.Oid | None:
    try:
        target = repo.references[name].resolve().target
    except (KeyError, ValueError, pygit2.GitError):
        return None
    return target if isinstance(target, pygit2.Oid) else None


def _descends(repo: pygit2.Repository, new: pygit2.Oid, old: pygit2.Oid) -> bool:
    try:
        return bool(repo.descendant_of(new, old))
    except (KeyError, ValueError, pygit2.GitError):
        return False


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
