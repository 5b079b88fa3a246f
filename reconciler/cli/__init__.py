"""The `reconciler` command: argument parsing and exit codes, nothing else.

Exit codes follow DESIGN.md: 0 success, 1 failure or other error, 2 invalid
state repository. Each subcommand lives in its own module and is imported only
when chosen, so `reconciler validate` never pays for the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "validate": "reconciler.cli.validate",
    "plan": "reconciler.cli.plan",
    "sync": "reconciler.cli.sync",
    "run": "reconciler.cli.run",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv)[:1] == ["run"]:
        # Before the subcommands' imports, which take most of a second: a
        # SIGTERM in that time must stop the daemon cleanly, not kill it.
        from reconciler.daemon import signals

        signals.install()
    args = build_parser().parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    code: int = module.main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
