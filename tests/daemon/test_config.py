"""The daemon configuration: defaults, strictness with file:line, flag overrides, exit 2."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.cli import run as run_cli
from reconciler.daemon import service
from reconciler.daemon.config import (
    DaemonConfig,
    missing_secrets,
    parse_config,
    parse_duration,
    with_overrides,
)
from reconciler.errors import ConfigError

FULL = """\
repo: https://git.example.com/platform/state.git
branch: release
path: deploy
data_dir: data
listen: 127.0.0.1:9090
public_url: https://deploy.example.com/
poll_interval: 45s
drift_interval: 10m
self_heal: true
credentials: {token_file: secrets/token, known_hosts: /secrets/known_hosts}
reporters:
  - {type: gitnotes, push: true}
  - {type: github, api_url: https://api.github.com, repo: org/state, token_env: GH_TOKEN}
webhooks: {github_secret_env: WEBHOOK_SECRET}
pull_requests: {refspecs: ["refs/pull/*/head"]}
targets: [laptop]
"""


def test_only_repo_is_required_and_everything_else_has_a_default() -> None:
    config = parse_config("repo: https://example.com/state.git\n")
    assert config == DaemonConfig(repo="https://example.com/state.git",
                                  source="reconciler-daemon.yaml")
    assert config.poll_interval == 30 and config.drift_interval == 300
    assert [r.type for r in config.reporters] == ["gitnotes"]
    assert config.targets is None and config.listen == "127.0.0.1:8080"


def test_the_design_example_parses_with_paths_relative_to_the_file() -> None:
    config = parse_config(FULL, source="/etc/reconciler/daemon.yaml",
                          base_dir=Path("/etc/reconciler"))
    assert config.branch == "release" and config.path == "deploy"
    assert config.data_dir == Path("/etc/reconciler/data")
    assert config.credentials.token_file == Path("/etc/reconciler/secrets/token")
    assert config.public_url == "https://deploy.example.com"
    assert (config.poll_interval, config.drift_interval, config.self_heal) == (45, 600, True)
    assert config.reporters[0].options == {"push": True}
    assert config.reporters[1].options["token_env"] == "GH_TOKEN"
    assert config.targets == ("laptop",)
    assert missing_secrets(config, {"GH_TOKEN": "x"}) == [
        "/etc/reconciler/daemon.yaml: environment variable WEBHOOK_SECRET is not set"]


@pytest.mark.parametrize(("text", "message"), [
    ("repo: x\npol_interval: 5s\n",
     "cfg.yaml:2: unknown key 'pol_interval' (did you mean 'poll_interval'?)"),
    ("repo: x\ncredentials:\n  token_fil: /t\n",
     "cfg.yaml:3: unknown key 'token_fil' (did you mean 'token_file'?)"),
    ("repo: x\npoll_interval: soon\n",
     "cfg.yaml:2: expected a duration like 30s, 5m, 1h30m or a number of seconds, got 'soon'"),
    ("repo: x\nreporters:\n  - {type: gitnote}\n",
     "cfg.yaml:3: unknown reporter type 'gitnote' (did you mean 'gitnotes'?)"),
    ("repo: x\nreporters:\n  - {type: gitnotes, pushh: true}\n",
     "cfg.yaml:3: unknown key 'pushh' (did you mean 'push'?)"),
    ("repo: x\nlisten: 8080\n", "cfg.yaml:2: expected host:port"),
    ("repo: x\nself_heal: yes please\n", "cfg.yaml:2: self_heal must be true or false"),
    ("repo: x\ntargets: laptop\n", "cfg.yaml:2: targets must be a list of strings"),
    ("branch: main\n", "cfg.yaml: repo is required"),
    ("repo: [unclosed\n", "cfg.yaml:2:"),
])
def test_errors_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cfg.yaml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_durations() -> None:
    assert [parse_duration(v, "x") for v in ("250ms", "30s", "5m", "1h", 2, "1.5s")] == [
        0.25, 30, 300, 3600, 2, 1.5]
    with pytest.raises(ConfigError, match="x: a duration cannot be negative"):
        parse_duration(-1, "x")


def test_flags_override_the_file() -> None:
    config = with_overrides(parse_config("repo: https://e.com/s.git\n"), {
        "poll_interval": "1s", "listen": "off", "targets": ["laptop"], "branch": None})
    assert (config.poll_interval, config.listen, config.targets, config.branch) == (
        1.0, None, ("laptop",), "main")
    with pytest.raises(ConfigError, match="--poll-interval: expected a duration"):
        with_overrides(config, {"poll_interval": "often"})


def test_reconciler_run_exits_2_with_one_line_on_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text("repo: x\ndrift_intervall: 5m\n")
    parser = argparse.ArgumentParser()
    run_cli.add_arguments(parser)
    assert run_cli.main(parser.parse_args(["--config", str(path)])) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"reconciler run: {path}:2: unknown key 'drift_intervall' "
                   "(did you mean 'drift_interval'?)")
    assert run_cli.main(parser.parse_args(["--config", str(tmp_path / "missing.yaml")])) == 1


@pytest.mark.parametrize(("entry", "message"), [
    ("{type: github, repo: org/state, token_env: GH_TOKEN, api_ur: https://x}",
     "cfg.yaml:4: reporter github: unknown key(s) api_ur"),
    ("{type: gitlab, repo: g/s, token_env: GH_TOKEN, token_file: /t}", "cfg.yaml:4: "),
])
def test_a_forge_reporter_error_names_the_file_and_line(
    entry: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_TOKEN", "t0k3n")
    config = parse_config(f"repo: x\nreporters:\n  - {{type: gitnotes}}\n  - {entry}\n",
                          source="cfg.yaml")
    with pytest.raises(ConfigError) as caught:
        service.make_reporter(config.reporters[1], None)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert "t0k3n" not in str(caught.value)
