"""Real parts for status-page tests: a git state repo, an Engine with its SQLite
history, the web server on 127.0.0.1 (port 0), and one headless Chromium."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler import pulls
from reconciler.engine import Engine, EngineSettings
from reconciler.web import wiring
from reconciler.web.auth import PageAuth
from reconciler.web.live import RolloutTracker
from reconciler.web.metrics import Metrics
from reconciler.web.server import WebApp, WebServer
from reconciler.web.status import Drift, HistorySource
from reconciler.webhooks import Trigger
from tests.web import staterepo

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
HOOK_SECRET = "webhook-shared-secret-7d1e"


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Web:
    server: WebServer
    app: WebApp
    engine: Engine
    repo: staterepo.StateRepo
    triggers: list[Trigger] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        host, port = self.server.address
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            answer = conn.getresponse()
            return Response(status=answer.status, headers=dict(answer.getheaders()),
                            body=answer.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def plan_pull_request(self, number: int, version: str, password: str) -> str:
        """Publish a pull request and store its plan, as the daemon's planner does."""
        sha = self.repo.pull_request(number, version, password)
        self.engine.mirror.fetch(("+refs/pull/*/head:refs/pull/*/head",))
        result = pulls.evaluate(self.engine, sha, f"refs/pull/{number}/head")
        pulls.save_record(self.engine.history, result)
        return sha


@pytest.fixture
def state_repo(tmp_path: Path) -> staterepo.StateRepo:
    return staterepo.create(tmp_path)


@pytest.fixture
def engine(tmp_path: Path, state_repo: staterepo.StateRepo) -> Iterator[Engine]:
    settings = EngineSettings(repo=str(state_repo.path), rev="refs/heads/main",
                              data_dir=tmp_path / "data")
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture
def web_factory(
    engine: Engine, state_repo: staterepo.StateRepo
) -> Iterator[Callable[..., Web]]:
    servers: list[WebServer] = []

    def make(auth: PageAuth | None = None, **options: Any) -> Web:
        """`options`: further WebApp settings (limits, timeouts)."""
        tracker = RolloutTracker(lambda sha: wiring.layout(engine, sha))
        holder: list[Web] = []
        hooks = replace(wiring.engine_hooks(engine),
                        drift=lambda: holder[0].drift[-1] if holder[0].drift else None,
                        head=lambda: engine.resolve(fetch=False))
        source = HistorySource(repo=str(state_repo.path), branch="main", path=".",
                               history=engine.history, tracker=tracker, hooks=hooks)
        metrics = Metrics(targets_of=lambda sha: wiring.targets_of(engine, sha))
        triggers: list[Trigger] = []
        app = WebApp(source=source, tracker=tracker, metrics=metrics,
                     auth=auth or PageAuth(), hook_secrets={"github": HOOK_SECRET},
                     on_webhook=triggers.append, redact=engine.events.secrets.redact,
                     **{"keepalive": 0.5, **options})
        server = WebServer(app, "127.0.0.1:0")
        server.on_stop(engine.subscribe(app.feed))
        servers.append(server.start())
        web = Web(server=server, app=app, engine=engine, repo=state_repo, triggers=triggers)
        holder.append(web)
        return web

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def web(web_factory: Callable[..., Web]) -> Web:
    return web_factory()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()
