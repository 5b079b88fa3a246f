"""PostgreSQL down for a while: every history call raises one clear HistoryError
within its timeout (what the daemon handles), and the same History works again,
with everything it had recorded, once the server is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from reconciler.errors import HistoryError
from reconciler.history import History, HistorySettings, open_history
from tests.support.postgres import PASSWORD, PostgresServer, start_postgres


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the session's would fail other tests."""
    server = start_postgres()
    yield server
    server.remove()


def test_a_server_that_goes_away_and_comes_back(own_server: PostgresServer,
                                                tmp_path: object) -> None:
    url = own_server.url()
    settings = HistorySettings(url=url, password_env="PGPW", timeout=2.0)
    history: History = open_history(settings, tmp_path, environ={"PGPW": PASSWORD})  # type: ignore[arg-type]
    try:
        before = history.start_deploy("abc", "poll")
        history.finish_deploy(before, "success", "deployed")

        own_server.stop()
        for call, verb in ((history.deploys, "read"),
                           (lambda: history.start_deploy("def", "poll"), "write to")):
            started = time.monotonic()
            with pytest.raises(HistoryError) as raised:
                call()
            assert time.monotonic() - started < 10  # bounded by the timeout, not hung
            text = str(raised.value)
            assert text.startswith(f"cannot {verb} the history {url}: "), text
            assert "refused" in text or "failed" in text, text
            assert "\n" not in text and PASSWORD not in text

        own_server.start()
        assert [(d.id, d.result) for d in history.deploys()] == [(before, "success")]
        after = history.start_deploy("def", "poll")
        assert after > before
        assert [d.revision for d in history.running()] == ["def"]
    finally:
        history.close()
