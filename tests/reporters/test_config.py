"""Reporters built from daemon config entries: tokens from env or file, strict keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.reporters import gitea, github, gitlab


def test_github_from_env() -> None:
    entry = {"type": "github", "repo": "org/state", "token_env": "GH_TOKEN"}
    reporter = github.from_entry(entry, environ={"GH_TOKEN": " tok-1\n"})
    assert reporter.token == "tok-1"
    assert reporter.api_url == "https://api.github.com"
    assert reporter.repo == "org/state"


def test_gitlab_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("glpat-xyz\n")
    entry = {"type": "gitlab", "api_url": "https://gl.example.com/api/v4", "repo": "g/p",
             "token_file": str(secret)}
    reporter = gitlab.from_entry(entry, environ={})
    assert (reporter.token, reporter.project, reporter.api_url) == (
        "glpat-xyz", "g/p", "https://gl.example.com/api/v4")


def test_gitea_needs_api_url() -> None:
    with pytest.raises(ConfigError, match="missing api_url"):
        gitea.from_entry({"type": "gitea", "repo": "o/r", "token_env": "T"}, environ={"T": "x"})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "github", "repo": "o/r", "token": "inline"}, "not in the configuration"),
        ({"type": "github", "repo": "o/r", "token_env": "T", "colour": 1}, "unknown key"),
        ({"type": "github", "repo": "o/r"}, "exactly one of token_env or token_file"),
        ({"type": "github", "repo": "o/r", "token_env": "MISSING"}, "MISSING is empty or unset"),
        ({"type": "github", "repo": "just-a-name", "token_env": "T"}, "owner/name"),
        ({"type": "github", "repo": "o/r", "token_file": "/nonexistent/tok"}, "cannot read"),
    ],
)
def test_bad_entries_are_config_errors(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        github.from_entry(entry, environ={"T": "secret-value"})
    assert "secret-value" not in str(caught.value)
    assert "inline" not in str(caught.value)


def test_build_dispatches_on_type() -> None:
    from reconciler import reporters

    env = {"T": "tok"}
    built = [
        reporters.build({"type": "github", "repo": "o/r", "token_env": "T"}, environ=env),
        reporters.build({"type": "gitlab", "repo": "g/p", "token_env": "T"}, environ=env),
        reporters.build({"type": "forgejo", "api_url": "https://f.example/api/v1",
                         "repo": "o/r", "token_env": "T"}, environ=env),
    ]
    assert [type(r) for r in built] == [github.GitHubReporter, gitlab.GitLabReporter,
                                        gitea.GiteaReporter]
    assert [r.name for r in built] == ["github", "gitlab", "gitea"]


def test_build_accepts_a_daemon_reporter_config() -> None:
    from reconciler import reporters
    from reconciler.daemon.config import ReporterConfig

    entry = ReporterConfig(type="github", options={"repo": "o/r", "token_env": "T"})
    reporter = reporters.build(entry, environ={"T": "tok"})
    assert isinstance(reporter, github.GitHubReporter)


def test_build_refuses_unknown_types() -> None:
    from reconciler import reporters

    with pytest.raises(ConfigError, match="unknown reporter type"):
        reporters.build({"type": "bitbucket"})


def test_daemon_make_reporter_builds_forge_reporters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.daemon.config import ReporterConfig
    from reconciler.daemon.service import make_reporter

    monkeypatch.setenv("GL_TOKEN", "glpat-1")
    entry = ReporterConfig(type="gitlab", options={"repo": "g/p", "token_env": "GL_TOKEN"})
    reporter = make_reporter(entry, engine=None)  # type: ignore[arg-type]
    assert isinstance(reporter, gitlab.GitLabReporter)
    assert reporter.project == "g/p"


@pytest.mark.parametrize("entry, local, lands", [
    ({"type": "gitnotes"}, True, True),  # a repository on this machine: its own notes
    ({"type": "gitnotes"}, False, False),  # a remote: pushing there is asked for
    ({"type": "gitnotes", "push": False}, True, False),  # the entry's word wins
])
def test_the_one_factory_builds_gitnotes_with_the_push_default(
    tmp_path: Path, entry: dict[str, object], local: bool, lands: bool
) -> None:
    from reconciler.reporters import CommitStatus, Context, State, build
    from reconciler.source import Mirror
    from tests.support.gitrepo import git

    repo = tmp_path / "user"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "reconciler.yaml").write_text("apiVersion: reconciler/v1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    sha = git(repo, "rev-parse", "HEAD").strip()
    mirror = Mirror(str(repo), tmp_path / "data")
    mirror.fetch()
    reporter = build(entry, store=mirror, local=local)
    reporter.report(CommitStatus.make(sha=sha, context=Context.DEPLOY, state=State.SUCCESS,
                                      description="deployed"))
    notes = git(repo, "log", "--notes=reconciler", "-1", "--format=%N")
    assert ('"state": "success"' in notes) is lands, notes
