"""Commit statuses on Gitea and Forgejo (`repoCreateStatus`).

`POST {api_url}/repos/{owner}/{repo}/statuses/{sha}` with
`Authorization: token <token>` and a `CreateStatusOption` body
`{state, target_url, description, context}`. Gitea's states are pending,
success, error, failure and warning; ours map one to one (warning is never
sent). `api_url` includes the `/api/v1` prefix, e.g. https://gitea.example.com/api/v1.

`build_request` is pure; `GiteaReporter.report` only sends what it built.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.reporters import http
from reconciler.reporters.github import owner_repo

DESCRIPTION_LIMIT = 140
STATES = frozenset({"pending", "success", "error", "failure", "warning"})
ENTRY_KEYS = ("api_url", "repo", "token_env", "token_file")


def statuses_url(api_url: str, repo: str, sha: str) -> str:
    owner, name = owner_repo(repo, "gitea")
    quote = urllib.parse.quote
    return f"{api_url.rstrip('/')}/repos/{quote(owner, safe='')}/{quote(name, safe='')}" \
        f"/statuses/{quote(sha, safe='')}"


def payload(status: http.Status) -> dict[str, Any]:
    state = http.state_of(status)
    if state not in STATES:
        raise ValueError(f"Gitea has no commit status state {state!r}")
    body: dict[str, Any] = {
        "state": state,
        "context": status.context,
        "description": http.shorten(status.description, DESCRIPTION_LIMIT),
    }
    if status.target_url:
        body["target_url"] = status.target_url
    return body


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
    owner_repo(repo, "gitea")
    return GiteaReporter(
        api_url=str(entry["api_url"]),
        repo=repo,
        token=http.load_token(entry, os.environ if environ is None else environ),
        client=client or http.Client(),
    )


def create(options: Mapping[str, Any]) -> GiteaReporter:
    """What the daemon's `make_reporter` calls: the config entry's options, tokens from env."""
    return from_entry(options)
