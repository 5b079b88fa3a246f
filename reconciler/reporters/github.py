"""Commit statuses on GitHub and GitHub Enterprise (REST "Create a commit status").

`POST {api_url}/repos/{owner}/{repo}/statuses/{sha}` with a bearer token, the
`application/vnd.github+json` media type and a pinned `X-GitHub-Api-Version`;
the body is `{state, target_url, description, context}`. GitHub knows exactly
the states pending, success, failure and error (ours map one to one) and cuts
descriptions at 140 characters, so we cut first and say so with an ellipsis.
GitHub Enterprise Server is the same API under `https://<host>/api/v3`.

`build_request` is pure; `GitHubReporter.report` only sends what it built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.reporters import http

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
DESCRIPTION_LIMIT = 140
STATES = frozenset({"pending", "success", "failure", "error"})
ENTRY_KEYS = ("api_url", "repo", "token_env", "token_file")


def statuses_url(api_url: str, repo: str, sha: str) -> str:
    owner, name = http.owner_repo(repo, "github")
    return http.api_url(api_url, "repos", owner, name, "statuses", sha)


def payload(status: http.Status) -> dict[str, Any]:
    state = http.known_state(http.state_of(status), STATES, "GitHub")
    return http.status_body(status, state, name_key="context", limit=DESCRIPTION_LIMIT)


def build_request(status: http.Status, *, api_url: str, repo: str, token: str) -> http.Request:
    headers = {
        "Accept": MEDIA_TYPE,
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": API_VERSION,
    }
    return http.json_request("POST", statuses_url(api_url, repo, status.sha), payload(status),
                             headers)


@dataclass(frozen=True, kw_only=True)
class GitHubReporter:
    api_url: str = DEFAULT_API_URL
    repo: str
    token: str = field(repr=False)
    client: http.Client = field(default_factory=http.Client)
    name: str = "github"

    def report(self, status: http.Status) -> None:
        request = build_request(status, api_url=self.api_url, repo=self.repo, token=self.token)
        self.client.send(request, secrets=(self.token,))


def from_entry(
    entry: Mapping[str, Any],
    *,
    client: http.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> GitHubReporter:
    """`{type: github, api_url, repo, token_env | token_file}` from the daemon config."""
    http.check_entry(entry, ENTRY_KEYS, ("repo",))
    repo = str(entry["repo"])
    http.owner_repo(repo, "github")
    return GitHubReporter(
        api_url=str(entry.get("api_url") or DEFAULT_API_URL),
        repo=repo,
        token=http.load_token(entry, environ),
        client=client or http.Client(),
    )

