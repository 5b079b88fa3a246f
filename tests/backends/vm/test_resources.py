"""Pure path and form rules: nothing escapes the root, forms carry no content."""

from __future__ import annotations

import pytest

from backends.vm import resources as res
from reconciler.errors import BackendError
from tests.backends.vm.conftest import resource


@pytest.mark.parametrize("path", ["/../../etc/passwd", "../x", "/a/../../b", "/a/b/../../.."])
def test_paths_that_leave_the_root_are_refused(path: str) -> None:
    with pytest.raises(BackendError, match=r"web-1: path .* escapes the root"):
        res.under_root("/srv/root", path, "web-1")


def test_paths_join_under_the_root() -> None:
    assert res.under_root("/srv/root", "/etc/app.conf", "h") == "/srv/root/etc/app.conf"
    assert res.under_root("/srv/root", "/a/./b/../c", "h") == "/srv/root/a/c"
    assert res.under_root("/", "/etc/x", "h") == "/etc/x"
    with pytest.raises(BackendError, match="newline"):
        res.under_root("/srv", "/a\nb", "h")


def test_symlink_targets_cannot_escape_either() -> None:
    assert res.link_target("/r", "/r/a/l", "/etc/x", "h") == "/r/etc/x"
    assert res.link_target("/r", "/r/a/l", "../b", "h") == "../b"
    with pytest.raises(BackendError, match="escapes the root"):
        res.link_target("/r", "/r/a/l", "../../../etc/passwd", "h")


@pytest.mark.parametrize(("given", "mode"), [("0644", "0644"), ("644", "0644"), (644, "0644"),
                                             ("0o755", "0755"), (4755, "4755")])
def test_modes_normalise_to_four_octal_digits(given: object, mode: str) -> None:
    assert res.normalize_mode(given, "x") == mode


@pytest.mark.parametrize("given", ["rw-r--r--", "0999", 99999, True, ""])
def test_bad_modes_are_refused(given: object) -> None:
    with pytest.raises(BackendError, match="mode"):
        res.normalize_mode(given, "apps/web/files.yaml:3")


def test_host_names_and_ports() -> None:
    assert res.host_name("127.0.0.2:2222") == "127.0.0.2"
    assert res.host_port("127.0.0.2:2222", 22) == 2222
    assert res.host_name("web-1") == "web-1"
    assert res.host_port("web-1", 22) == 22
    assert res.host_name("[::1]:2200") == "::1"
    assert res.host_port("[::1]:2200", 22) == 2200


def test_desired_forms_hold_a_hash_never_the_content() -> None:
    secret = resource("File", "/etc/token", content="hunter2", mode="0600", secret=True)
    form = res.desired_form(secret, "/", "h")
    assert form == {"type": "file", "sha256": res.sha256(b"hunter2"), "mode": "0600"}
    assert "hunter2" not in repr(form)
    svc = resource("Service", "web", unit="web.service", state="stopped")
    assert res.desired_form(svc, "/", "h") == {"state": "stopped"}
    link = resource("Symlink", "/opt/current", target="/opt/{host}/v2")
    assert res.desired_form(link, "/r", "web-1") == {
        "type": "symlink", "target": "/r/opt/web-1/v2"}
