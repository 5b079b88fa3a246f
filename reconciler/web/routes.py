"""The route table: (method, path) -> a handler name and its parameters. Pure.

One table decides every answer that does not depend on data: 404 for a path
no route knows, 405 with an `Allow` header for a known path and a method it
does not take. The status page is read-only, so every route but the three
webhook receivers takes GET (and HEAD) only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SHA = r"(?P<sha>[0-9a-f]{40}(?:[0-9a-f]{24})?)"
_ID = r"(?P<id>[0-9]{1,18})"
READ = ("GET", "HEAD")
WRITE = ("POST",)


@dataclass(frozen=True, kw_only=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: tuple[str, ...] = READ
    public: bool = False
    """Answered without the page's credentials (liveness and signed webhooks)."""


def _route(name: str, path: str, methods: tuple[str, ...] = READ, public: bool = False) -> Route:
    return Route(name=name, pattern=re.compile(f"^{path}$"), methods=methods, public=public)


ROUTES: tuple[Route, ...] = (
    _route("index", "/"),
    _route("deploy_page", f"/deploys/{_ID}"),
    _route("plan_page", f"/plans/{_SHA}"),
    # The daemon's deploy statuses link to /commits/<sha>: send them to the deploy.
    _route("commit_page", f"/commits/{_SHA}"),
    _route("api_status", "/api/v1/status"),
    _route("api_deploys", "/api/v1/deploys"),
    _route("api_deploy", f"/api/v1/deploys/{_ID}"),
    _route("api_plan", f"/api/v1/plans/{_SHA}"),
    _route("api_events", "/api/v1/events"),
    _route("metrics", "/metrics"),
    _route("healthz", "/healthz", public=True),
    # Kubernetes readiness probes send no credentials; the answer is one word.
    _route("readyz", "/readyz", public=True),
    _route("webhook", "/hooks/(?P<provider>github|gitlab|gitea)", WRITE, public=True),
)


@dataclass(frozen=True, kw_only=True)
class Match:
    """A route matched the path. `allowed` is False when the method is not one it takes."""

    route: Route
    params: dict[str, str] = field(default_factory=dict)
    allowed: bool = True

    @property
    def allow_header(self) -> str:
        return ", ".join(self.route.methods)


def resolve(method: str, path: str) -> Match | None:
    """The route for `path` (query string already removed); None means 404."""
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is not None:
            params = {k: v for k, v in found.groupdict().items() if v is not None}
            return Match(route=route, params=params, allowed=method in route.methods)
    return None
