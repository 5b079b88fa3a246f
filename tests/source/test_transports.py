"""Reading a commit over every transport the mirror accepts, with real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source import Credentials, Mirror
from tests.source.conftest import STATE_FILES, TOKEN, Origin
from tests.source.servers import GitDaemon, GitHttpServer, free_port
from tests.support.sshd import SshFleet


def assert_reads_main(mirror: Mirror, origin: Origin) -> None:
    mirror.fetch()
    sha = mirror.resolve("main")
    assert sha == origin.run("rev-parse", "main")
    tree = mirror.tree(sha)
    entry = next(e for e in tree.entries() if e.path == "apps/web/app.yaml")
    assert tree.read(entry) == STATE_FILES["apps/web/app.yaml"]


def test_local_path(origin: Origin, data_dir: Path) -> None:
    assert_reads_main(Mirror(str(origin.bare), data_dir), origin)


def test_relative_local_path_is_made_absolute(
    origin: Origin, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(origin.bare.parent)
    mirror = Mirror("origin.git", data_dir)
    assert mirror.url == str(origin.bare)
    assert_reads_main(mirror, origin)


def test_file_url(origin: Origin, data_dir: Path) -> None:
    assert_reads_main(Mirror(origin.bare.as_uri(), data_dir), origin)


def test_git_daemon(origin: Origin, data_dir: Path, git_daemon: GitDaemon) -> None:
    assert_reads_main(Mirror(git_daemon.url("origin.git"), data_dir), origin)


def test_https_token_from_file(
    origin: Origin, data_dir: Path, git_http: GitHttpServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    mirror = Mirror(git_http.url("origin.git"), data_dir, Credentials(token_file=token_file))
    assert_reads_main(mirror, origin)


def test_https_token_from_environment(
    origin: Origin, data_dir: Path, git_http: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_TOKEN", TOKEN)
    mirror = Mirror(git_http.url("origin.git"), data_dir, Credentials(token_env="STATE_TOKEN"))
    assert_reads_main(mirror, origin)


def test_https_wrong_token_is_one_clear_line_without_the_token(
    data_dir: Path, git_http: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-token-77e1"
    monkeypatch.setenv("STATE_TOKEN", wrong)
    mirror = Mirror(git_http.url("origin.git"), data_dir, Credentials(token_env="STATE_TOKEN"))
    with pytest.raises(SourceError) as caught:
        mirror.fetch()
    message = str(caught.value)
    assert message == f"authentication failed for {git_http.url('origin.git')}"
    assert wrong not in message and TOKEN not in message


# Trusting a certificate is process-wide in libgit2 and cannot be undone (OpenSSL
# only adds locations), so the trusting side runs in its own interpreter.
TRUSTING_FETCH = """
import sys
from pathlib import Path
import pygit2
from reconciler.source import Credentials, Mirror
pygit2.settings.set_ssl_cert_locations(sys.argv[1], None)
mirror = Mirror(sys.argv[2], Path(sys.argv[3]), Credentials(token_env="STATE_TOKEN"))
mirror.fetch()
sha = mirror.resolve("main")
tree = mirror.tree(sha)
entry = next(e for e in tree.entries() if e.path == "apps/web/app.yaml")
print(sha, tree.read(entry).hex())
"""


def test_https_over_tls_with_a_token(
    origin: Origin, data_dir: Path, git_https: GitHttpServer, certificate: tuple[Path, Path]
) -> None:
    url = git_https.url("origin.git")
    assert url.startswith("https://127.0.0.1:")
    done = subprocess.run(
        [sys.executable, "-c", TRUSTING_FETCH, str(certificate[0]), url, str(data_dir)],
        env={**os.environ, "STATE_TOKEN": TOKEN}, cwd=Path(__file__).parents[2],
        capture_output=True, text=True, timeout=60, check=True,
    )
    sha, data = done.stdout.split()
    assert sha == origin.run("rev-parse", "main")
    assert bytes.fromhex(data) == STATE_FILES["apps/web/app.yaml"]


def test_https_untrusted_certificate_is_refused(
    data_dir: Path, git_https: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_TOKEN", TOKEN)
    mirror = Mirror(git_https.url("origin.git"), data_dir, Credentials(token_env="STATE_TOKEN"))
    with pytest.raises(SourceError) as caught:
        mirror.fetch()
    message = str(caught.value)
    assert message.startswith(f"cannot verify the identity of {git_https.url('origin.git')}: ")
    assert TOKEN not in message


def test_https_without_token_fails_authentication(data_dir: Path, git_http: GitHttpServer) -> None:
    with pytest.raises(SourceError, match=r"^authentication failed for http://127.0.0.1"):
        Mirror(git_http.url("origin.git"), data_dir).fetch()


def test_token_in_url_is_redacted_from_errors(data_dir: Path) -> None:
    port = free_port()  # nothing listens here
    mirror = Mirror(f"http://user:{TOKEN}@127.0.0.1:{port}/origin.git", data_dir)
    with pytest.raises(SourceError) as caught:
        mirror.fetch()
    message = str(caught.value)
    assert message.startswith(f"cannot fetch from http://user:***@127.0.0.1:{port}/origin.git: ")
    assert TOKEN not in message and "\n" not in message


def test_missing_token_environment_variable(data_dir: Path, git_http: GitHttpServer) -> None:
    creds = Credentials(token_env="RECONCILER_TEST_UNSET_VARIABLE")
    with pytest.raises(SourceError, match=r"^environment variable RECONCILER_TEST_UNSET_VARIABLE"):
        Mirror(git_http.url("origin.git"), data_dir, creds).fetch()


def test_unreachable_git_daemon(data_dir: Path) -> None:
    url = f"git://127.0.0.1:{free_port()}/nothing.git"
    with pytest.raises(SourceError) as caught:
        Mirror(url, data_dir).fetch()
    assert str(caught.value).startswith(f"cannot fetch from {url}: ")
    assert "\n" not in str(caught.value)


def test_missing_local_repository(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^cannot fetch from .*/absent.git: "):
        Mirror(str(tmp_path / "absent.git"), data_dir).fetch()


# --- ssh ---------------------------------------------------------------------


def ssh_url(fleet: SshFleet, repo: Path) -> str:
    host = fleet.hosts[0]
    return f"ssh://{fleet.user}@{host.address}:{host.port}{repo}"


def test_ssh_with_key_and_known_hosts(
    origin: Origin, data_dir: Path, ssh_fleet_factory: Callable[..., SshFleet]
) -> None:
    fleet = ssh_fleet_factory(1)
    creds = Credentials(ssh_key=fleet.identity_file, known_hosts=fleet.known_hosts)
    assert_reads_main(Mirror(ssh_url(fleet, origin.bare), data_dir, creds), origin)
    # The configured known_hosts, not the user's, is what was checked.
    copied = data_dir / "ssh-home" / ".ssh" / "known_hosts"
    assert copied.read_text() == fleet.known_hosts.read_text()


def test_ssh_unknown_host_key_is_refused(
    origin: Origin, data_dir: Path, ssh_fleet_factory: Callable[..., SshFleet], tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(1)
    # A known_hosts that lists the address with a different key, and an empty one.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other = tmp_path / "other_known_hosts"
    other.write_text(f"[{fleet.hosts[0].address}]:{fleet.hosts[0].port} "
                     + " ".join((tmp_path / "k.pub").read_text().split()[:2]) + "\n")
    for known_hosts in (other, tmp_path / "empty_known_hosts"):
        known_hosts.touch()
        creds = Credentials(ssh_key=fleet.identity_file, known_hosts=known_hosts)
        mirror = Mirror(ssh_url(fleet, origin.bare), data_dir, creds)
        with pytest.raises(SourceError, match=r"^cannot verify the identity of ssh://"):
            mirror.fetch()
        with pytest.raises(SourceError, match=r"has not been fetched yet|unknown revision"):
            mirror.resolve("main")


def test_ssh_wrong_key_fails_authentication(
    origin: Origin, data_dir: Path, ssh_fleet_factory: Callable[..., SshFleet]
) -> None:
    fleet = ssh_fleet_factory(1)
    stranger = ssh_fleet_factory(1)  # its key is not authorized on the first fleet
    creds = Credentials(ssh_key=stranger.identity_file, known_hosts=fleet.known_hosts)
    with pytest.raises(SourceError, match=r"^authentication failed for ssh://"):
        Mirror(ssh_url(fleet, origin.bare), data_dir, creds).fetch()


def test_ssh_key_without_public_key_file_and_url_without_user(
    origin: Origin, data_dir: Path, ssh_fleet_factory: Callable[..., SshFleet], tmp_path: Path
) -> None:
    fleet = ssh_fleet_factory(1)
    key = tmp_path / "only_private"
    key.write_bytes(fleet.identity_file.read_bytes())
    key.chmod(0o600)
    host = fleet.hosts[0]
    # Without a user in the URL the current user is asked for, as ssh does.
    url = f"ssh://{host.address}:{host.port}{origin.bare}"
    creds = Credentials(ssh_key=key, known_hosts=fleet.known_hosts)
    assert_reads_main(Mirror(url, data_dir, creds), origin)


def test_ssh_missing_key_file(origin: Origin, data_dir: Path, tmp_path: Path) -> None:
    creds = Credentials(ssh_key=tmp_path / "no_such_key", known_hosts=tmp_path / "kh")
    with pytest.raises(SourceError, match=r"^cannot read ssh key .*no_such_key$"):
        Mirror(f"ssh://127.0.0.1:1{origin.bare}", data_dir, creds).fetch()


def test_token_is_not_needed_for_local_mirrors(origin: Origin, data_dir: Path) -> None:
    creds = Credentials(token_env="RECONCILER_TEST_UNSET_VARIABLE")
    assert_reads_main(Mirror(str(origin.bare), data_dir, creds), origin)
