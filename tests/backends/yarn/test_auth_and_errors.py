"""Authentication (user.name, bearer token) and the wording of API errors, against
the real ResourceManager; the faults it cannot make (down, 5xx, slow, a bearer
token check) come from the proxy in front of it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from backends.base import Backend
from reconciler.errors import ApiError, BackendError
from reconciler.model import Action, Change
from tests.backends.yarn.helpers import SVC, app_of, changes, resource, service_spec
from tests.support.yarn_cluster import RmClient
from tests.support.yarn_proxy import YarnProxy

MakeBackend = Callable[..., Backend]
Names = Callable[[str], str]
TOKEN = "s3cr3t-token-value"


def test_without_user_the_rm_answers_401_and_the_error_says_to_set_user(
    make_backend: MakeBackend, names: Names
) -> None:
    # The RM runs simple auth with anonymous access off: user.name is required.
    backend = make_backend(user=None)

    with pytest.raises(ApiError) as caught:
        backend.read_live([resource(service_spec(names("anon")))], {})

    assert caught.value.status == 401
    assert "set the target's user" in str(caught.value)


def test_bearer_token_from_a_file_and_user_name_are_sent(
    yarn: YarnProxy, rm: RmClient, make_backend: MakeBackend, tmp_path: Path, names: Names
) -> None:
    yarn.token = TOKEN  # an authenticating proxy in front of the RM
    token_file = tmp_path / "yarn-token"
    token_file.write_text(TOKEN + "\n")
    backend = make_backend(token_file=str(token_file))
    name = names("tokened")
    app = app_of(service_spec(name, state="STOPPED"))

    backend.apply(app, changes(backend.read_live(app.resources, {}), app))

    assert rm.service(name) is not None
    assert {r.authorization for r in yarn.requests} == {f"Bearer {TOKEN}"}
    assert yarn.users() == {"deploy"}


def test_bearer_token_from_the_environment(
    yarn: YarnProxy, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch, names: Names
) -> None:
    yarn.token = TOKEN
    monkeypatch.setenv("YARN_TOKEN", TOKEN)
    backend = make_backend(token_env="YARN_TOKEN")

    view = backend.read_live([resource(service_spec(names("env")))], {})

    assert view.live == {}
    assert yarn.requests and {r.authorization for r in yarn.requests} == {f"Bearer {TOKEN}"}


def test_missing_token_is_a_clear_401_error(
    yarn: YarnProxy, make_backend: MakeBackend
) -> None:
    yarn.token = TOKEN
    backend = make_backend()

    with pytest.raises(ApiError) as caught:
        backend.read_live([resource(service_spec())], {})

    assert caught.value.status == 401
    message = str(caught.value)
    assert "HTTP 401" in message and "token" in message and "analytics" in message
    assert TOKEN not in message


def test_a_wrong_token_never_appears_in_the_error(
    yarn: YarnProxy, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    yarn.token = TOKEN
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
    rm: RmClient, make_backend: MakeBackend, names: Names
) -> None:
    name = names("taken")
    rm.create(service_spec(name, state="STOPPED"))
    backend = make_backend()
    r = resource(service_spec(name, state="STOPPED"))
    create = Change(id=r.id, app="batch", target="analytics", action=Action.CREATE, resource=r)

    with pytest.raises(ApiError) as caught:
        backend.apply(app_of(service_spec(name, state="STOPPED")), [create])

    # Hadoop's ApiServer answers a taken name with 500, not 409.
    assert caught.value.status == 500
    assert f"POST service {name}: HTTP 500" in str(caught.value)
    assert f"Service name {name} is already taken" in str(caught.value)


def test_an_invalid_name_is_the_rms_400_naming_the_service(
    rm: RmClient, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    body = service_spec("Bad_Name", state="STOPPED")
    app = app_of(body)

    with pytest.raises(ApiError) as caught:
        backend.apply(app, changes(backend.read_live(app.resources, {}), app))

    assert caught.value.status == 400
    assert "can not use '_'" in str(caught.value)
    assert rm.service("Bad_Name") is None


def test_rm_down_is_a_backend_error_naming_the_url_and_later_reads_work(
    yarn: YarnProxy, make_backend: MakeBackend, names: Names
) -> None:
    backend = make_backend()
    app = app_of(service_spec(names("down")))
    yarn.down()

    with pytest.raises(BackendError, match="cannot reach") as caught:
        backend.read_live(app.resources, {})
    assert yarn.url in str(caught.value)

    yarn.up()
    assert backend.read_live(app.resources, {}).live == {}


def test_a_5xx_answer_is_an_api_error_with_the_status(
    yarn: YarnProxy, make_backend: MakeBackend, names: Names
) -> None:
    name = names("flaky")
    yarn.fail(503, times=1, path_prefix=f"{SVC}/{name}", message="RM is in safe mode")
    backend = make_backend()

    with pytest.raises(ApiError) as caught:
        backend.health(app_of(service_spec(name)), [""])

    assert caught.value.status == 503
    assert "HTTP 503: RM is in safe mode" in str(caught.value)
    assert backend.health(app_of(service_spec(name)), [""]).message.endswith("does not exist")


def test_a_slow_rm_times_out_per_request(
    yarn: YarnProxy, make_backend: MakeBackend, names: Names
) -> None:
    yarn.slow(2.0)
    backend = make_backend(timeout=0.5)

    with pytest.raises(BackendError, match="timed out"):
        backend.read_live([resource(service_spec(names("slow")))], {})


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
    yarn: YarnProxy, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A standby RM redirects to the active one; the token must not follow."""
    monkeypatch.setenv("YARN_TOKEN", TOKEN)

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", yarn.url + self.path)
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
    assert yarn.requests == []


def test_a_get_that_met_a_half_written_service_file_is_asked_again(
    yarn: YarnProxy, make_backend: MakeBackend, names: Names
) -> None:
    # The ResourceManager answers 500 "No content to map due to end-of-input"
    # when it reads a service's definition while it is being written (seen on a
    # loaded machine); the next read finds it whole. Other 5xx stay errors.
    name = names("torn")
    yarn.fail(500, times=2, method="GET", path_prefix=f"{SVC}/{name}",
              message="No content to map due to end-of-input at [Source: x; line: 1]")
    backend = make_backend()
    yarn.reset()
    assert backend.health(app_of(service_spec(name)), [""]).message.endswith("does not exist")
    assert yarn.count("GET") >= 3  # two torn answers, then the real one
