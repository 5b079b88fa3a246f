"""A deploy succeeds although the forge is down: reporters cannot stop it."""

from __future__ import annotations

from pathlib import Path

from reconciler.engine import Engine, EngineSettings
from reconciler.events import Event, EventKind
from reconciler.reporters import CommitStatus, Context, State, github, http
from tests.pulls import staterepo
from tests.reporters.conftest import Forge, Reply, Sleeps


def test_sync_succeeds_while_every_status_post_fails(
    tmp_path: Path, forge: Forge, sleeps: Sleeps
) -> None:
    forge.default = Reply(status=502, body=b"bad gateway")
    repo = staterepo.create(tmp_path)
    client = http.Client(policy=http.RetryPolicy(attempts=3, base_delay=0.01), sleep=sleeps)
    stats = http.ReportStats()
    safe = http.SafeReporter(github.GitHubReporter(api_url=forge.url, repo="org/state",
                                                   token="t0ken", client=client), "github", stats)

    def report(event: Event) -> None:
        if event.kind in (EventKind.DEPLOY_STARTED, EventKind.WAVE_STARTED,
                          EventKind.DEPLOY_FINISHED):
            state = State.PENDING if event.kind is not EventKind.DEPLOY_FINISHED else (
                State.SUCCESS if event.status == "success" else State.FAILURE)
            safe.report(CommitStatus.make(sha=event.revision, context=Context.DEPLOY,
                                          state=state, description=event.kind.value))

    engine = Engine(EngineSettings(repo=str(repo.path), rev="main", data_dir=tmp_path / "data"))
    engine.subscribe(report)
    try:
        result = engine.sync("main")
    finally:
        engine.close()

    assert result.result == "success", result.message
    assert (repo.root / "etc/web/a.conf").read_text() == "a=1\n"
    assert stats.failed("github") >= 2  # started and finished, at least
    assert len(forge.requests) == 3 * stats.failed("github")  # every post was retried
    assert stats.snapshot()["posted"] == {}
