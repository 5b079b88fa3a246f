"""Authentication (user.name, bearer token) and the wording of API errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from backends.base import Backend
from reconciler.errors import ApiError, BackendError
from reconciler.model import Action, Change
from tests.backends.yarn.helpers import app_of, changes, resource, service_spec
from tests.support.yarn_server import YarnServer

MakeBackend = Callable[..., Backend]
TOKEN = "s3cr3t-token-value"


def test_bearer_token_from_a_file_and_user_name_are_sent(
    yarn_server: YarnServer, make_backend: MakeBackend, tmp_path: Path
) -> None:
    yarn_server.token = TOKEN
    yarn_server.require_user = True
    token_file = tmp_path / "yarn-token"
    token_file.write_text(TOKEN + "\n")
    backend = make_backend(token_file=str(token_file))
    app = app_of(service_spec())

    backend.apply(app, changes(backend.read_live(app.resources, {}), app))

    assert yarn_server.service("sleeper") is not None
    assert set(yarn_server.authorizations) == {f"Bearer {TOKEN}"}
    assert set(yarn_server.users) == {"deploy"}


def test_bearer_token_from_the_environment(
    yarn_server: YarnServer, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    yarn_server.token = TOKEN
    monkeypatch.setenv("YARN_TOKEN", TOKEN)
    backend = make_backend(token_env="YARN_TOKEN")

    view = backend.read_live([resource(service_spec())], {})

    assert view.live == {}
    assert yarn_server.authorizations and set(yarn_server.authorizations) == {f"Bearer {TOKEN}"}


def test_missing_token_is_a_clear_401_error(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    yarn_server.token = TOKEN
    backend = make_backend()

    with pytest.raises(ApiError) as caught:
        backend.read_live([resource(service_spec())], {})

    assert caught.value.status == 401
    message = str(caught.value)
    assert "HTTP 401" in message and "token" in message and "analytics" in message
    assert TOKEN not in message


def test_a_wrong_token_never_appears_in_the_error(
    yarn_server: YarnServer, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    yarn_server.token = TOKEN
    monkeypatch.setenv("YARN_TOKEN", "wrong-token-do-not-print")
    backend = make_backend(token_env="YARN_TOKEN")

    with pytest.raises(ApiError) as caught:
        backend.health(app_of(service_spec()), [""])

    assert caught.value.status == 401
    assert "wrong-token-do-not-print" not in str(caught.value)
    assert "wrong-token-do-not-print" not in repr(caught.value.args)


def test_unset_token_env_fails_at_open_naming_the_variable(
    make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_YARN_TOKEN", raising=False)
    with pytest.raises(BackendError, match="NO_SUCH_YARN_TOKEN is not set"):
        make_backend(token_env="NO_SUCH_YARN_TOKEN")


def test_unreadable_token_file_fails_at_open(make_backend: MakeBackend, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="cannot read token_file"):
        make_backend(token_file=str(tmp_path / "absent"))


def test_create_of_a_taken_name_names_the_service_and_status(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    yarn_server.seed(service_spec())
    backend = make_backend()
    r = resource(service_spec())
    create = Change(id=r.id, app="batch", target="analytics", action=Action.CREATE, resource=r)

    with pytest.raises(ApiError) as caught:
        backend.apply(app_of(service_spec()), [create])

    assert caught.value.status == 500
    assert "service sleeper" in str(caught.value)
    assert "HTTP 500" in str(caught.value)
    assert "already taken" in str(caught.value)


def test_invalid_spec_is_a_400_naming_the_service(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    body = {"name": "broken", "components": [{"name": "c", "number_of_containers": 1}]}
    app = app_of(body)

    with pytest.raises(ApiError) as caught:
        backend.apply(app, changes(backend.read_live(app.resources, {}), app))

    assert caught.value.status == 400
    assert "POST service broken: HTTP 400" in str(caught.value)
    assert yarn_server.service("broken") is None


def test_unreachable_resourcemanager_is_a_backend_error(
    yarn_server: YarnServer, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    url = yarn_server.url
    yarn_server.stop()

    with pytest.raises(BackendError, match="cannot reach") as caught:
        backend.read_live([resource(service_spec())], {})
    assert url in str(caught.value)


def test_bad_url_option_is_refused(make_backend: MakeBackend) -> None:
    with pytest.raises(BackendError, match="url must be an http"):
        make_backend(url="rm.example.com:8088")


def test_duration_options_accept_units(make_backend: MakeBackend) -> None:
    from backends.yarn.backend import YarnBackend

    backend = make_backend(timeout="1500ms", poll_interval="2s", settle_timeout="5m")
    assert isinstance(backend, YarnBackend)
    opts = backend.options
    assert (opts.timeout, opts.poll_interval, opts.settle_timeout) == (1.5, 2.0, 300.0)


def test_redirects_are_not_followed_so_the_token_stays_with_the_url(
    yarn_server: YarnServer, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A standby RM redirects to the active one; the token must not follow."""
    monkeypatch.setenv("YARN_TOKEN", TOKEN)

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", yarn_server.url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    standby = HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=standby.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = standby.server_address[1]
        backend = make_backend(url=f"http://127.0.0.1:{port}", token_env="YARN_TOKEN")
        with pytest.raises(ApiError, match=r"HTTP 307 .*active ResourceManager") as caught:
            backend.health(app_of(service_spec()), [""])
        assert caught.value.status == 307
        assert TOKEN not in str(caught.value)
    finally:
        standby.shutdown()
        standby.server_close()
    assert yarn_server.requests == []
