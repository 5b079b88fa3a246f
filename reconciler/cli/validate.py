"""`reconciler validate [DIR] [--repo URL --rev REV] [--path P]`: 0 valid, 2 invalid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.cli import common

HELP = "validate a state repository (a directory, or a commit of a repository)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, help="state repository directory")
    common.add_source_arguments(parser, repo_required=False)


def main(args: argparse.Namespace) -> int:
    from reconciler.errors import ReconcilerError, ValidationError
    from reconciler.render import load_rendered
    from reconciler.tree import DirectoryTree, StateTree

    if (args.dir is None) == (args.repo is None):
        print("reconciler validate: give a directory or --repo, not both", file=sys.stderr)
        return 1
    prefix = common.path_prefix(args.path)
    try:
        tree: StateTree
        if args.dir is not None:
            root = args.dir / args.path
            if not root.is_dir():
                print(f"reconciler validate: {root}: not a directory", file=sys.stderr)
                return 1
            tree = DirectoryTree(root)
            prefix = ""
        else:
            from reconciler.source import Mirror

            mirror = Mirror(args.repo, common.data_dir(args.data_dir), common.credentials(args))
            mirror.fetch()
            tree = mirror.tree(mirror.resolve(args.rev or "HEAD"), args.path)
        state = load_rendered(tree)
    except ValidationError as error:
        common.print_problems(error, prefix)
        return 2
    except ReconcilerError as error:
        print(f"reconciler validate: {error}", file=sys.stderr)
        return 1
    resources = sum(len(app.resources) for app in state.apps.values())
    print(f"valid: {len(state.targets)} targets, {len(state.apps)} apps, {resources} resources")
    return 0
