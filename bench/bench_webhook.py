"""Benchmark: latency from a signed push webhook to the start of the rollout.

A real daemon (`reconciler.daemon.service.Daemon`) tracks `main` of a git state
repository with one VM target on the local transport. For each round the
benchmark commits a new version of one file, then POSTs a GitHub push webhook
signed with `X-Hub-Signature-256` over real HTTP on 127.0.0.1, and measures
until the engine emits `deploy_started` and `wave_started` (the rollout's first
wave begins after fetch, load, live read and plan). Target: median under 200 ms.

What carries the webhook: when `reconciler.web.server` exists, the daemon's
own HTTP server (`POST /hooks/github`, secret from `webhooks.github_secret_env`);
otherwise a stand-in ThreadingHTTPServer that does what that route does, i.e.
`reconciler.webhooks.handle` and then `Daemon.trigger(reason, ref)`. The
output says which one ran. Polling is set to an hour and the file watch on the
local repository is switched off, so the webhook is the only trigger.

Usage: python bench/bench_webhook.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reconciler import webhooks  # noqa: E402
from reconciler.daemon import service  # noqa: E402
from reconciler.daemon.config import parse_config  # noqa: E402
from reconciler.events import Event, EventKind  # noqa: E402
from tests.support.gitrepo import LocalStateRepo  # noqa: E402
from tests.support.httpservers import LocalServer, QuietHandler  # noqa: E402

SECRET = "bench-webhook-secret"
SECRET_ENV = "BENCH_WEBHOOK_SECRET"


def make_repo(tmp: Path) -> LocalStateRepo:
    repo = LocalStateRepo.create(tmp)
    repo.write("apps/web/app.yaml", "target: laptop\nwave: 1\n")
    release(repo, 0)
    return repo


def release(repo: LocalStateRepo, version: int) -> str:
    repo.write("apps/web/site.yaml",
               f'kind: File\npath: /srv/web/index.html\ncontent: "v{version}\\n"\nmode: "0644"\n')
    return repo.commit(f"web v{version}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def stand_in_server(daemon: service.Daemon) -> Iterator[str]:
    """What `POST /hooks/github` of the web server does, for builds without it."""

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), webhooks.MAX_BODY + 1)
            body = self.rfile.read(length)
            result = webhooks.handle(self.path.removeprefix("/hooks/"),
                                     dict(self.headers.items()), body, SECRET)
            if result.trigger is not None:
                daemon.trigger(result.trigger.reason, result.trigger.ref)
            self.send_response(result.status_code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with LocalServer(Handler, poll=0.05) as server:
        yield server.url


def post_push(base: str, sha: str) -> int:
    body = json.dumps({"ref": "refs/heads/main", "before": "0" * 39 + "1", "after": sha}).encode()
    request = urllib.request.Request(f"{base}/hooks/github", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + webhooks.sign(body, SECRET)})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


class Stopwatch:
    """Records when the engine first reports each event kind for a revision."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, EventKind], float] = {}
        self.changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self.changed:
            self.seen.setdefault((event.revision, event.kind), time.perf_counter())
            self.changed.notify_all()

    def wait(self, sha: str, kind: EventKind, timeout: float = 30.0) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: (sha, kind) in self.seen, timeout):
                raise TimeoutError(f"no {kind.value} for {sha[:12]}")
            return self.seen[(sha, kind)]


def build_daemon(tmp: Path, repo: Path, web: bool) -> service.Daemon:
    listen = f"127.0.0.1:{free_port()}" if web else "off"
    text = (f"repo: {repo}\nbranch: main\ndata_dir: {tmp / 'data'}\nlisten: {listen}\n"
            f"poll_interval: 1h\ndrift_interval: 0\n"
            f"webhooks: {{github_secret_env: {SECRET_ENV}}}\n")
    config = parse_config(text, source="bench.yaml", base_dir=tmp)
    # The webhook must be the only trigger: no file watch on the local repository.
    setattr(service, "local_git_dir", lambda _repo: None)  # noqa: B010 (a patch, on purpose)
    return service.Daemon(config, tmp / "data")


def measure(rounds: int, web: bool, tmp: Path) -> dict[str, list[float]]:
    repo = make_repo(tmp)
    daemon = build_daemon(tmp, repo.path, web)
    watch = Stopwatch()
    daemon.engine.subscribe(watch)
    daemon.start()
    timings: dict[str, list[float]] = {"deploy_started": [], "wave_started": []}
    try:
        if not service.wait_idle(daemon, 60):
            raise TimeoutError("the first sync did not finish")
        with _endpoint(daemon, web) as base:
            for version in range(1, rounds + 1):
                sha = release(repo, version)
                started = time.perf_counter()
                if post_push(base, sha) != 202:
                    raise RuntimeError("webhook refused")
                for kind, key in ((EventKind.DEPLOY_STARTED, "deploy_started"),
                                  (EventKind.WAVE_STARTED, "wave_started")):
                    timings[key].append(1000 * (watch.wait(sha, kind) - started))
                service.wait_idle(daemon, 60)
    finally:
        daemon.stop(30)
    return timings


@contextmanager
def _endpoint(daemon: service.Daemon, web: bool) -> Iterator[str]:
    if web:
        yield f"http://{daemon.config.listen}"
    else:
        with stand_in_server(daemon) as base:
            yield base


def report(timings: dict[str, list[float]], web: bool) -> None:
    carrier = "reconciler.web.server" if web else "stand-in HTTP server + Daemon.trigger"
    print(f"webhook carried by: {carrier}")
    for key, values in timings.items():
        ordered = sorted(values)
        p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
        print(f"push webhook -> {key}: median {statistics.median(values):.1f} ms, "
              f"p90 {p90:.1f} ms, min {ordered[0]:.1f} ms, max {ordered[-1]:.1f} ms "
              f"({len(values)} rounds)")
    verdict = "meets" if statistics.median(timings["deploy_started"]) < 200 else "misses"
    print(f"target: median under 200 ms to rollout start: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    os.environ[SECRET_ENV] = SECRET
    web = importlib.util.find_spec("reconciler.web") is not None and \
        importlib.util.find_spec("reconciler.web.server") is not None
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        report(measure(args.rounds, web, Path(tmp)), web)
    return 0

if __name__ == "__main__":
    sys.exit(main())
