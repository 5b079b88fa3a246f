"""`history:` in the daemon config: a PostgreSQL URL without its password, and
the password from a file or an environment variable, checked against the real
server (scram-sha-256 over TCP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon.config import missing_secrets, parse_config
from reconciler.errors import ConfigError, HistoryError
from reconciler.history import HistorySettings, open_history
from tests.support.postgres import PASSWORD


def parse(history: str, tmp_path: Path) -> HistorySettings:
    text = f"repo: /srv/state\nhistory:\n{history}"
    return parse_config(text, source="daemon.yaml", base_dir=tmp_path).history


def test_no_history_section_means_sqlite_under_data_dir(tmp_path: Path) -> None:
    assert parse_config("repo: /srv/state\n").history == HistorySettings()


def test_a_postgresql_url_with_a_password_file_or_variable_parses(tmp_path: Path) -> None:
    settings = parse("  url: postgresql://deploy@db.example.com:5432/reconciler\n"
                     "  password_file: secrets/pg\n  pool_size: 8\n  timeout: 3s\n", tmp_path)
    assert settings == HistorySettings(url="postgresql://deploy@db.example.com:5432/reconciler",
                                       password_file=tmp_path / "secrets/pg", pool_size=8,
                                       timeout=3.0)
    by_env = parse("  url: postgres://deploy@db/reconciler\n  password_env: PGPASS\n", tmp_path)
    assert by_env.password_env == "PGPASS"
    config = parse_config("repo: /srv/state\nhistory: {url: 'postgres://d@db/r', "
                          "password_env: PGPASS}\n", source="daemon.yaml")
    assert missing_secrets(config, {}) == ["daemon.yaml: environment variable PGPASS is not set"]


@pytest.mark.parametrize(("history", "line", "message"), [
    ("  url: postgresql://deploy:s3cret@db/reconciler\n", 3,
     "url must not contain a password; name a password_file or password_env instead"),
    ("  url: postgresql://db/reconciler?sslmode=require&password=s3cret\n", 3,
     "url must not contain a password"),
    ("  url: mysql://deploy@db/reconciler\n", 3, "url must be a postgresql:// URL"),
    ("  url: postgresql://d@db/r\n  pasword_env: X\n", 4,
     "unknown key 'pasword_env' (did you mean 'password_env'?)"),
    ("  url: postgresql://d@db/r\n  pool_size: 0\n", 4, "pool_size must be a whole number"),
])
def test_a_bad_history_section_names_its_line(history: str, line: int, message: str,
                                              tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(history, tmp_path)
    assert str(raised.value).startswith(f"daemon.yaml:{line}: ")
    assert message in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_both_password_sources_or_a_password_without_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set password_file or password_env, not both"):
        parse("  url: postgresql://d@db/r\n  password_file: p\n  password_env: P\n", tmp_path)
    with pytest.raises(ConfigError, match="a password needs a url"):
        parse("  password_env: P\n", tmp_path)


def test_the_password_comes_from_a_file(postgres_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text(PASSWORD + "\n")  # as `kubectl create secret --from-file` keeps it
    history = open_history(HistorySettings(url=postgres_url, password_file=secret), tmp_path)
    try:
        assert history.start_deploy("abc", "cli") >= 1
    finally:
        history.close()


def test_the_password_comes_from_an_environment_variable(postgres_url: str,
                                                         tmp_path: Path) -> None:
    settings = HistorySettings(url=postgres_url, password_env="PG_PASSWORD")
    history = open_history(settings, tmp_path, environ={"PG_PASSWORD": PASSWORD})
    try:
        assert history.deploys() == []
    finally:
        history.close()
    with pytest.raises(HistoryError, match="the history password variable PG_PASSWORD is not "
                                           "set"):
        open_history(settings, tmp_path, environ={})


def test_a_wrong_or_unreadable_password_is_one_clear_line(postgres_url: str,
                                                          tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    with pytest.raises(HistoryError) as raised:
        open_history(HistorySettings(url=postgres_url, password_file=wrong, timeout=3),
                     tmp_path)
    text = str(raised.value)
    assert text.startswith(f"cannot connect to the history {postgres_url}: ")
    assert "password authentication failed" in text and "\n" not in text
    assert "not-the-password" not in text
    with pytest.raises(HistoryError, match="cannot read the history password file"):
        open_history(HistorySettings(url=postgres_url, password_file=tmp_path / "missing"),
                     tmp_path)


def test_a_daemon_whose_history_server_is_unreachable_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "daemon.yaml"
    config.write_text(f"repo: {tmp_path / 'state'}\nlisten: off\nhistory:\n"
                      f"  url: postgresql://reconciler@127.0.0.1:{port}/reconciler\n"
                      "  password_env: HISTORY_PW\n  timeout: 1s\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--config", str(config), "--data-dir",
         str(tmp_path / "data")], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HISTORY_PW": "x"})
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"reconciler run: cannot connect to the history "
                           f"postgresql://reconciler@127.0.0.1:{port}/reconciler: ")
    assert "refused" in line
