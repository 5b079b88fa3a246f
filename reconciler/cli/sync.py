"""`reconciler sync --repo URL [--rev REV] [--path P] [--target NAME ...]`: one pass.

Exit codes (DESIGN.md): 0 synced and healthy, 1 failed or any other error (one
line on stderr), 2 the state repository is invalid (`file:line: message` on
stderr, one per line; nothing applied). Progress goes to stdout: live on a
terminal, plain lines otherwise. Only argparse and the standard library are
imported before the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reconciler.cli import common

HELP = "one reconcile pass: apply a revision wave by wave with health gates, then exit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_source_arguments(parser, repo_required=True)
    parser.add_argument("--target", action="append", default=[], metavar="NAME",
                        help="only read and change this target (repeatable; default: all)")


def data_dir(value: Path | None) -> Path:
    """The flag, $RECONCILER_DATA_DIR, the per-user default, or ./.reconciler."""
    chosen = common.data_dir(value)
    if value is not None or os.environ.get("RECONCILER_DATA_DIR"):
        return chosen
    try:
        chosen.mkdir(parents=True, exist_ok=True)
        if os.access(chosen, os.W_OK):
            return chosen
    except OSError:
        pass
    return Path(".reconciler")


def main(args: argparse.Namespace) -> int:
    from reconciler.engine import Engine, EngineSettings
    from reconciler.errors import ReconcilerError, ValidationError
    from reconciler.progress import Progress

    settings = EngineSettings(
        repo=args.repo, rev=args.rev or "HEAD", path=args.path,
        data_dir=data_dir(args.data_dir), credentials=common.credentials(args),
        targets=tuple(args.target),
    )
    progress = Progress(sys.stdout)
    try:
        engine = Engine(settings)
        engine.subscribe(progress)
        try:
            result = engine.sync(trigger="cli")
        finally:
            progress.close()
            engine.close()
    except ReconcilerError as error:
        print(f"reconciler sync: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reconciler sync: interrupted", file=sys.stderr)
        return 1
    if result.result == "error":
        common.print_problems(ValidationError(result.problems), common.path_prefix(args.path))
        return 2
    if result.result != "success":
        rolled = " (rolled back)" if result.rolled_back else ""
        print(f"reconciler sync: failed{rolled}: {result.message}", file=sys.stderr)
        return 1
    print(f"synced {result.revision[:12]}: {result.message} (deploy #{result.deploy_id})")
    return 0
