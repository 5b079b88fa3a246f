"""/metrics parsed as Prometheus parses it: counters and histograms move with real deploys."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from reconciler.events import Event, EventKind
from reconciler.web.metrics import Metrics
from tests.web.conftest import Web


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_move_after_a_deploy_and_a_failed_one(web: Web) -> None:
    before = samples(web.get("/metrics").text)
    assert ("reconciler_deploys_total", (("result", "success"),)) not in before
    assert before[("reconciler_rollout_duration_seconds_count", ())] == 0

    ok = web.engine.sync()
    assert ok.result == "success"
    after = samples(web.get("/metrics").text)
    assert after[("reconciler_deploys_total", (("result", "success"),))] == 1
    assert after[("reconciler_rollout_duration_seconds_count", ())] == 1
    assert after[("reconciler_wave_duration_seconds_count", ())] == 2  # waves 0 and 1
    synced = after[("reconciler_last_successful_sync_timestamp_seconds", (("target", "laptop"),))]
    record = web.engine.history.deploy(ok.deploy_id)
    assert record is not None and record.finished is not None
    assert abs(synced - record.finished) < 1

    # A health check that fails: one more failure counter, a failed deploy.
    web.repo.write("apps/web/app.yaml", "target: laptop\nwave: 1\nhealth:\n"
                   "  - command: \"false\"\n    retries: 0\n    interval: 0.05s\n    timeout: 2s\n")
    web.repo.release("2.0\n", "other", "web 2.0 with a failing check")
    failed = web.engine.sync()
    assert failed.result == "failure"
    last = samples(web.get("/metrics").text)
    assert last[("reconciler_deploys_total", (("result", "failure"),))] == 1
    assert last[("reconciler_deploys_total", (("result", "success"),))] == 1
    failures = last[("reconciler_health_check_failures_total",
                     (("app", "web"), ("target", "laptop")))]
    assert failures >= 1
    assert last[("reconciler_rollout_duration_seconds_count", ())] == 2


def test_pulled_gauges_and_a_registry_per_server() -> None:
    drifted = {"laptop": 3.0}
    one = Metrics(drifted=lambda: drifted, reporter_errors=lambda: {"github": 2.0})
    two = Metrics()
    for kind, ts in ((EventKind.DEPLOY_STARTED, 10.0), (EventKind.DEPLOY_FINISHED, 70.0)):
        one.observe(Event(kind=kind, deploy_id=1, revision="r", status="success", timestamp=ts))
    first = samples(one.render().decode())
    assert first[("reconciler_drifted_resources", (("target", "laptop"),))] == 3
    assert first[("reconciler_reporter_errors_total", (("reporter", "github"),))] == 2
    assert first[("reconciler_rollout_duration_seconds_sum", ())] == 60
    assert ("reconciler_deploys_total", (("result", "success"),)) not in samples(
        two.render().decode())


def test_one_registry_renders_the_process_counters_it_includes() -> None:
    process = CollectorRegistry()
    rollouts = Counter("reconciler_daemon_rollouts", "Deploys the daemon ran", ["result"],
                       registry=process)
    rollouts.labels(result="success").inc()
    one, two = Metrics(include=process), Metrics(include=process)  # no name collides
    rollouts.labels(result="success").inc()  # read at scrape time, not copied at start
    for metrics in (one, two):
        found = samples(metrics.render().decode())
        assert found[("reconciler_daemon_rollouts_total", (("result", "success"),))] == 2
        assert ("reconciler_rollout_duration_seconds_count", ()) in found
    assert ("reconciler_daemon_rollouts_total", (("result", "success"),)) not in samples(
        Metrics().render().decode())
