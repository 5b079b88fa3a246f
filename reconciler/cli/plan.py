"""`reconciler plan --repo URL [--rev REV] [--path P] [--json] [--post-status]`.

Shows what a sync of a revision would do against live state now, and changes
nothing on any target (backends are only read). Exit codes (DESIGN.md): 0 the
plan was made (with or without changes), 2 the state repository is invalid
(`file:line: message` on stderr), 1 any other error (one line on stderr).

`--json` prints exactly `plan.to_json()`; otherwise a readable plan, wave by
wave and app by app, with the (redacted) diffs. `--post-status` posts the
`reconciler/plan` commit status for the commit, as the daemon does for pull
requests, so a CI pipeline can run the plan itself: reporters come from flags
(`--reporter github --api-url ... --status-repo org/repo --status-token-env X`)
or from the `reporters:` list of a YAML file (`--status-config`, e.g. the
daemon's configuration). A status that cannot be posted is reported on stderr
and does not change the exit code. Only argparse and the standard library are
imported before the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli import common

if TYPE_CHECKING:
    from reconciler.engine import Engine
    from reconciler.model import Change, Plan
    from reconciler.pulls import PlanResult
    from reconciler.reporters import Reporter

HELP = "show what a sync would do against live state, changing nothing"
_SIGN = {"create": "+", "update": "~", "delete": "-"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_source_arguments(parser, repo_required=True)
    common.add_verify_arguments(parser)
    common.add_target_argument(parser, "only read this target (repeatable; default: all)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    status = parser.add_argument_group("commit status (for CI pipelines)")
    status.add_argument("--post-status", action="store_true",
                        help="post the reconciler/plan status for the commit")
    status.add_argument("--reporter", choices=("github", "gitlab", "gitea"),
                        help="where to post the status")
    status.add_argument("--api-url", help="API base URL (default: the public service)")
    status.add_argument("--status-repo", metavar="OWNER/NAME",
                        help="repository (GitLab: project path or id) that holds the commit")
    status.add_argument("--status-token-env", metavar="VAR",
                        help="environment variable holding the forge token")
    status.add_argument("--status-token-file", metavar="FILE",
                        help="file holding the forge token")
    status.add_argument("--status-config", type=Path, metavar="FILE",
                        help="YAML file whose `reporters:` list says where to post")
    status.add_argument("--public-url", help="status page URL, for the status link")
    status.add_argument("--status-retry-delay", type=float, default=0.5, metavar="SECONDS",
                        help="first retry backoff for status posts; doubles, 5 tries in all")


def main(args: argparse.Namespace) -> int:
    return common.run_guarded("plan", _run, args)


def _run(args: argparse.Namespace) -> int:
    from reconciler.engine import Engine

    engine = Engine(common.engine_settings(args))
    try:
        reporters = _reporters(args, engine) if args.post_status else []
        return _plan(args, engine, reporters)
    finally:
        engine.close()


def _plan(args: argparse.Namespace, engine: Engine, reporters: Sequence[Reporter]) -> int:
    from reconciler import pulls
    from reconciler.reporters import State

    sha = engine.resolve(args.rev)
    result = pulls.evaluate(engine, sha, args.rev or "HEAD", common.path_prefix(args.path))
    if reporters:
        _post(result, reporters, args.public_url)
    if result.state is State.ERROR:
        for line in result.problems:
            print(line, file=sys.stderr)
        print(f"{len(result.problems)} problem(s); nothing was planned", file=sys.stderr)
        return 2
    if result.plan is None:
        print(f"reconciler plan: {result.description}", file=sys.stderr)
        return 1
    if args.json:
        from reconciler.plan import to_json

        print(json.dumps(to_json(result.plan), indent=2))
    else:
        print(render(result.plan), end="")
    # Every other app is planned and shown; the unplannable ones make it a failure.
    return 1 if result.plan.errors() else 0


# --- text output (pure) ----------------------------------------------------------


def render(p: Plan) -> str:
    """The plan as a person reads it: waves, apps, one line per change, its diff."""
    from reconciler.plan import summary_line

    if p.empty:
        return f"plan for {p.revision[:12]}: no changes, live state matches\n"
    lines = [f"plan for {p.revision[:12]}:"]
    for wave in p.waves:
        lines.append(f"wave {wave.wave}")
        for app in wave.apps:
            lines.extend(_app_lines(app.app, app.target, app.changes))
            if app.error:
                lines.append(f"    ! cannot plan: {app.error}")
    if p.prune:
        lines.append("prune (after every wave)")
        for app in p.prune:
            lines.extend(_app_lines(app.app or "(removed app)", app.target, app.changes))
    lines.append(summary_line(p))
    return "\n".join(lines) + "\n"


def _app_lines(app: str, target: str, changes: Sequence[Change]) -> list[str]:
    lines = [f"  app {app} (target {target})"]
    for change in changes:
        where = f" on {change.host}" if change.host else ""
        action = change.action.value
        lines.append(f"    {_SIGN[action]} {action} {change.id}{where}")
        lines.extend(f"        {line}" for line in change.diff.splitlines())
    return lines


# --- commit statuses -------------------------------------------------------------


def _post(result: PlanResult, reporters: Sequence[Reporter], public_url: str | None) -> None:
    from reconciler.reporters import CommitStatus, Context
    from reconciler.reporters.http import ReportStats, SafeReporter

    stats = ReportStats()
    target = f"{public_url.rstrip('/')}/plans/{result.sha}" if public_url else None
    status = CommitStatus.make(sha=result.sha, context=Context.PLAN, state=result.state,
                               description=result.description, target_url=target)
    for reporter in reporters:
        SafeReporter(reporter, reporter.name, stats).report(status)
    failed = stats.snapshot()["failed"]
    for name in sorted(failed):
        print(f"reconciler plan: the {name} status was not posted (see the log)", file=sys.stderr)


def _reporters(args: argparse.Namespace, engine: Engine) -> list[Reporter]:
    from reconciler import reporters
    from reconciler.errors import ConfigError
    from reconciler.reporters.http import Client, RetryPolicy

    entries = _entries(args)
    if not entries:
        raise ConfigError("--post-status needs --reporter or --status-config")
    client = Client(policy=RetryPolicy(base_delay=max(0.0, args.status_retry_delay)))
    return [reporters.build(entry, store=engine.mirror, client=client) for entry in entries]


def _entries(args: argparse.Namespace) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if args.reporter:
        entry: dict[str, Any] = {"type": args.reporter, "repo": args.status_repo}
        for key, value in (("api_url", args.api_url), ("token_env", args.status_token_env),
                           ("token_file", args.status_token_file)):
            if value:
                entry[key] = value
        entries.append(entry)
    if args.status_config is not None:
        entries.extend(_config_entries(args.status_config))
    return entries


def _config_entries(path: Path) -> list[dict[str, Any]]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from reconciler.errors import ConfigError

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as error:
        raise ConfigError(f"{path}: cannot read reporters: {type(error).__name__}") from None
    listed = data.get("reporters") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
        raise ConfigError(f"{path}: expected a `reporters:` list of mappings")
    return [dict(e) for e in listed]
