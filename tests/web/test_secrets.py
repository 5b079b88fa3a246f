"""No secret value reaches any response: pages, JSON, the event stream, metrics.

A File marked `secret: true` is deployed, changed by a pull request (whose
plan diff then covers the secret), and changed again by a deploy that fails
and rolls back; then every route is read and searched for both values.
"""

from __future__ import annotations

import http.client
import json

from tests.web.conftest import Web
from tests.web.staterepo import SECRET

ROTATED = "r0tated-s3cret-value-41ab"


def read_event_stream(web: Web) -> bytes:
    host, port = web.server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/api/v1/events")
    answer = conn.getresponse()
    assert answer.getheader("Content-Type") == "text/event-stream"
    data = answer.read1(65536)
    conn.close()
    return data


def test_no_secret_in_any_html_or_json_response(web: Web) -> None:
    first = web.engine.sync()
    assert first.result == "success"
    assert (web.repo.root / "etc/web/password").read_text() == SECRET  # it was deployed
    sha = web.plan_pull_request(7, "1.1\n", ROTATED)
    web.repo.write("apps/web/app.yaml", "target: laptop\nwave: 1\nhealth:\n"
                   "  - command: \"false\"\n    retries: 0\n    interval: 0.05s\n")
    web.repo.release("1.2\n", ROTATED, "web 1.2: rotate, with a failing check")
    failed = web.engine.sync()
    assert failed.result == "failure" and failed.rolled_back

    paths = ["/", f"/deploys/{first.deploy_id}", f"/deploys/{failed.deploy_id}",
             f"/plans/{sha}", "/api/v1/status", "/api/v1/deploys",
             f"/api/v1/deploys/{first.deploy_id}", f"/api/v1/deploys/{failed.deploy_id}",
             f"/api/v1/plans/{sha}", "/metrics", "/healthz", "/readyz"]
    bodies = {path: web.get(path) for path in paths}
    assert all(r.status == 200 for r in bodies.values()), {p: r.status for p, r in bodies.items()}
    bodies["/api/v1/events"] = type(bodies["/"])(status=200, headers={},
                                                  body=read_event_stream(web))
    for path, answer in bodies.items():
        assert SECRET not in answer.text, path
        assert ROTATED not in answer.text, path

    # The plan really shows that the secret changes (as a digest, never the value).
    plan = json.loads(bodies[f"/api/v1/plans/{sha}"].body)
    diffs = {c["resource"]: c["diff"] for w in plan["plan"]["waves"] for a in w["apps"]
             for c in a["changes"]}
    assert "+sha256:" in diffs["File:/etc/web/password"]
    assert "File:/etc/web/password" in bodies[f"/plans/{sha}"].text
    # And the failed deploy's page names what failed and that it rolled back.
    page = bodies[f"/deploys/{failed.deploy_id}"].text
    assert "failure, rolled back" in page
