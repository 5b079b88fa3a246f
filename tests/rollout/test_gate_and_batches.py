"""The health gate with a fake clock, and host batching (both pure)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from backends.base import HealthReport
from reconciler.model import (
    Action,
    App,
    BatchSize,
    Change,
    CheckKind,
    HealthCheck,
    HealthStatus,
    Location,
    ResourceId,
)
from reconciler.rollout import gate
from reconciler.rollout.batches import batches, hosts_in_order, split


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _scripted(answers: list[dict[str, HealthStatus]]):  # type: ignore[no-untyped-def]
    def probe(hosts: Sequence[str]) -> HealthReport:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return HealthReport(status=HealthStatus.UNKNOWN,
                            hosts={h: answer.get(h, HealthStatus.HEALTHY) for h in hosts})
    return probe


def test_the_gate_waits_for_progressing_hosts_with_backoff() -> None:
    clock = Clock()
    probe = _scripted([{"a": HealthStatus.PROGRESSING}] * 3 + [{}])
    result = gate.wait_healthy(probe, ["a", "b"], gate.GatePolicy(timeout=10, interval=1),
                               clock=clock, sleep=clock.sleep)
    assert result.healthy and result.probes == 4
    assert clock.sleeps == [1, 1.5, 2.25]


def test_the_gate_times_out_at_the_app_timeout() -> None:
    clock = Clock()
    probe = _scripted([{"b": HealthStatus.PROGRESSING}])
    result = gate.wait_healthy(probe, ["a", "b"], gate.GatePolicy(timeout=3, interval=1),
                               clock=clock, sleep=clock.sleep)
    assert result.failed == ("b",) and result.passed == ("a",)
    assert "timed out after 3s" in result.message
    assert clock.now == 3


def test_a_degraded_host_fails_after_its_retries() -> None:
    clock = Clock()
    check = HealthCheck(kind=CheckKind.COMMAND, spec={"run": "true"}, retries=2, interval=0.05,
                        location=Location(file="x"))
    policy = gate.GatePolicy.for_app(
        App(name="web", target="t", health=(check,), timeout=60, location=Location(file="x")))
    assert (policy.interval, policy.failure_threshold) == (0.05, 3)
    probe = _scripted([{"a": HealthStatus.DEGRADED}])
    result = gate.wait_healthy(probe, ["a"], policy, clock=clock, sleep=clock.sleep)
    assert result.failed == ("a",) and result.probes == 3
    assert clock.now < 1


def test_a_probe_that_raises_counts_as_degraded() -> None:
    from reconciler.errors import TransportError

    def probe(hosts: Sequence[str]) -> HealthReport:
        raise TransportError("connection refused")

    clock = Clock()
    result = gate.wait_healthy(probe, ["a"], gate.GatePolicy(timeout=60, failure_threshold=2),
                               clock=clock, sleep=clock.sleep)
    assert result.failed == ("a",) and result.message == "connection refused"


def _change(host: str, name: str = "/f") -> Change:
    return Change(id=ResourceId(kind="File", name=name), app="a", target="t",
                  action=Action.CREATE, host=host)


def test_batches_follow_fleet_order_and_keep_plan_order_per_host() -> None:
    changes = [_change("c", "/1"), _change("a", "/1"), _change("b", "/2"), _change("a", "/2")]
    out = batches(changes, BatchSize(count=2), fleet=["a", "b", "c"])
    assert [b.hosts for b in out] == [("a", "b"), ("c",)]
    assert [(c.host, c.id.name) for c in out[0].changes] == [("a", "/1"), ("b", "/2"),
                                                             ("a", "/2")]


def test_hosts_to_verify_are_batched_without_changes() -> None:
    out = batches([_change("b")], BatchSize(count=1), fleet=["a", "b"], verify=["a"])
    assert [(b.hosts, len(b.changes)) for b in out] == [(("a",), 0), (("b",), 1)]


@given(st.lists(st.text(min_size=1, max_size=3), unique=True, max_size=30),
       st.integers(min_value=1, max_value=100))
def test_split_covers_every_host_once_in_order(hosts: list[str], percent: int) -> None:
    parts = split(hosts, BatchSize(percent=percent))
    assert [h for part in parts for h in part] == hosts
    if parts:
        assert len({len(p) for p in parts[:-1]}) <= 1
        assert len(parts[-1]) <= len(parts[0])


def test_hosts_in_order_puts_unknown_hosts_last() -> None:
    assert hosts_in_order(["z", "b", "a", "b"], ["a", "b"]) == ("a", "b", "z")
