"""The status page in a real headless Chromium: live waves, deploy and plan pages.

Events go through the engine's real EventBus (so the SQLite history records
them too) while the page is open; the page must follow without a reload.
Screenshots at desktop and phone widths land in tests/screenshots/ (ignored by git).
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from reconciler.daemon.statuses import Publisher
from reconciler.events import Event, EventKind
from reconciler.pulls import PullRequestPlanner
from reconciler.reporters import CommitStatus
from tests.web.conftest import SCREENSHOTS, Web

PHONE = {"width": 390, "height": 844}


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


class Feed:
    """Emits engine events for one deploy of the branch head, as the rollout runner does."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self.revision = web.engine.resolve()
        self.deploy_id = web.engine.history.start_deploy(self.revision, "webhook:github:push")

    def __call__(self, kind: EventKind, **fields: Any) -> None:
        self.web.engine.events.emit(Event(kind=kind, deploy_id=self.deploy_id,
                                          revision=self.revision, **fields))

    def app(self, wave: int, app: str, *steps: tuple[EventKind, str]) -> None:
        for kind, status in steps:
            self(kind, wave=wave, app=app, target="laptop", hosts=("localhost",), status=status)


def wait_for_listener(web: Web) -> None:
    deadline = time.monotonic() + 10
    while web.app.hub.listeners == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert web.app.hub.listeners >= 1


def test_wave_progress_changes_live_without_a_reload(web: Web, page: Any) -> None:
    assert web.engine.sync().result == "success"  # an earlier deploy for the list
    web.repo.release("2.0\n", "x", "web 2.0: bigger buffers")
    web.engine.mirror.fetch()
    feed = Feed(web)
    feed(EventKind.DEPLOY_STARTED, status="running")
    feed(EventKind.WAVE_STARTED, wave=0, status="running")
    feed.app(0, "config", (EventKind.BATCH_STARTED, "running"))

    page.goto(web.url + "/")
    position = page.locator("#rollout-position")
    expect(position).to_have_text("wave 1 of 2")
    page.evaluate("window.__notReloaded = true")
    wait_for_listener(web)

    feed.app(0, "config", (EventKind.BATCH_APPLIED, "success"),
             (EventKind.HEALTH_CHECKED, "Healthy"), (EventKind.APP_DONE, "success"))
    feed(EventKind.WAVE_DONE, wave=0, status="success")
    feed(EventKind.WAVE_STARTED, wave=1, status="running")
    feed.app(1, "web", (EventKind.BATCH_STARTED, "running"))
    expect(position).to_have_text("wave 2 of 2")
    web_row = page.locator('#rollout tr[data-app="web"]')
    expect(web_row.locator('[data-host="localhost"]')).to_have_text("localhost: applying")
    expect(page.locator('#rollout tr[data-app="config"]')).to_contain_text("success")
    assert page.evaluate("window.__notReloaded") is True
    shoot(page, "status-rollout")

    feed.app(1, "web", (EventKind.BATCH_APPLIED, "success"),
             (EventKind.HEALTH_CHECKED, "Healthy"), (EventKind.APP_DONE, "success"))
    feed(EventKind.WAVE_DONE, wave=1, status="success")
    web.engine.history.finish_deploy(feed.deploy_id, "success", "0 to create, 1 to change")
    feed(EventKind.DEPLOY_FINISHED, status="success", message="0 to create, 1 to change")
    expect(page.locator("#rollout")).to_have_attribute("data-state", "success")
    expect(page.locator("#rollout h2")).to_have_text("Last rollout")
    newest = page.locator("#deploys tbody tr").first
    expect(newest).to_contain_text(f"#{feed.deploy_id}")
    expect(newest).to_contain_text("web 2.0: bigger buffers")
    expect(newest).to_contain_text("success")
    assert page.evaluate("window.__notReloaded") is True
    assert int(page.evaluate("document.documentElement.dataset.liveUpdates")) >= 2


def test_a_deploy_page_opens_from_the_list(web: Web, page: Any) -> None:
    first = web.engine.sync()
    web.repo.write("apps/web/app.yaml", "target: laptop\nwave: 1\nhealth:\n"
                   "  - command: \"false\"\n    retries: 0\n    interval: 0.05s\n")
    web.repo.release("3.0\n", "y", "web 3.0: a release whose check fails")
    failed = web.engine.sync()
    assert (first.result, failed.result) == ("success", "failure")

    page.goto(web.url + "/")
    row = page.locator("#deploys tbody tr").first
    expect(row).to_contain_text("failure, rolled back")
    expect(row).to_contain_text("Ada Lovelace")
    shoot(page, "status")
    row.get_by_role("link", name=f"#{failed.deploy_id}").click()
    expect(page).to_have_url(f"{web.url}/deploys/{failed.deploy_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Deploy #{failed.deploy_id}")
    expect(page.locator("dl.facts")).to_contain_text("web 3.0: a release whose check fails")
    expect(page.locator("dl.facts")).to_contain_text("rolled back")
    expect(page.get_by_role("table", name="Result per app")).to_contain_text("web")
    shoot(page, "deploy")

    # The daemon's deploy statuses link to /commits/<sha>: it lands on the same page.
    target_url = Publisher((), web.url).target_url(failed.revision)
    assert target_url is not None
    page.goto(target_url)
    expect(page).to_have_url(f"{web.url}/deploys/{failed.deploy_id}")


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.statuses: list[CommitStatus] = []

    def report(self, status: CommitStatus) -> None:
        self.statuses.append(status)


def test_a_plan_page_opens_from_the_commit_status_target_url(web: Web, page: Any) -> None:
    web.engine.sync()
    sha = web.repo.pull_request(12, "4.0\n", "z")
    recorder = Recorder()
    PullRequestPlanner(engine=web.engine, reporters=[recorder], public_url=web.url).scan()
    final = recorder.statuses[-1]
    assert (final.sha, final.state.value) == (sha, "success")
    assert final.target_url == f"{web.url}/plans/{sha}"

    page.goto(final.target_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(sha[:12])
    expect(page.locator("main")).to_contain_text("0 to create, 2 to change, 0 to delete")
    diff = page.locator("details", has_text="File:/etc/web/version").locator("pre.diff")
    expect(diff).to_be_visible()
    # A changed text file shows its changed lines next to the new content hash.
    expect(diff.locator(".add", has_text="+sha256:")).to_have_count(1)
    expect(diff.locator(".add", has_text="4.0")).to_have_count(1)
    shoot(page, "plan")
