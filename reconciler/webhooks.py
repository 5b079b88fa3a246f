"""Verify and parse forge webhooks: bytes and headers in, a decision out. Pure.

The web server routes `POST /hooks/github|gitlab|gitea` here and, when the
result carries a `Trigger`, asks the daemon to fetch. A webhook never carries
authority beyond "something changed, go and look": the daemon fetches and
resolves refs itself, so a forged payload could at most cause one extra fetch,
and the signature check keeps even that out.

Decisions, in order:
- 413 when the body is larger than `MAX_BODY` (checked before any parsing);
- 401 when the signature or token is missing or wrong (constant-time compare):
  GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`,
  Gitea/Forgejo `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC-SHA256>`,
  GitLab `X-Gitlab-Token: <the shared secret>`; an empty secret refuses all;
- 202 with no trigger for events we do not act on (ping, issues, closed pull
  requests, branch deletions): the forges count any non-2xx as a failed
  delivery and retry or disable the hook, yet nothing is wrong;
- 400 when a signed event we act on has a body that is not the JSON we expect
  (not JSON, not an object, nested too deeply to parse, or missing a field);
- 202 with a `Trigger(kind, ref, sha)` for a push or an opened/updated pull request.

Invariants: no I/O, no logging, no clock; the secret is never part of a result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

MAX_BODY = 1024 * 1024
"""GitHub caps payloads at 25 MB, but pushes we act on are small; 1 MiB is plenty."""

_ZERO_SHA = "0" * 40


class Provider(str, Enum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class TriggerKind(str, Enum):
    PUSH = "push"
    PULL_REQUEST = "pull_request"


@dataclass(frozen=True, kw_only=True)
class Trigger:
    provider: Provider
    kind: TriggerKind
    ref: str
    """A full ref: refs/heads/main, refs/pull/7/head, refs/merge-requests/7/head."""
    sha: str

    @property
    def reason(self) -> str:
        """What the daemon records as the trigger of a deploy or plan."""
        return f"webhook:{self.provider.value}:{self.kind.value}"


@dataclass(frozen=True, kw_only=True)
class WebhookResult:
    status_code: int
    message: str
    trigger: Trigger | None = None


def handle(
    provider: str, headers: Mapping[str, str], body: bytes, secret: str | None,
    *, max_body: int = MAX_BODY,
) -> WebhookResult:
    """Decide what one webhook delivery means. `headers` in any case."""
    try:
        which = Provider(provider)
    except ValueError:
        return WebhookResult(status_code=404, message=f"unknown provider {provider!r}")
    if len(body) > max_body:
        return WebhookResult(status_code=413, message=f"body larger than {max_body} bytes")
    lowered = {k.lower(): v for k, v in headers.items()}
    if not secret or not verify(which, lowered, body, secret):
        return WebhookResult(status_code=401, message="missing or bad signature")
    event = event_name(which, lowered)
    if event not in _ACTED_ON[which]:
        return WebhookResult(status_code=202, message=f"event {event or '?'} ignored")
    try:
        payload = json.loads(body)
    except ValueError:
        return WebhookResult(status_code=400, message="body is not JSON")
    except RecursionError:
        # The parser recurses per level: a signed body of a few hundred thousand
        # "[" would otherwise end as a 500. No forge nests a push that deep.
        return WebhookResult(status_code=400, message="body is not usable JSON: nested too deeply")
    if not isinstance(payload, dict):
        return WebhookResult(status_code=400, message="body is not a JSON object")
    return _parse(which, event, payload)


# --- signatures ---------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of `body`: what GitHub (after "sha256=") and Gitea send."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(provider: Provider, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Whether the delivery is signed with `secret`; `headers` lower-cased."""
    if provider is Provider.GITHUB:
        given = headers.get("x-hub-signature-256", "")
        return given.startswith("sha256=") and _same(given[7:], sign(body, secret))
    if provider is Provider.GITEA:
        given = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature") or ""
        return bool(given) and _same(given, sign(body, secret))
    return _same(headers.get("x-gitlab-token", ""), secret)


def _same(given: str, expected: str) -> bool:
    # Compare bytes: compare_digest refuses non-ASCII str, and a header may hold any.
    return hmac.compare_digest(given.strip().encode(), expected.encode())


# --- events -------------------------------------------------------------------

_ACTED_ON = {
    Provider.GITHUB: frozenset({"push", "pull_request"}),
    Provider.GITEA: frozenset({"push", "pull_request"}),
    Provider.GITLAB: frozenset({"Push Hook", "Merge Request Hook"}),
}
_EVENT_HEADER = {
    Provider.GITHUB: ("x-github-event",),
    Provider.GITEA: ("x-gitea-event", "x-forgejo-event"),
    Provider.GITLAB: ("x-gitlab-event",),
}
# Pull-request actions that change the head commit (or bring it back).
_PR_ACTIONS = {
    Provider.GITHUB: frozenset({"opened", "synchronize", "reopened"}),
    Provider.GITEA: frozenset({"opened", "synchronized", "reopened"}),
    Provider.GITLAB: frozenset({"open", "update", "reopen"}),
}


def event_name(provider: Provider, headers: Mapping[str, str]) -> str:
    for name in _EVENT_HEADER[provider]:
        if headers.get(name):
            return headers[name].strip()
    return ""


def _parse(provider: Provider, event: str, payload: Mapping[str, Any]) -> WebhookResult:
    if event in ("push", "Push Hook"):
        return parse_push(provider, payload)
    if provider is Provider.GITLAB:
        return parse_merge_request(payload)
    return parse_pull_request(provider, payload)


def parse_push(provider: Provider, payload: Mapping[str, Any]) -> WebhookResult:
    """Push payloads of all three forges share `ref` and `after`."""
    ref, sha = payload.get("ref"), payload.get("after")
    if not _is_ref(ref) or not _is_sha(sha):
        return _bad("push without ref and after")
    if sha == _ZERO_SHA:
        return WebhookResult(status_code=202, message=f"deletion of {ref} ignored")
    return _accepted(provider, TriggerKind.PUSH, str(ref), str(sha))


def parse_pull_request(provider: Provider, payload: Mapping[str, Any]) -> WebhookResult:
    """GitHub and Gitea: `action`, `number`, `pull_request.head.sha`; head ref refs/pull/N/head."""
    action = payload.get("action")
    if action not in _PR_ACTIONS[provider]:
        return WebhookResult(status_code=202, message=f"pull request action {action!r} ignored")
    number = payload.get("number")
    head = _get(payload, "pull_request", "head")
    sha = head.get("sha") if isinstance(head, Mapping) else None
    if not isinstance(number, int) or isinstance(number, bool) or not _is_sha(sha):
        return _bad("pull_request without number and head sha")
    return _accepted(provider, TriggerKind.PULL_REQUEST, f"refs/pull/{number}/head", str(sha))


def parse_merge_request(payload: Mapping[str, Any]) -> WebhookResult:
    """GitLab: `object_attributes.{iid, action, last_commit.id}`; refs/merge-requests/N/head."""
    attributes = payload.get("object_attributes")
    if not isinstance(attributes, Mapping):
        return _bad("merge request without object_attributes")
    action = attributes.get("action")
    if action not in _PR_ACTIONS[Provider.GITLAB]:
        return WebhookResult(status_code=202, message=f"merge request action {action!r} ignored")
    iid = attributes.get("iid")
    sha = _get(attributes, "last_commit", "id")
    if not isinstance(iid, int) or isinstance(iid, bool) or not _is_sha(sha):
        return _bad("merge request without iid and last_commit.id")
    return _accepted(Provider.GITLAB, TriggerKind.PULL_REQUEST,
                     f"refs/merge-requests/{iid}/head", str(sha))


def _get(node: Mapping[str, Any], *keys: str) -> Any:
    value: Any = node
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("refs/") and len(value) < 1024


def _is_sha(value: Any) -> bool:
    return (isinstance(value, str) and len(value) in (40, 64)
            and all(c in "0123456789abcdef" for c in value))


def _accepted(provider: Provider, kind: TriggerKind, ref: str, sha: str) -> WebhookResult:
    trigger = Trigger(provider=provider, kind=kind, ref=ref, sha=sha)
    return WebhookResult(status_code=202, message=f"{kind.value} {ref} {sha[:12]}",
                         trigger=trigger)


def _bad(message: str) -> WebhookResult:
    return WebhookResult(status_code=400, message=message)
