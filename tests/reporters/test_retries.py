"""Retries on 5xx, network failures and rate limits; never forever, never loud with secrets."""

from __future__ import annotations

import logging
import time

import pytest

from reconciler.reporters import github, http
from tests.reporters.conftest import Forge, Reply, Sleeps, Status

TOKEN = "ghp_another-s3cr3t"


def reporter(forge: Forge, client: http.Client) -> github.GitHubReporter:
    return github.GitHubReporter(api_url=forge.url, repo="org/state", token=TOKEN, client=client)


def test_retries_after_a_502(forge: Forge, client: http.Client, sleeps: Sleeps) -> None:
    forge.replies.append(Reply(status=502, body=b"bad gateway"))
    reporter(forge, client).report(Status())
    assert len(forge.requests) == 2
    assert forge.requests[0].body == forge.requests[1].body
    assert sleeps.calls == [0.01]


def test_backoff_doubles_and_gives_up(forge: Forge, client: http.Client, sleeps: Sleeps) -> None:
    forge.default = Reply(status=503, body=b'{"message": "unavailable"}')
    with pytest.raises(http.ReporterError) as caught:
        reporter(forge, client).report(Status())
    assert len(forge.requests) == 4
    assert sleeps.calls == [0.01, 0.02, 0.04]
    assert "HTTP 503" in str(caught.value)
    assert "after 4 attempts" in str(caught.value)
    assert caught.value.status == 503


def test_retry_after_header_is_obeyed(forge: Forge, client: http.Client, sleeps: Sleeps) -> None:
    forge.replies.append(Reply(status=429, headers={"Retry-After": "3"}))
    reporter(forge, client).report(Status())
    assert len(forge.requests) == 2
    assert sleeps.calls == [3.0]


def test_github_secondary_rate_limit_403(
    forge: Forge, client: http.Client, sleeps: Sleeps
) -> None:
    forge.replies.append(Reply(status=403, headers={"Retry-After": "2"},
                               body=b'{"message": "secondary rate limit"}'))
    reporter(forge, client).report(Status())
    assert sleeps.calls == [2.0]
    assert len(forge.requests) == 2


def test_github_primary_rate_limit_waits_until_reset(forge: Forge, sleeps: Sleeps) -> None:
    now = 1_700_000_000.0
    client = http.Client(policy=http.RetryPolicy(attempts=3, base_delay=0.01, max_delay=60),
                         sleep=sleeps, clock=lambda: now)
    forge.replies.append(Reply(status=403, headers={
        "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 42)}))
    reporter(forge, client).report(Status())
    assert sleeps.calls == [42.0]


def test_rate_limit_longer_than_the_cap_is_not_waited_for(
    forge: Forge, client: http.Client, sleeps: Sleeps
) -> None:
    forge.default = Reply(status=429, headers={"Retry-After": "3600"})
    with pytest.raises(http.ReporterError, match="HTTP 429"):
        reporter(forge, client).report(Status())
    assert sleeps.calls == []
    assert len(forge.requests) == 1


def test_forbidden_without_rate_limit_is_not_retried(
    forge: Forge, client: http.Client, sleeps: Sleeps
) -> None:
    forge.default = Reply(status=403, body=b'{"message": "Resource not accessible"}')
    with pytest.raises(http.ReporterError, match="Resource not accessible"):
        reporter(forge, client).report(Status())
    assert len(forge.requests) == 1
    assert sleeps.calls == []


def test_connection_refused_is_retried_then_reported(sleeps: Sleeps) -> None:
    client = http.Client(policy=http.RetryPolicy(attempts=3, base_delay=0.01, timeout=2),
                         sleep=sleeps)
    dead = github.GitHubReporter(api_url="http://127.0.0.1:9", repo="o/r", token=TOKEN,
                                 client=client)
    with pytest.raises(http.ReporterError) as caught:
        dead.report(Status())
    assert sleeps.calls == [0.01, 0.02]
    assert TOKEN not in str(caught.value)


def test_error_messages_never_carry_the_token(forge: Forge, client: http.Client) -> None:
    # A provider that echoes the credential back must not leak it through us.
    echo = '{"message": "bad credentials ' + TOKEN + '"}'
    forge.default = Reply(status=401, body=echo.encode())
    with pytest.raises(http.ReporterError) as caught:
        reporter(forge, client).report(Status())
    assert TOKEN not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (500, {}, 0.5),
        (429, {}, 0.5),
        (429, {"retry-after": "7"}, 7.0),
        (429, {"ratelimit-remaining": "0", "ratelimit-reset": "1000010"}, 10.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000005"}, 5.0),
        (403, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1000005"}, None),
        (404, {}, None),
        (422, {}, None),
    ],
)
def test_retry_delay_table(status: int, headers: dict[str, str], expected: float | None) -> None:
    policy = http.RetryPolicy(attempts=5, base_delay=0.5, max_delay=30)
    response = http.Response(status=status, headers=headers)
    assert http.retry_delay(response, 1, policy, now=1_000_000.0) == expected


def test_retry_after_as_http_date() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:05 GMT"}
    moment = 1445412480.0  # 07:28:00
    assert http.rate_limit_wait(headers, moment) == pytest.approx(5.0)


def test_backoff_is_capped() -> None:
    policy = http.RetryPolicy(attempts=50, base_delay=1, max_delay=8)
    assert [http.backoff(n, policy) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


def test_safe_reporter_swallows_logs_and_counts(
    forge: Forge, client: http.Client, caplog: pytest.LogCaptureFixture
) -> None:
    forge.default = Reply(status=500, body=("boom " + TOKEN).encode())
    stats = http.ReportStats()
    safe = http.SafeReporter(reporter(forge, client), "github", stats)
    with caplog.at_level(logging.INFO):
        safe.report(Status())  # raises nothing
    assert stats.failed("github") == 1
    assert stats.snapshot() == {"posted": {}, "failed": {"github": 1}}
    assert "not posted" in caplog.text
    assert TOKEN not in caplog.text


def test_safe_reporter_counts_successes(forge: Forge, client: http.Client) -> None:
    stats = http.ReportStats()
    http.SafeReporter(reporter(forge, client), "github", stats).report(Status())
    assert stats.snapshot() == {"posted": {"github": 1}, "failed": {}}


def test_safe_reporter_hides_unexpected_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    class Leaky:
        def report(self, status: object) -> None:
            raise RuntimeError(f"Authorization: Bearer {TOKEN}")

    stats = http.ReportStats()
    http.SafeReporter(Leaky(), "leaky", stats).report(Status())
    assert stats.failed("leaky") == 1
    assert "RuntimeError" in caplog.text
    assert TOKEN not in caplog.text


def test_real_waits_stay_small_with_a_tiny_policy(forge: Forge) -> None:
    forge.replies.extend([Reply(status=502), Reply(status=502)])
    client = http.Client(policy=http.RetryPolicy(attempts=3, base_delay=0.005))
    started = time.monotonic()
    reporter(forge, client).report(Status())
    assert len(forge.requests) == 3
    assert time.monotonic() - started < 1.0
