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

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ConfigError
from reconciler.reporters import http

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
DESCRIPTION_LIMIT = 140
STATES = frozenset({"pending", "success", "failure", "error"})
ENTRY_KEYS = ("api_url", "repo", "token_env", "token_file")


def owner_repo(repo: str, kind: str = "github") -> tuple[str, str]:
    """"org/name" -> ("org", "name"); anything else is a configuration error."""
    parts = repo.strip().strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"reporter {kind}: repo must be owner/name, not {repo!r}")
    return parts[0], parts[1]


def statuses_url(api_url: str, repo: str, sha: str) -> str:
    owner, name = owner_repo(repo)
    quote = urllib.parse.quote
    return f"{api_url.rstrip('/')}/repos/{quote(owner, safe='')}/{quote(name, safe='')}" \
        f"/statuses/{quote(sha, safe='')}"


def payload(status: http.Status) -> dict[str, Any]:
    state = http.state_of(status)
    if state not in STATES:
        raise ValueError(f"GitHub has no commit status state {state!r}")
    body: dict[str, Any] = {
        "state": state,
        "context": status.context,
        "description": http.shorten(status.description, DESCRIPTION_LIMIT),
    }
    if status.target_url:
        body["target_url"] = status.target_url
    return body


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
    owner_repo(repo)
    return GitHubReporter(
        api_url=str(entry.get("api_url") or DEFAULT_API_URL),
        repo=repo,
        token=http.load_token(entry, os.environ if environ is None else environ),
        client=client or http.Client(),
    )


def create(options: Mapping[str, Any]) -> GitHubReporter:
    """What the daemon's `make_reporter` calls: the config entry's options, tokens from env."""
    return from_entry(options)
