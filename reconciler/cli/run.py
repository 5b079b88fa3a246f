"""`reconciler run [--config FILE]`: the daemon, until SIGTERM or SIGINT.

Flags override the file, so the README demo needs no file at all:
`reconciler run --repo ./state --target laptop --poll-interval 5s`.

Exit codes: 0 after a clean stop; 2 when the configuration (file or flags) is
invalid, with one line `file:line: message` on stderr; 1 when the daemon cannot
start (unreadable config file, unusable data directory, `listen` address in
use), one line too. An unreachable repository is not fatal: the daemon logs it
and fetches again at the next trigger.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.cli import common

HELP = "run the daemon: watch the branch, deploy new commits, report statuses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="daemon configuration file (YAML)")
    parser.add_argument("--repo", default=None,
                        help="repository URL (file://, ssh://, https://) or local path")
    parser.add_argument("--branch", default=None, help="branch to deploy (default: main)")
    parser.add_argument("--path", default=None, help="state root inside the repository")
    parser.add_argument("--data-dir", default=None,
                        help="where mirrors and history live (default: $RECONCILER_DATA_DIR)")
    parser.add_argument("--target", action="append", default=None, dest="targets",
                        metavar="NAME", help="sync only this target (repeatable)")
    parser.add_argument("--listen", default=None,
                        help="host:port for the status page, API and webhooks, or 'off'")
    parser.add_argument("--poll-interval", default=None, help="e.g. 30s, 5m")
    parser.add_argument("--drift-interval", default=None, help="e.g. 5m; 0 disables")
    parser.add_argument("--self-heal", action="store_true", default=None,
                        help="correct drift found by the drift check")
    parser.add_argument("--log-format", choices=("auto", "json", "text", "plain"), default=None,
                        help="auto (the default): text lines on a terminal, JSON lines "
                             "otherwise; json or text force one")
    common.add_verify_arguments(parser)


def main(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    from reconciler.daemon import service
    from reconciler.daemon.config import DaemonConfig, parse_config, with_overrides
    from reconciler.errors import ConfigError, ReconcilerError

    overrides = {key: getattr(args, key) for key in (
        "repo", "branch", "path", "data_dir", "targets", "listen", "poll_interval",
        "drift_interval", "self_heal", "log_format")}
    try:
        if args.config is not None:
            try:
                text = args.config.read_text()
            except OSError as exc:
                print(f"reconciler run: {args.config}: {exc.strerror}", file=sys.stderr)
                return 1
            config = parse_config(text, source=str(args.config),
                                  base_dir=args.config.parent.absolute())
        elif args.repo is None:
            print("reconciler run: give --config FILE or --repo URL", file=sys.stderr)
            return 2
        else:
            config = DaemonConfig(repo=args.repo, source="command line")
        config = with_overrides(config, overrides)
        policy = common.verify_policy(args)
        if policy is not None:
            config = dataclasses.replace(config, verify=policy)
    except ConfigError as error:
        print(f"reconciler run: {error}", file=sys.stderr)
        return 2
    try:
        return service.run(config, common.data_dir(config.data_dir))
    except ConfigError as error:
        print(f"reconciler run: {error}", file=sys.stderr)
        return 2
    except ReconcilerError as error:
        print(f"reconciler run: {error}", file=sys.stderr)
        return 1
