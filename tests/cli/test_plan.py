"""`reconciler plan` through the real dispatcher, on a real git repo and a local VM target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import plan as planner
from reconciler.cli import main
from reconciler.engine import Engine, EngineSettings
from tests.pulls import staterepo
from tests.pulls.staterepo import LocalStateRepo, file_doc
from tests.support.httpservers import Forge

PROD = "  prod: {backend: kubernetes, kubeconfig: /nonexistent/kubeconfig, context: prod}\n"


@pytest.fixture
def repo(tmp_path: Path) -> LocalStateRepo:
    """Deployed at main; branch `feature` changes a, adds c, drops b."""
    repo = staterepo.create(tmp_path)
    engine = Engine(EngineSettings(repo=str(repo.path), rev="main", data_dir=tmp_path / "data"))
    try:
        assert engine.sync("main").result == "success"
    finally:
        engine.close()
    repo.branch("feature")
    repo.write("apps/web/files.yaml", file_doc("/etc/web/a.conf", "a=2") + "---\n"
               + file_doc("/etc/web/c.conf", "c=1"))
    repo.commit("web: a=2, c instead of b")
    return repo


def plan(repo: LocalStateRepo, tmp_path: Path, *extra: str) -> int:
    return main(["plan", "--repo", str(repo.path), "--data-dir", str(tmp_path / "data"), *extra])


def test_text_plan_shows_waves_apps_changes_and_diffs(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo.snapshot()
    assert plan(repo, tmp_path, "--rev", "feature") == 0
    out = capsys.readouterr().out
    assert "wave 1\n  app web (target laptop)\n" in out
    assert "    ~ update File:/etc/web/a.conf on localhost\n" in out
    assert "    + create File:/etc/web/c.conf on localhost\n" in out
    assert "prune (after every wave)\n" in out
    assert "    - delete File:/etc/web/b.conf on localhost\n" in out
    assert "        --- live/" in out or "        ---" in out
    assert out.endswith("1 to create, 1 to change, 1 to delete\n")
    assert repo.snapshot() == before


def test_json_is_exactly_plan_to_json(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(repo, tmp_path, "--rev", "feature", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    engine = Engine(EngineSettings(repo=str(repo.path), data_dir=tmp_path / "data"))
    try:
        expected = planner.to_json(engine.plan("feature"))
    finally:
        engine.close()
    assert printed == expected
    assert printed["summary"] == {"create": 1, "update": 1, "delete": 1}


def test_no_changes_says_so(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(repo, tmp_path, "--rev", "main") == 0
    assert "no changes, live state matches" in capsys.readouterr().out


def test_invalid_commit_exits_2_with_file_and_line(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("apps/web/app.yaml", "target: nowhere\n")
    repo.commit("broken")
    assert plan(repo, tmp_path, "--rev", "feature") == 2
    err = capsys.readouterr().err
    assert err.startswith("apps/web/app.yaml:1: ")
    assert "nothing was planned" in err


def test_unknown_revision_exits_1(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(repo, tmp_path, "--rev", "no-such-branch") == 1
    assert "unknown revision" in capsys.readouterr().err


def test_target_flag_skips_a_cluster_that_is_not_there(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (repo.path / "reconciler.yaml").read_text()
    repo.write("reconciler.yaml", text + PROD)
    repo.commit("a prod cluster")
    assert plan(repo, tmp_path, "--rev", "feature") == 1
    assert "reconciler plan: " in capsys.readouterr().err
    assert plan(repo, tmp_path, "--rev", "feature", "--target", "laptop") == 0
    assert "1 to create, 1 to change, 1 to delete" in capsys.readouterr().out
    assert plan(repo, tmp_path, "--rev", "feature", "--target", "mars") == 1
    assert "unknown target mars" in capsys.readouterr().err


def test_post_status_success_through_github_flags(
    repo: LocalStateRepo, tmp_path: Path, forge: Forge, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CI_GITHUB_TOKEN", "ghp_ci-token")
    sha = staterepo.git(repo.path, "rev-parse", "feature")
    code = plan(repo, tmp_path, "--rev", "feature", "--post-status", "--reporter", "github",
                "--api-url", forge.url, "--status-repo", "org/state",
                "--status-token-env", "CI_GITHUB_TOKEN",
                "--public-url", "https://deploy.example.com")
    assert code == 0
    [request] = forge.requests
    assert request.path == f"/repos/org/state/statuses/{sha}"
    assert request.headers["authorization"] == "Bearer ghp_ci-token"
    assert request.json() == {"state": "success", "context": "reconciler/plan",
                              "description": "1 to create, 1 to change, 1 to delete",
                              "target_url": f"https://deploy.example.com/plans/{sha}"}
    assert "ghp_ci-token" not in capsys.readouterr().out


def test_post_status_error_through_a_config_file(
    repo: LocalStateRepo, tmp_path: Path, forge: Forge, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = tmp_path / "gitlab-token"
    token.write_text("glpat-ci\n")
    config = tmp_path / "statuses.yaml"
    config.write_text(f"reporters:\n  - {{type: gitlab, api_url: '{forge.url}/api/v4', "
                      f"repo: platform/state, token_file: '{token}'}}\n")
    repo.write("apps/web/app.yaml", "target: nowhere\n")
    sha = repo.commit("broken")
    code = plan(repo, tmp_path, "--rev", "feature", "--post-status", "--status-config",
                str(config))
    assert code == 2
    [request] = forge.requests
    assert request.path == f"/api/v4/projects/platform%2Fstate/statuses/{sha}"
    assert request.headers["private-token"] == "glpat-ci"
    body = request.json()
    assert (body["state"], body["name"]) == ("failed", "reconciler/plan")
    assert body["description"].startswith("invalid: apps/web/app.yaml:1: ")
    capsys.readouterr()


def test_post_status_failure_is_reported_but_keeps_the_exit_code(
    repo: LocalStateRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("T", "tok")
    code = plan(repo, tmp_path, "--rev", "feature", "--post-status", "--reporter", "gitea",
                "--api-url", "http://127.0.0.1:9/api/v1", "--status-repo", "o/r",
                "--status-token-env", "T", "--status-retry-delay", "0.001")
    assert code == 0
    assert "the gitea status was not posted" in capsys.readouterr().err


def test_post_status_needs_a_reporter(
    repo: LocalStateRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(repo, tmp_path, "--rev", "feature", "--post-status") == 1
    assert "needs --reporter" in capsys.readouterr().err
