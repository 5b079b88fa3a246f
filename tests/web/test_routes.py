"""Every route over real HTTP: read-only methods, 404s, probes, webhooks, page auth."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from reconciler.web import routes
from reconciler.web.auth import PageAuth
from reconciler.webhooks import MAX_BODY, TriggerKind, sign
from tests.web.conftest import HOOK_SECRET, Web

SHA = "0123456789abcdef0123456789abcdef01234567"
READ_PATHS = ["/", "/deploys/1", f"/plans/{SHA}", f"/commits/{SHA}", "/api/v1/status",
              "/api/v1/deploys", "/api/v1/deploys/1", f"/api/v1/plans/{SHA}",
              "/api/v1/events", "/metrics", "/healthz", "/readyz"]
HOOK_PATHS = ["/hooks/github", "/hooks/gitlab", "/hooks/gitea"]


def test_the_paths_tested_here_cover_every_route() -> None:
    covered = {routes.resolve("GET", p).route.name for p in READ_PATHS + HOOK_PATHS}  # type: ignore[union-attr]
    assert covered == {r.name for r in routes.ROUTES}


def test_every_read_route_refuses_other_methods_with_405_and_allow(web: Web) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
        for path in READ_PATHS:
            answer = web.request(method, path, body=b"{}")
            assert answer.status == 405, (method, path)
            assert answer.headers["Allow"] == "GET, HEAD", path


def test_webhook_routes_take_post_only(web: Web) -> None:
    for method in ("GET", "HEAD", "PUT", "PATCH", "DELETE", "TRACE"):
        for path in HOOK_PATHS:
            answer = web.request(method, path)
            assert answer.status == 405, (method, path)
            assert answer.headers["Allow"] == "POST"


def test_unknown_paths_are_404_and_head_has_no_body(web: Web) -> None:
    for path in ["/nope", "/deploys/abc", "/plans/xyz", "/api/v1/nope", "/hooks/bitbucket"]:
        assert web.get(path).status == 404, path
    assert web.request("POST", "/nope").status == 404
    head = web.request("HEAD", "/")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["Content-Length"]) > 1000


def test_probes_and_missing_records(web: Web) -> None:
    assert web.get("/healthz").text == "ok\n"
    assert web.get("/readyz").status == 200
    assert web.get("/deploys/999").status == 404
    missing = web.get("/api/v1/deploys/999")
    assert missing.status == 404 and json.loads(missing.body) == {"error": "no deploy #999"}
    assert web.get(f"/api/v1/plans/{SHA}").status == 404


def test_a_commit_link_leads_to_its_newest_deploy(web: Web) -> None:
    result = web.engine.sync()
    answer = web.get(f"/commits/{result.revision}")
    assert answer.status == 303
    assert answer.headers["Location"] == f"/deploys/{result.deploy_id}"
    assert web.get(f"/commits/{SHA}").status == 404


def _push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "after": "a" * 40}).encode()


def test_a_signed_push_is_accepted_and_triggers(web: Web) -> None:
    body = _push()
    answer = web.request("POST", "/hooks/github", body=body, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(body, HOOK_SECRET),
        "Content-Type": "application/json"})
    assert answer.status == 202
    assert [(t.kind, t.ref) for t in web.triggers] == [(TriggerKind.PUSH, "refs/heads/main")]
    assert HOOK_SECRET not in answer.text


def test_bad_signatures_and_unconfigured_providers_get_401(web: Web) -> None:
    body = _push()
    bad = web.request("POST", "/hooks/github", body=body, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert bad.status == 401
    # No secret configured for GitLab: every delivery is refused.
    gitlab = web.request("POST", "/hooks/gitlab", body=body, headers={
        "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": ""})
    assert gitlab.status == 401
    assert web.triggers == []


def test_an_oversized_body_is_refused_with_413_unparsed(web: Web) -> None:
    answer = web.request("POST", "/hooks/github", body=b"x" * (MAX_BODY + 1),
                         headers={"X-GitHub-Event": "push"})
    assert answer.status == 413
    assert web.triggers == []


def test_page_auth_protects_everything_but_probes_and_webhooks(
    web_factory: Callable[..., Web],
) -> None:
    web = web_factory(PageAuth(token="page-token-1", basic="ops:hunter2-pass"))
    for path in ["/", "/api/v1/status", "/metrics", "/api/v1/events", "/deploys/1"]:
        denied = web.get(path)
        assert denied.status == 401, path
        assert denied.headers["WWW-Authenticate"].startswith("Basic")
        assert "page-token-1" not in denied.text and "hunter2" not in denied.text
    assert web.get("/", headers={"Authorization": "Bearer page-token-1"}).status == 200
    assert web.get("/", headers={"Authorization": "Bearer wrong"}).status == 401
    basic = base64.b64encode(b"ops:hunter2-pass").decode()
    assert web.get("/api/v1/status", headers={"Authorization": f"Basic {basic}"}).status == 200
    assert web.get("/healthz").status == 200 and web.get("/readyz").status == 200
    assert web.request("POST", "/hooks/github", body=_push()).status == 401  # its own check
