"""Triggers: what tells the daemon that the branch may have moved.

- `Timers` runs the periodic poll and the drift check on APScheduler's
  BackgroundScheduler (IntervalTrigger). A timer that fires while the previous
  one has not been handled is merged by the work queue, never stacked.
- `RefWatcher` watches the ref files of a local repository (a path or a
  file:// URL) with watchfiles, so a new commit is seen within tens of
  milliseconds instead of at the next poll. Git writes a ref as `<ref>.lock`
  and renames it into place, and `git gc` moves refs into `packed-refs`, so
  the watch is on directories (the git dir and the branch's folder under
  refs/heads), filtered to the names that matter.
- `PatternWatcher` does the same for pull-request heads of a local repository
  (`refs/heads/pr/*`, `refs/pull/*/head`): a recursive watch of the folder the
  pattern lives in, filtered by the pattern, so a new head is planned at once.

Triggers only call a callback that queues a request; they never fetch or
deploy themselves, so a burst of events costs nothing but a queue update.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.daemon.logging import fields

log = logging.getLogger(__name__)


class Timers:
    """The poll and drift timers. Callbacks run on APScheduler's worker thread."""

    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def every(self, seconds: float, name: str, callback: Callable[[], None]) -> None:
        if seconds <= 0:
            return
        self._scheduler.add_job(
            callback, IntervalTrigger(seconds=seconds), id=name, name=name,
            coalesce=True, max_instances=1, misfire_grace_time=None,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def local_git_dir(repo: str) -> Path | None:
    """The git directory behind a local path or file:// URL; None for remote URLs."""
    if "://" in repo:
        parts = urlsplit(repo)
        if parts.scheme != "file":
            return None
        path = Path(unquote(parts.path))
    else:
        path = Path(repo).expanduser()
    dotgit = path / ".git"
    if dotgit.is_dir():
        return dotgit
    if dotgit.is_file():  # a linked worktree or submodule: "gitdir: <path>"
        text = dotgit.read_text().strip()
        if text.startswith("gitdir:"):
            found = Path(text.split(":", 1)[1].strip())
            return found if found.is_absolute() else (path / found).resolve()
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path  # a bare repository
    return None


def watched_names(git_dir: Path, branch: str) -> frozenset[str]:
    """The files whose change may move `branch`."""
    return frozenset({
        str(git_dir / "refs" / "heads" / branch),
        str(git_dir / "packed-refs"),
        str(git_dir / "HEAD"),
    })


class _Watch:
    """A thread that calls `on_change` when a file that `relevant` accepts changes."""

    def __init__(self, git_dir: Path, on_change: Callable[[], None], name: str) -> None:
        self.git_dir = git_dir
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _paths(self) -> tuple[list[Path], bool]:
        """The directories to watch and whether recursively."""
        raise NotImplementedError

    def _relevant(self, _change: object, path: str) -> bool:
        raise NotImplementedError

    def _run(self) -> None:
        import watchfiles  # imported here: only daemons with a local repo need it

        try:
            paths, recursive = self._paths()
            log.info("watching refs", extra=fields(
                git_dir=str(self.git_dir), paths=[str(p) for p in paths]))
            for _changes in watchfiles.watch(
                *paths, watch_filter=self._relevant, debounce=300, step=20,
                stop_event=self._stop, recursive=recursive, raise_interrupt=False,
                rust_timeout=1000, yield_on_timeout=False,
            ):
                self._on_change()
        except Exception:
            # Losing the watch is not fatal: the poll still finds new commits.
            log.exception("file watch stopped; polling continues",
                          extra=fields(git_dir=str(self.git_dir)))


class RefWatcher(_Watch):
    """Calls `on_change` when the tracked branch's ref file may have changed."""

    def __init__(self, git_dir: Path, branch: str, on_change: Callable[[], None]) -> None:
        super().__init__(git_dir, on_change, "ref-watch")
        self.branch = branch
        self._names = watched_names(git_dir, branch)

    def _paths(self) -> tuple[list[Path], bool]:
        branch_dir = (self.git_dir / "refs" / "heads" / self.branch).parent
        branch_dir.mkdir(parents=True, exist_ok=True)
        return [self.git_dir, branch_dir], False

    def _relevant(self, _change: object, path: str) -> bool:
        # The lock file's rename lands on the ref's own name; packed-refs too.
        return path in self._names or path.removesuffix(".lock") in self._names


def watch_root(git_dir: Path, pattern: str) -> Path:
    """The deepest existing folder holding every ref that `pattern` matches.

    Never above `refs/`: a recursive watch of the whole git dir would follow
    every object write. Not created when missing (unlike the branch's folder,
    a folder such as refs/heads/pr would be in the way of a branch named pr).
    """
    fixed = pattern.split("*", 1)[0].rsplit("/", 1)[0]
    folder = git_dir / fixed
    refs = git_dir / "refs"
    while folder != refs and refs in folder.parents and not folder.is_dir():
        folder = folder.parent
    return folder if refs in folder.parents else refs


class PatternWatcher(_Watch):
    """Calls `on_change` when a ref matching one of `patterns` (remote ref globs such
    as refs/heads/pr/*) is written in a local repository: pull-request heads to plan.

    Refs packed by `git pack-refs` are only seen by the poll."""

    def __init__(self, git_dir: Path, patterns: Sequence[str],
                 on_change: Callable[[], None]) -> None:
        super().__init__(git_dir, on_change, "pull-request-watch")
        self.patterns = tuple(patterns)

    def _paths(self) -> tuple[list[Path], bool]:
        roots = {watch_root(self.git_dir, p) for p in self.patterns}
        # A root inside another root is already covered by the recursive watch.
        kept = [r for r in roots if not any(o in r.parents for o in roots)]
        return sorted(kept), True

    def _relevant(self, _change: object, path: str) -> bool:
        try:
            name = Path(path.removesuffix(".lock")).relative_to(self.git_dir).as_posix()
        except ValueError:
            return False
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)
