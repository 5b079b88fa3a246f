"""`reconciler sync --repo URL [--rev REV] [--path P] [--target NAME ...]`: one pass.

Exit codes (DESIGN.md): 0 synced and healthy, 1 failed or any other error (one
line on stderr), 2 the state repository is invalid (`file:line: message` on
stderr, one per line; nothing applied). Progress goes to stdout: live on a
terminal, plain lines otherwise. Only argparse and the standard library are
imported before the command runs.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.cli import common

HELP = "one reconcile pass: apply a revision wave by wave with health gates, then exit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_source_arguments(parser, repo_required=True)
    common.add_target_argument(parser, "only read and change this target "
                                       "(repeatable; default: all)")


def main(args: argparse.Namespace) -> int:
    return common.run_guarded("sync", _sync, args)


def _sync(args: argparse.Namespace) -> int:
    from reconciler.engine import Engine
    from reconciler.errors import ValidationError
    from reconciler.progress import Progress

    settings = common.engine_settings(args)
    progress = Progress(sys.stdout)
    engine = Engine(settings)
    engine.subscribe(progress)
    try:
        result = engine.sync(trigger="cli")
    finally:
        progress.close()
        engine.close()
    if result.result == "error":
        common.print_problems(ValidationError(result.problems), common.path_prefix(args.path))
        return 2
    if result.result != "success":
        rolled = (" (rollback failed)" if result.rollback_failed
                  else " (rolled back)" if result.rolled_back else "")
        print(f"reconciler sync: failed{rolled}: {result.message}", file=sys.stderr)
        return 1
    print(f"synced {result.revision[:12]}: {result.message} (deploy #{result.deploy_id})")
    return 0
