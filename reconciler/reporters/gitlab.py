"""Commit statuses on GitLab (Commits API, "Set the pipeline status of a commit").

`POST {api_url}/projects/{id}/statuses/{sha}` with a `PRIVATE-TOKEN` header,
where `id` is the numeric project id or the URL-encoded full path
(`group%2Fsub%2Fproject`). GitLab's states are pending, running, success,
failed and canceled: our `failure` and `error` both become `failed` (the
description says which), `pending` stays `pending`. The status name is our
context. `api_url` includes `/api/v4`, e.g. https://gitlab.com/api/v4.

GitLab refuses to post the state a status already has ("Cannot transition
status via ..." with 400); that is the result we wanted, so it counts as posted.

`build_request` is pure; `GitLabReporter.report` only sends what it built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ConfigError
from reconciler.reporters import http

DEFAULT_API_URL = "https://gitlab.com/api/v4"
DESCRIPTION_LIMIT = 140
STATES = frozenset({"pending", "running", "success", "failed", "canceled"})
_STATE_MAP = {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"}
ENTRY_KEYS = ("api_url", "repo", "project", "token_env", "token_file")


def gitlab_state(state: str) -> str:
    return http.known_state(_STATE_MAP.get(state, state), STATES, "GitLab")


def statuses_url(api_url: str, project: str, sha: str) -> str:
    return http.api_url(api_url, "projects", project.strip().strip("/"), "statuses", sha)


def payload(status: http.Status) -> dict[str, Any]:
    state = gitlab_state(http.state_of(status))
    return http.status_body(status, state, name_key="name", limit=DESCRIPTION_LIMIT)


def build_request(
    status: http.Status, *, api_url: str, project: str, token: str
) -> http.Request:
    headers = {"Accept": "application/json", "PRIVATE-TOKEN": token}
    return http.json_request("POST", statuses_url(api_url, project, status.sha),
                             payload(status), headers)


def already_in_state(error: http.ReporterError) -> bool:
    return error.status == 400 and "cannot transition status" in str(error).lower()


@dataclass(frozen=True, kw_only=True)
class GitLabReporter:
    api_url: str = DEFAULT_API_URL
    project: str
    """Numeric id or full path ("group/sub/project")."""
    token: str = field(repr=False)
    client: http.Client = field(default_factory=http.Client)
    name: str = "gitlab"

    def report(self, status: http.Status) -> None:
        request = build_request(status, api_url=self.api_url, project=self.project,
                                token=self.token)
        try:
            self.client.send(request, secrets=(self.token,))
        except http.ReporterError as error:
            if not already_in_state(error):
                raise


def from_entry(
    entry: Mapping[str, Any],
    *,
    client: http.Client | None = None,
    environ: Mapping[str, str] | None = None,
) -> GitLabReporter:
    """`{type: gitlab, api_url, repo | project, token_env | token_file}`."""
    http.check_entry(entry, ENTRY_KEYS, ())
    project = str(entry.get("project") or entry.get("repo") or "").strip()
    if not project:
        raise ConfigError("reporter gitlab: missing repo (project path or numeric id)")
    return GitLabReporter(
        api_url=str(entry.get("api_url") or DEFAULT_API_URL),
        project=project,
        token=http.load_token(entry, environ),
        client=client or http.Client(),
    )

