"""Each forge gets exactly the request its API documents."""

from __future__ import annotations

import pytest

from reconciler.reporters import gitea, github, gitlab, http
from tests.reporters.conftest import Forge, Status

TOKEN = "ghp_s3cr3t-token-value"
SHA = Status().sha


def test_github_request_is_exactly_the_documented_one(forge: Forge, client: http.Client) -> None:
    reporter = github.GitHubReporter(api_url=forge.url, repo="org/state", token=TOKEN,
                                     client=client)
    reporter.report(Status())
    [req] = forge.requests
    assert req.method == "POST"
    assert req.path == f"/repos/org/state/statuses/{SHA}"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["accept"] == "application/vnd.github+json"
    assert req.headers["x-github-api-version"] == "2022-11-28"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "state": "success",
        "context": "reconciler/deploy",
        "description": "deployed: 2 created, 1 changed, 0 deleted",
        "target_url": "https://deploy.example.com/deploys/7",
    }


def test_github_enterprise_keeps_the_api_prefix(forge: Forge, client: http.Client) -> None:
    reporter = github.GitHubReporter(api_url=forge.url + "/api/v3/", repo="org/state",
                                     token=TOKEN, client=client)
    reporter.report(Status(state="pending", target_url=None))
    [req] = forge.requests
    assert req.path == f"/api/v3/repos/org/state/statuses/{SHA}"
    assert "target_url" not in req.json()
    assert req.json()["state"] == "pending"


@pytest.mark.parametrize("state", ["pending", "success", "failure", "error"])
def test_github_states_are_the_four_it_knows(state: str) -> None:
    body = github.payload(Status(state=state))
    assert body["state"] == state
    assert body["state"] in github.STATES


def test_descriptions_are_cut_at_140_characters() -> None:
    long = "wave 2 of 3: " + "x" * 300
    for module in (github, gitea, gitlab):
        text = module.payload(Status(description=long))["description"]
        assert len(text) == 140
        assert text.endswith("…")
        assert text.startswith("wave 2 of 3: xxx")


def test_gitlab_request_uses_encoded_path_and_private_token(
    forge: Forge, client: http.Client
) -> None:
    reporter = gitlab.GitLabReporter(api_url=forge.url + "/api/v4", project="platform/infra/state",
                                     token=TOKEN, client=client)
    reporter.report(Status(state="failure", description="wave 1 failed; rolled back"))
    [req] = forge.requests
    assert req.method == "POST"
    assert req.path == f"/api/v4/projects/platform%2Finfra%2Fstate/statuses/{SHA}"
    assert req.headers["private-token"] == TOKEN
    assert "authorization" not in req.headers
    assert req.json() == {
        "state": "failed",
        "name": "reconciler/deploy",
        "description": "wave 1 failed; rolled back",
        "target_url": "https://deploy.example.com/deploys/7",
    }


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("pending", "pending"), ("success", "success"), ("failure", "failed"), ("error", "failed")],
)
def test_gitlab_state_mapping(ours: str, theirs: str) -> None:
    assert gitlab.payload(Status(state=ours))["state"] == theirs
    assert theirs in gitlab.STATES


def test_gitlab_numeric_project_id(forge: Forge, client: http.Client) -> None:
    gitlab.GitLabReporter(api_url=forge.url, project="4711", token=TOKEN,
                          client=client).report(Status())
    assert forge.requests[0].path == f"/projects/4711/statuses/{SHA}"


def test_gitlab_same_state_twice_counts_as_posted(forge: Forge, client: http.Client) -> None:
    from tests.reporters.conftest import Reply

    forge.replies.append(Reply(status=400, body=b'{"message": "Cannot transition status via '
                                                b':run from :running"}'))
    reporter = gitlab.GitLabReporter(api_url=forge.url, project="a/b", token=TOKEN, client=client)
    reporter.report(Status(state="pending"))
    assert len(forge.requests) == 1


def test_gitea_request_uses_token_scheme(forge: Forge, client: http.Client) -> None:
    reporter = gitea.GiteaReporter(api_url=forge.url + "/api/v1", repo="org/state", token=TOKEN,
                                   client=client)
    reporter.report(Status(state="error", context="reconciler/plan",
                           description="apps/web/app.yaml:3: unknown target"))
    [req] = forge.requests
    assert req.method == "POST"
    assert req.path == f"/api/v1/repos/org/state/statuses/{SHA}"
    assert req.headers["authorization"] == f"token {TOKEN}"
    assert req.json() == {
        "state": "error",
        "context": "reconciler/plan",
        "description": "apps/web/app.yaml:3: unknown target",
        "target_url": "https://deploy.example.com/deploys/7",
    }
    assert req.json()["state"] in gitea.STATES


def test_unknown_state_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="no commit status state"):
        github.payload(Status(state="running"))
    with pytest.raises(ValueError, match="no commit status state"):
        gitlab.payload(Status(state="warning"))


def test_request_repr_hides_the_token() -> None:
    request = github.build_request(Status(), api_url="https://api.github.com", repo="o/r",
                                   token=TOKEN)
    reporter = github.GitHubReporter(repo="o/r", token=TOKEN)
    assert TOKEN not in repr(request)
    assert TOKEN not in repr(reporter)


def test_real_commit_status_enums_serialise_as_their_values(
    forge: Forge, client: http.Client
) -> None:
    from reconciler.reporters import CommitStatus, Context, State

    status = CommitStatus.make(sha=SHA, context=Context.PLAN, state=State.FAILURE,
                               description="plan failed", target_url=None)
    gitlab.GitLabReporter(api_url=forge.url, project="g/p", token=TOKEN,
                          client=client).report(status)
    github.GitHubReporter(api_url=forge.url, repo="o/r", token=TOKEN, client=client).report(status)
    assert forge.requests[0].json() == {"state": "failed", "name": "reconciler/plan",
                                        "description": "plan failed"}
    assert forge.requests[1].json() == {"state": "failure", "context": "reconciler/plan",
                                        "description": "plan failed"}
