"""A bare mirror of the state repository: fetch, resolve, read, annotate.

The mirror lives under `data_dir/mirrors/<hash of the URL>` and is only ever
changed by this module. Invariants:
- Fetches of one mirror never overlap: a threading lock (per mirror path, per
  process) and an flock on `<mirror>.lock` (between processes) guard every
  change to it (fetch, note writes, pushes).
- The remote is anonymous: its URL, which may carry a secret, is never
  written into the mirror's config.
- Branches and tags deleted on the remote disappear from the mirror after the
  next fetch; notes written here are kept until the remote's copy of the same
  notes ref replaces them (push them first if they must survive).
- `HEAD` follows the remote's default branch.
- A fetch brings only what the mirror lacks: a local remote is copied object
  by object (`local.fetch`), a network one negotiates with the mirror's tips.
  Temporary packs a killed fetch left are removed at the next fetch, under
  the lock (so no fetch is writing them).
- The mirror is this module's to keep: a fetch that finds it deleted or
  unreadable (`damage()`) deletes what is left and clones again, so no
  restart is needed. What only the mirror held (notes never pushed) is lost
  with it; pushed notes come back with the clone.
- Every failure is one `SourceError` line without secrets.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import logging
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pygit2

from reconciler.errors import SourceError
from reconciler.source import auth, local
from reconciler.source.gittree import GitTree, ListingCache, subtree

DEFAULT_REFSPECS = (
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+refs/notes/*:refs/notes/*",
)
NOTES_REF = "refs/notes/reconciler"
_SIGNATURE = ("reconciler", "reconciler@localhost")

log = logging.getLogger("reconciler.source")

_REGISTRY_LOCK = threading.Lock()
_THREAD_LOCKS: dict[Path, threading.Lock] = {}


@dataclass(frozen=True, kw_only=True)
class CommitInfo:
    sha: str
    author_name: str
    author_email: str
    summary: str
    """The first line of the message."""
    message: str
    time: datetime
    """Author time, in the author's time zone."""


def _thread_lock(path: Path) -> threading.Lock:
    with _REGISTRY_LOCK:
        return _THREAD_LOCKS.setdefault(path, threading.Lock())


class Mirror:
    """One remote repository, mirrored bare under `data_dir`."""

    def __init__(self, url: str, data_dir: Path, credentials: auth.Credentials | None = None):
        self.url = auth.normalize_url(url)
        self.data_dir = data_dir
        self.credentials = credentials or auth.Credentials()
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.path = data_dir / "mirrors" / key
        self._lock_file = data_dir / "mirrors" / f"{key}.lock"
        self._repo: pygit2.Repository | None = None
        self._inode: int | None = None
        """The mirror directory's inode when `_repo` was opened: another process
        may have replaced the directory since."""
        self.listings = ListingCache()
        """Subtree listings shared by this mirror's GitTrees: re-listing a commit
        after a small change walks only the trees that changed."""

    @property
    def display_url(self) -> str:
        return auth.redact(self.url)

    # --- changing the mirror -------------------------------------------------

    def fetch(self, refspecs: Sequence[str] | None = ()) -> local.Transfer:
        """Clone on first use, then fetch what changed; extra refspecs add PR heads.

        A repository on this machine is copied object by object (`local`): only
        what the mirror lacks. Others go through libgit2's transports, whose
        negotiation sends the mirror's tips as haves. Temporary packs a killed
        fetch left behind are removed first."""
        # A bare pattern such as "refs/pull/*/head" (the daemon config's spelling)
        # is mirrored to the same name; git would otherwise fetch it and keep nothing.
        full = [s if ":" in s else f"+{s.lstrip('+')}:{s.lstrip('+')}" for s in refspecs or ()]
        extra = [s for s in full if s not in DEFAULT_REFSPECS]
        specs = [*DEFAULT_REFSPECS, *extra]
        with self._locked():
            repo = self._usable()
            remove_temporary_packs(self.path)
            source = local.local_path(self.url)
            if source is not None:
                transfer, advertised = self._fetch_local(source, repo, specs)
                _follow_remote(repo, set(advertised.refs), advertised.head, specs)
                return transfer
            remote = repo.remotes.create_anonymous(self.url)
            with self._network("fetch from") as callbacks:
                stats = remote.fetch(specs, callbacks=callbacks)
                # The advertisement stays readable after the fetch disconnected.
                heads = remote.list_heads(connect=False)
            head = next((h.symref_target for h in heads if h.name == "HEAD"), None)
            _follow_remote(repo, {h.name for h in heads if h.name}, head or None, specs)
            return local.Transfer(objects=int(stats.received_objects),
                                  bytes=int(stats.received_bytes))

    def _fetch_local(self, source: Path, repo: pygit2.Repository,
                     specs: Sequence[str]) -> tuple[local.Transfer, local.Advertised]:
        src = local.open_repository(source, "fetch from")
        try:
            return local.fetch(src, repo, self.path / "objects" / "pack", specs)
        except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
            raise SourceError(f"cannot fetch from {self.display_url}: {_line(exc)}") from None

    def write_note(self, sha: str, text: str, ref: str = NOTES_REF) -> None:
        """Attach `text` to commit `sha` under `ref`, replacing an earlier note."""
        with self._locked():
            repo = self._open()
            signature = pygit2.Signature(*_SIGNATURE)
            try:
                repo.create_note(text, signature, signature, sha, ref, True)
            except (pygit2.GitError, KeyError, ValueError) as exc:
                raise SourceError(f"cannot write note on {sha[:12]}: {_line(exc)}") from None

    def push(self, refspec: str) -> None:
        """Push `refspec` (e.g. "refs/notes/reconciler:refs/notes/reconciler") to the
        remote, fast-forward only. A repository on this machine, bare or not (the
        user's own clone), gets the objects and the ref written into it directly:
        libgit2 cannot push to a non-bare one."""
        src_ref, _, dst_ref = refspec.lstrip("+").partition(":")
        with self._locked():
            repo = self._open()
            target = local.local_path(self.url)
            if target is not None:
                dst = local.open_repository(target, "push to")
                try:
                    local.push_ref(repo, dst, src_ref, dst_ref or src_ref, self.display_url)
                except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
                    raise SourceError(
                        f"cannot push to {self.display_url}: {_line(exc)}") from None
                return
            remote = repo.remotes.create_anonymous(self.url)
            with self._network("push to") as callbacks:
                remote.push([refspec], callbacks=callbacks)
            if callbacks.rejected:
                raise SourceError(
                    f"push to {self.display_url} rejected: {'; '.join(callbacks.rejected)}"
                )

    def push_notes(self, ref: str = NOTES_REF) -> None:
        self.push(f"{ref}:{ref}")

    # --- reading the mirror --------------------------------------------------

    def resolve(self, rev: str) -> str:
        """The full commit id of a branch, tag, full or short sha, or HEAD."""
        repo = self._open()
        try:
            obj = repo.revparse_single(rev)
        except (KeyError, ValueError, pygit2.GitError):
            raise SourceError(f"unknown revision '{rev}'") from None
        try:
            commit = obj.peel(pygit2.Commit)
        except (pygit2.GitError, ValueError):
            raise SourceError(f"revision '{rev}' is not a commit") from None
        return str(commit.id)

    def tree(self, sha: str, path: str = ".") -> GitTree:
        """The state root `path` of commit `sha`, read from git objects."""
        repo = self._open()
        return subtree(repo, sha, self._commit(sha), path, self.listings)

    def commit_info(self, sha: str) -> CommitInfo:
        commit = self._commit(sha)
        author = commit.author
        zone = timezone(timedelta(minutes=author.offset))
        return CommitInfo(
            sha=str(commit.id),
            author_name=author.name,
            author_email=author.email,
            summary=commit.message.strip().split("\n", 1)[0] if commit.message else "",
            message=commit.message,
            time=datetime.fromtimestamp(author.time, zone),
        )

    def refs(self, pattern: str = "refs/*") -> Mapping[str, str]:
        """Ref name -> commit id for every ref matching the glob `pattern`."""
        repo = self._open()
        found: dict[str, str] = {}
        for name in repo.references:
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                found[name] = str(repo.references[name].peel(pygit2.Commit).id)
            except (pygit2.GitError, ValueError, KeyError):
                continue  # a ref to a tree or blob names no revision
        return found

    def read_note(self, sha: str, ref: str = NOTES_REF) -> str | None:
        repo = self._open()
        try:
            note = repo.lookup_note(sha, ref)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        message: str = note.message
        return message

    # --- internals -----------------------------------------------------------

    def _commit(self, sha: str) -> pygit2.Commit:
        repo = self._open()
        try:
            obj = repo[sha]
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            raise SourceError(f"unknown revision '{sha}'") from None
        return commit

    def damage(self, rev: str | None = None) -> str | None:
        """Why the mirror on disk cannot be read, or None when it can.

        It is opened afresh (a deleted or replaced mirror is seen as it is on
        disk, not as this process last opened it), and every branch, or only
        `rev` when given, must name a commit whose tree is there. Without `rev`,
        a mirror that has no branch yet is sound (a first fetch not done, or a
        remote without branches). Cheap: one open and a few object lookups;
        a damaged pack deep in the history is not looked for."""
        if not self.path.exists():
            return "the mirror directory is missing"
        if not (self.path / "HEAD").is_file():
            return "the mirror has no HEAD file"
        try:
            repo = pygit2.Repository(str(self.path))
        except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
            return f"the mirror cannot be opened: {_line(exc)}"
        try:
            names = [rev] if rev else [n for n in repo.references if n.startswith("refs/heads/")]
        except (pygit2.GitError, OSError) as exc:
            return f"the mirror's refs cannot be read: {_line(exc)}"
        for name in names:
            try:
                target = repo.references[name].resolve().target
            except (KeyError, ValueError, pygit2.GitError):
                return f"{name} is not in the mirror"
            try:
                tree = repo[target].peel(pygit2.Commit).tree_id
                whole = repo.odb.exists(tree)
            except (KeyError, ValueError, pygit2.GitError):
                whole = False
            if not whole:
                return f"{name} names {str(target)[:12]}, which is not in the mirror"
        return None

    def _usable(self) -> pygit2.Repository:
        """The mirror to fetch into; one that vanished or is damaged is cloned again.
        Under the lock."""
        if self.path.exists() or self._repo is not None:
            problem = self.damage()
            replaced = problem is None and self._inode != _inode(self.path)
            if problem is not None:
                log.warning("mirror %s is unusable (%s): cloning it again from %s",
                            self.path, problem, self.display_url)
                shutil.rmtree(self.path, ignore_errors=True)
            if problem is not None or replaced:
                self._repo = None
        return self._open(create=True)

    def _open(self, *, create: bool = False) -> pygit2.Repository:
        if self._repo is not None:
            return self._repo
        if (self.path / "HEAD").exists():
            try:
                self._repo = pygit2.Repository(str(self.path))
            except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
                raise SourceError(
                    f"the mirror of {self.display_url} cannot be opened: {_line(exc)}"
                ) from None
        elif create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repo = pygit2.init_repository(str(self.path), bare=True)
        else:
            raise SourceError(f"{self.display_url} has not been fetched yet")
        self._inode = _inode(self.path)
        return self._repo

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(self.path), open(self._lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _network(self, what: str) -> Iterator[auth.Callbacks]:
        """Run one network call with credentials, host checks and one-line errors."""
        ssh = auth.is_ssh(self.url)
        # Only a protocol that can send a token needs one: a missing token
        # variable must not break an ssh or local mirror.
        token = self.credentials.token() if self.url.startswith(("http://", "https://")) else None
        if ssh:
            auth.check_ssh_key(self.credentials)
        secrets = (*(t for t in (token,) if t), *auth.url_secrets(self.url))
        callbacks = auth.Callbacks(self.credentials, token)
        where = self.display_url
        home = auth.ssh_home(self.data_dir, self.credentials) if ssh else _nothing()
        try:
            with home:
                yield callbacks
        except auth.AuthRefused:
            raise SourceError(f"authentication failed for {where}") from None
        except pygit2.CertificateError as exc:
            raise SourceError(
                f"cannot verify the identity of {where}: {auth.scrub(str(exc), secrets)}"
            ) from None
        except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
            message = auth.scrub(_line(exc), secrets)
            if _is_auth_failure(message):
                raise SourceError(f"authentication failed for {where}") from None
            raise SourceError(f"cannot {what} {where}: {message}") from None


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_auth_failure(message: str) -> bool:
    lowered = message.lower()
    return any(s in lowered for s in ("authenticat", "401", "403", "unauthorized"))


def _follow_remote(
    repo: pygit2.Repository, advertised: set[str], head: str | None, specs: Sequence[str]
) -> None:
    """Point HEAD at the remote's default branch (`head`, the branch its HEAD
    names) and drop refs the remote deleted (no longer `advertised`)."""
    if head and head in repo.references:
        repo.references.create("HEAD", head, force=True)
    for spec in specs:
        src, _, dst = spec.lstrip("+").partition(":")
        if dst.startswith("refs/notes/") or dst.count("*") != 1 or src.count("*") != 1:
            continue  # notes written here live on; odd refspecs are left alone
        for name in list(repo.references):
            if fnmatch.fnmatchcase(name, dst) and _source_of(name, src, dst) not in advertised:
                repo.references.delete(name)


TEMPORARY_PACKS = ("pack_git2_*", "tmp_pack_*", "tmp_idx_*", "tmp_rev_*")
"""What libgit2's indexer and git's index-pack write before a pack is complete."""


def remove_temporary_packs(path: Path) -> list[str]:
    """Delete the half-written packs a killed fetch left in the mirror at `path`.

    Called under the mirror's lock, when no fetch of any process runs: every
    such file is a leftover. Returns the names removed."""
    pack_dir = path / "objects" / "pack"
    removed: list[str] = []
    try:
        names = [p for p in pack_dir.iterdir()
                 if any(fnmatch.fnmatchcase(p.name, pattern) for pattern in TEMPORARY_PACKS)]
    except OSError:
        return removed
    for leftover in names:
        try:
            leftover.unlink()
            removed.append(leftover.name)
        except OSError:
            continue
    return removed


def _source_of(local: str, src: str, dst: str) -> str:
    head, tail = dst.split("*")
    middle = local[len(head):len(local) - len(tail)]
    return src.replace("*", middle)
