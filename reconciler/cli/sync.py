"""`reconciler sync --repo URL [--rev REV] [--path P] [--target NAME ...]`: one pass.

Exit codes (DESIGN.md): 0 synced and healthy, 1 failed or any other error (one
line on stderr), 2 the state repository is invalid (`file:line: message` on
stderr, one per line; nothing applied). Progress goes to stdout: live on a
terminal, plain lines otherwise. Only argparse and the standard library are
imported before the command runs.

SIGTERM stops the sync cleanly (`Engine.request_stop`): the batch in flight
finishes its writes, nothing new starts, the deploy is recorded `interrupted`
and the command exits 1 with one line; the next sync resumes from live state.
A second SIGTERM ends the process at once, as SIGKILL would (just as safe).
Ctrl-C (SIGINT) interrupts at once, as before.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reconciler.cli import common

if TYPE_CHECKING:
    from reconciler.engine import Engine

HELP = "one reconcile pass: apply a revision wave by wave with health gates, then exit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_source_arguments(parser, repo_required=True)
    common.add_verify_arguments(parser)
    common.add_target_argument(parser, "only read and change this target "
                                       "(repeatable; default: all)")


def main(args: argparse.Namespace) -> int:
    return common.run_guarded("sync", _sync, args)


def _sync(args: argparse.Namespace) -> int:
    from reconciler.engine import Engine
    from reconciler.errors import ValidationError
    from reconciler.outcomes import DeployResult
    from reconciler.progress import Progress

    settings = common.engine_settings(args)
    progress = Progress(sys.stdout)
    engine = Engine(settings)
    engine.subscribe(progress)
    try:
        with _stop_on_sigterm(engine):
            result = engine.sync(trigger="cli")
    finally:
        progress.close()
        engine.close()
    if result.result is DeployResult.ERROR:
        common.print_problems(ValidationError(result.problems), common.path_prefix(args.path))
        return 2
    if result.result is DeployResult.INTERRUPTED:
        print(f"reconciler sync: {result.message}; the next sync resumes from live state",
              file=sys.stderr)
        return 1
    if result.result is not DeployResult.SUCCESS:
        rolled = (" (rollback failed)" if result.rollback_failed
                  else " (rolled back)" if result.rolled_back else "")
        print(f"reconciler sync: failed{rolled}: {result.message}", file=sys.stderr)
        return 1
    print(f"synced {result.revision[:12]}: {result.message} (deploy #{result.deploy_id})")
    return 0


@contextmanager
def _stop_on_sigterm(engine: Engine) -> Iterator[None]:
    """During the sync, the first SIGTERM asks the engine to stop after its batch in flight."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (in-process callers)
        return

    def handle(_signum: int, _frame: object) -> None:
        # The next SIGTERM gets the default action: whoever sends it twice wants out now.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # On another thread: the handler runs on the main thread, which may hold
        # a lock request_stop() needs.
        threading.Thread(target=engine.request_stop, name="reconciler-sigterm").start()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
