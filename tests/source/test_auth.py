"""URL handling and secret hygiene: the pure parts of reconciler.source.auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source import Credentials, Mirror
from reconciler.source.auth import is_ssh, normalize_url, redact, scrub


@pytest.mark.parametrize(
    ("url", "ssh"),
    [
        ("ssh://git@example.com/org/state.git", True),
        ("git+ssh://example.com:2222/state.git", True),
        ("git@example.com:org/state.git", True),
        ("example.com:state.git", True),
        ("https://example.com/org/state.git", False),
        ("git://127.0.0.1/state.git", False),
        ("file:///srv/state.git", False),
        ("/srv/state.git", False),
    ],
)
def test_is_ssh(url: str, ssh: bool) -> None:
    assert is_ssh(url) is ssh


def test_normalize_keeps_urls_and_scp_like_and_makes_paths_absolute(tmp_path: Path) -> None:
    assert normalize_url("https://h/x.git") == "https://h/x.git"
    assert normalize_url("git@h:org/x.git") == "git@h:org/x.git"
    assert normalize_url(str(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")


def test_redact_hides_a_password_and_keeps_the_rest() -> None:
    assert redact("https://bot:tok3n@git.example.com/x.git") == "https://bot:***@git.example.com/x.git"
    assert redact("https://git.example.com/x.git") == "https://git.example.com/x.git"
    assert redact("git@h:org/x.git") == "git@h:org/x.git"


def test_scrub_makes_one_line_without_secrets() -> None:
    assert scrub("bad token tok3n\nat line 2", ("tok3n", "")) == "bad token *** at line 2"


def test_unreadable_token_file_names_the_file_not_the_content(tmp_path: Path) -> None:
    creds = Credentials(token_file=tmp_path / "missing-token")
    with pytest.raises(SourceError, match=r"^cannot read token file .*missing-token: "):
        creds.token()


def test_token_file_wins_and_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t").write_text("  abc \n")
    monkeypatch.setenv("T_ENV", "from-env")
    assert Credentials(token_file=tmp_path / "t", token_env="T_ENV").token() == "abc"
    assert Credentials(token_env="T_ENV").token() == "from-env"
    assert Credentials().token() is None


def test_mirror_directory_is_a_short_hash_of_the_url(tmp_path: Path) -> None:
    a = Mirror("https://h/a.git", tmp_path)
    b = Mirror("https://h/b.git", tmp_path)
    assert a.path != b.path and len(a.path.name) == 16
    assert Mirror("https://h/a.git", tmp_path).path == a.path
    assert a.display_url == "https://h/a.git"
