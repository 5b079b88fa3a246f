"""Commit statuses on Gitea and Forgejo (`repoCreateStatus`).

`POST {api_url}/repos/{owner}/{repo}/statuses/{sha}` with
`Authorization: token <token>` and a `CreateStatusOption` body
`{state, target_url, description, context}`. Gitea's states are pending,
success, error, failure and warning; ours map one to one (warning is never
sent). `api_url` includes the `/api/v1` prefix, e.g. https://gitea.example.com/api/v1.

`build_request` is pure; `GiteaReporter.report` only sends what it built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.reporters import http

DESCRIPTION_LIMIT = 140
STATES = frozenset({"pending", "success", "error", "failure", "warning"})
ENTRY_KEYS = ("api_url", "repo", "token_env", "token_file")


def statuses_url(api_url: str, repo: str, sha: str) -> str:
    owner, name = http.owner_repo(repo, "gitea")
    return http.api_url(api_url, "repos", owner, name, "statuses", sha)


def payload(status: http.Status) -> dict[str, Any]:
    state = http.known_state(http.state_of(status), STATES, "Gitea")
    return http.status_body(status, state, name_key="context", limit=DESCRIPTION_LIMIT)


def build_request(status: http.Status, *, api_url: str, repo: str, token: str) -> http.Request:
    headers = {"Accept": "application/json", "Authorization": f"token {token}"}
    return http.json_request("POST", statuses_url(api_url, repo, status.sha), payload(status),
                             headers)


@dataclass(frozen=True, kw_only=True)
class GiteaReporter:
    api_url: str
    repo: str
    token: str = field(repr=False)
    client: http.Client = field(default_factory=http.Client)
    name: str = "gitea"

    def report(self, status: http.Status) -> None:
        request = build_request(status, api_url=self.api_url, repo=self.repo, token=self.token)
        self.client.send(request, secrets=(self.token,))


def from_entry(
    entry: Mapping[str, Any],
    *,
    client: http.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> GiteaReporter:
    """`{type: gitea | forgejo, api_url, repo, token_env | token_file}`."""
    http.check_entry(entry, ENTRY_KEYS, ("api_url", "repo"))
    repo = str(entry["repo"])
    http.owner_repo(repo, "gitea")
    return GiteaReporter(
        api_url=str(entry["api_url"]),
        repo=repo,
        token=http.load_token(entry, environ),
        client=client or http.Client(),
    )

