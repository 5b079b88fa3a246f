"""Arguments and helpers shared by the commands that read a state repository.

Only argparse and the standard library at import time: the CLI must start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.engine import EngineSettings
    from reconciler.errors import ValidationError
    from reconciler.source import Credentials
    from reconciler.source.verify import VerifyPolicy


def add_source_arguments(parser: argparse.ArgumentParser, *, repo_required: bool) -> None:
    parser.add_argument("--repo", required=repo_required,
                        help="repository URL (file://, ssh://, https://) or local path")
    parser.add_argument("--rev", default=None, help="branch, tag or commit (default: HEAD)")
    parser.add_argument("--path", default=".", help="state root inside the repository")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where mirrors and history live (default: $RECONCILER_DATA_DIR)")
    parser.add_argument("--ssh-key", default=None, help="private key for ssh:// repositories")
    parser.add_argument("--known-hosts", default=None, help="known_hosts for ssh:// repositories")
    parser.add_argument("--token-file", default=None, help="file holding an https token")
    parser.add_argument("--token-env", default=None, help="environment variable with a token")


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verify-signatures", choices=("ssh", "gpg"), default=None,
                        help="apply only commits signed by a trusted key (ssh or gpg)")
    parser.add_argument("--allowed-signers", type=Path, default=None, metavar="FILE",
                        help="ssh: the allowed signers file (git's gpg.ssh.allowedSignersFile)")
    parser.add_argument("--keyring", type=Path, default=None, metavar="FILE",
                        help="gpg: the public keys that may sign (gpg --export)")


def verify_policy(args: argparse.Namespace) -> VerifyPolicy | None:
    """The signature policy of the flags; None without --verify-signatures."""
    from reconciler.source.verify import make_policy

    scheme = getattr(args, "verify_signatures", None)
    signers, keyring = getattr(args, "allowed_signers", None), getattr(args, "keyring", None)
    if scheme is None:
        if signers is not None or keyring is not None:
            from reconciler.errors import ConfigError

            raise ConfigError("--allowed-signers and --keyring need --verify-signatures")
        return None
    return make_policy(scheme, signers and signers.absolute(), keyring and keyring.absolute(),
                       "--verify-signatures")


def add_target_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--target", action="append", default=[], metavar="NAME", help=help)


def data_dir(value: Path | None) -> Path:
    """The data directory: the flag, $RECONCILER_DATA_DIR, or a per-user default."""
    if value is not None:
        return value
    env = os.environ.get("RECONCILER_DATA_DIR")
    if env:
        return Path(env)
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return home / "reconciler"


def engine_data_dir(value: Path | None) -> Path:
    """The flag, $RECONCILER_DATA_DIR, the per-user default, or ./.reconciler when the
    per-user default cannot be written (a CI runner without a home, say)."""
    chosen = data_dir(value)
    if value is not None or os.environ.get("RECONCILER_DATA_DIR"):
        return chosen
    try:
        chosen.mkdir(parents=True, exist_ok=True)
        if os.access(chosen, os.W_OK):
            return chosen
    except OSError:
        pass
    return Path(".reconciler")


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The engine settings of `plan` and `sync`: source arguments and `--target`."""
    from reconciler.engine import EngineSettings

    return EngineSettings(
        repo=args.repo, rev=args.rev or "HEAD", path=args.path,
        data_dir=engine_data_dir(args.data_dir), credentials=credentials(args),
        targets=tuple(args.target), verify=verify_policy(args),
    )


def run_guarded(command: str, body: Callable[[argparse.Namespace], int],
                args: argparse.Namespace) -> int:
    """`body(args)`; a ReconcilerError or Ctrl-C becomes one line on stderr and exit code 1."""
    from reconciler.errors import ReconcilerError

    try:
        return body(args)
    except ReconcilerError as error:
        print(f"reconciler {command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"reconciler {command}: interrupted", file=sys.stderr)
        return 1


def credentials(args: argparse.Namespace) -> Credentials | None:
    from reconciler.source import Credentials

    if not (args.ssh_key or args.known_hosts or args.token_file or args.token_env):
        return None
    return Credentials(ssh_key=args.ssh_key, known_hosts=args.known_hosts,
                       token_file=args.token_file, token_env=args.token_env)


def print_problems(error: ValidationError, prefix: str = "") -> None:
    """`file:line: message`, one per line on stderr, paths relative to the repo."""
    for problem in error.problems:
        print(f"{prefix}{problem}", file=sys.stderr)
    print(f"{len(error.problems)} problem(s); nothing was applied", file=sys.stderr)


def path_prefix(path: str) -> str:
    clean = path.strip("/")
    return "" if clean in ("", ".") else clean + "/"
