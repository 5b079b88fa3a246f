"""A running deploy's page follows it live, then settles on the final result.

The deploy page of a running deploy subscribes to `/api/v1/events?deploy=<id>`;
events go through the engine's real EventBus (the SQLite history records them
first, as in the daemon), and Chromium must show wave, app and host states
change without a reload, then the final result, after which the stream ends.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from playwright.sync_api import expect

from reconciler.events import EventKind
from tests.web.conftest import Web
from tests.web.test_browser import Feed, shoot

EVIL = '<img src=x onerror="document.title=1">'


def _until(check: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert check()


def _stream(web: Web, query: str) -> tuple[int, str]:
    """The whole event stream; it must end on its own (a finished deploy)."""
    host, port = web.server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", f"/api/v1/events{query}")
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def test_a_running_deploys_page_follows_it_then_shows_the_result(web: Web, page: Any) -> None:
    assert web.engine.sync().result == "success"
    web.repo.release("2.0\n", "x", "web 2.0: bigger buffers")
    web.engine.mirror.fetch()
    feed = Feed(web)
    feed(EventKind.DEPLOY_STARTED, status="running")
    feed(EventKind.WAVE_STARTED, wave=0, status="running")
    feed.app(0, "config", (EventKind.BATCH_STARTED, "running"))

    page.goto(f"{web.url}/deploys/{feed.deploy_id}")
    facts = page.locator("#deploy-facts")
    position = page.locator("#deploy-progress-position")
    expect(facts).to_have_attribute("data-result", "running")
    expect(position).to_have_text("wave 1 of 2")
    config = page.locator('#deploy-progress tr[data-app="config"]')
    expect(config.locator('[data-host="localhost"]')).to_have_text("localhost: applying")
    page.evaluate("window.__notReloaded = true")
    _until(lambda: web.app.hub.listeners == 1)

    feed.app(0, "config", (EventKind.BATCH_APPLIED, "success"),
             (EventKind.HEALTH_CHECKED, "Healthy"), (EventKind.APP_DONE, "success"))
    feed(EventKind.WAVE_DONE, wave=0, status="success")
    feed(EventKind.WAVE_STARTED, wave=1, status="running")
    feed.app(1, "web", (EventKind.BATCH_STARTED, "running"))
    expect(position).to_have_text("wave 2 of 2")
    expect(page.locator('#deploy-progress [data-wave="0"] h3')).to_contain_text("success")
    expect(config.locator('[data-host="localhost"]')).to_have_text("localhost: healthy")
    web_row = page.locator('#deploy-progress tr[data-app="web"]')
    expect(web_row.locator('[data-host="localhost"]')).to_have_text("localhost: applying")
    expect(page.locator("#deploy-apps tbody")).to_contain_text("config")
    expect(page.locator("#deploy-events tbody tr")).to_have_count(9)
    expect(facts).to_have_attribute("data-result", "running")
    assert page.evaluate("window.__notReloaded") is True
    shoot(page, "deploy-running")

    feed.app(1, "web", (EventKind.BATCH_APPLIED, "success"),
             (EventKind.HEALTH_CHECKED, "Healthy"), (EventKind.APP_DONE, "success"))
    feed(EventKind.WAVE_DONE, wave=1, status="success")
    # The engine records the end in the history before it emits DEPLOY_FINISHED.
    web.engine.history.finish_deploy(feed.deploy_id, "success", f"done {EVIL}")
    feed(EventKind.DEPLOY_FINISHED, status="success", message=f"done {EVIL}")
    expect(page.locator("html")).to_have_attribute("data-live-final", "")
    expect(facts).to_have_attribute("data-result", "success")
    expect(facts.locator("dd").first).to_have_text("success")
    expect(facts).to_contain_text(f"done {EVIL}")  # shown as text, not markup
    assert facts.locator("img").count() == 0
    expect(page.locator("#deploy-progress h2")).to_have_text("Last rollout")
    expect(page.locator("#deploy-apps tbody tr")).to_have_count(2)
    assert page.evaluate("window.__notReloaded") is True

    # The stream has ended (server side too): later events no longer reach the page.
    _until(lambda: web.app.hub.listeners == 0)
    updates = page.evaluate("document.documentElement.dataset.liveUpdates")
    feed(EventKind.DEPLOY_FINISHED, status="failure", message="a stray late event")
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.dataset.liveUpdates") == updates
    expect(facts).to_have_attribute("data-result", "success")
    shoot(page, "deploy-finished")


def test_a_finished_deploys_page_is_static_and_its_stream_ends_at_once(web: Web) -> None:
    done = web.engine.sync()
    html = web.get(f"/deploys/{done.deploy_id}").text
    assert "<script>" not in html and "data-events" not in html

    status, body = _stream(web, f"?deploy={done.deploy_id}")
    data = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert status == 200 and len(data) == 1
    assert data[0]["final"] is True
    assert 'data-result="success"' in data[0]["sections"]["deploy-facts"]
    assert web.app.hub.listeners == 0
    assert _stream(web, "?deploy=9999")[1].count('"final":true') == 1
    assert _stream(web, "?deploy=abc")[0] == 400


def test_the_csp_allows_the_one_live_script_by_its_hash(web: Web) -> None:
    feed = Feed(web)
    feed(EventKind.DEPLOY_STARTED, status="running")
    answer = web.get(f"/deploys/{feed.deploy_id}")
    policy = answer.headers["Content-Security-Policy"]
    script_src = next(p for p in policy.split("; ") if p.startswith("script-src"))
    assert "'sha256-" in script_src and "unsafe-inline" not in script_src
    assert f'data-events="/api/v1/events?deploy={feed.deploy_id}"' in answer.text
