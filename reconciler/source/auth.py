"""How a mirror proves who it is to a remote, and checks who the remote is.

Invariants:
- A secret (a token, or a password written into a URL) never reaches a log
  line or an error message: every message built from a remote's answer goes
  through `scrub`, and URLs shown to users go through `redact`.
- An SSH host key is accepted only when it is listed in known_hosts. libgit2
  (through pygit2) checks keys against `$HOME/.ssh/known_hosts` of its own
  home directory setting, and pygit2 hands the callback no key to check
  itself (the certificate is always None). So for the duration of an ssh
  network call the libgit2 home directory points at `data_dir/ssh-home`,
  which holds a copy of the configured known_hosts, and `certificate_check`
  passes on libgit2's verdict: an unknown key fails, it is never learned.
- Credentials are offered once per network call: a server that asks again
  has refused them, and libgit2 would otherwise ask forever.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pygit2
from pygit2.enums import CredentialType

from reconciler.errors import SourceError

_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^/:]+:(?!//)")
_SSH_SCHEMES = ("ssh", "ssh+git", "git+ssh")

# libgit2's home directory is one setting for the whole process: ssh calls that
# need their own known_hosts take turns.
_HOME_LOCK = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """Where the secrets for one remote live; never the secrets themselves."""

    token_file: Path | None = None
    token_env: str | None = None
    username: str = "x-access-token"
    """The https user name sent with the token (GitHub: x-access-token, GitLab: oauth2)."""
    ssh_key: Path | None = None
    """Private key; the public key is the same path + ".pub" when that exists."""
    known_hosts: Path | None = None
    """Host keys for ssh; without it the user's ~/.ssh/known_hosts is used."""

    def token(self) -> str | None:
        """The https token, read now so that a rotated token file is picked up."""
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                raise SourceError(
                    f"cannot read token file {self.token_file}: {exc.strerror}"
                ) from None
        if self.token_env is not None:
            value = os.environ.get(self.token_env)
            if not value:
                raise SourceError(f"environment variable {self.token_env} is not set")
            return value.strip()
        return None


def normalize_url(url: str) -> str:
    """A URL libgit2 understands; local paths become absolute so the hash is stable."""
    if "://" in url:
        return url
    if _SCP_LIKE.match(url) and not Path(url).exists():
        return url
    return str(Path(url).expanduser().resolve())


def is_ssh(url: str) -> bool:
    if "://" in url:
        return urlsplit(url).scheme in _SSH_SCHEMES
    return bool(_SCP_LIKE.match(url)) and not url.startswith("/")


def redact(url: str) -> str:
    """The URL without a password or token written into it."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def url_secrets(url: str) -> tuple[str, ...]:
    if "://" not in url:
        return ()
    password = urlsplit(url).password
    return (password,) if password else ()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """One line with every secret replaced, for an error message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())


class AuthRefused(Exception):
    """The remote refused the credentials we offered (or we had none to offer)."""


class Callbacks(pygit2.RemoteCallbacks):
    """Offers the configured credentials once and defers host checks to known_hosts."""

    def __init__(self, credentials: Credentials, token: str | None) -> None:
        super().__init__()
        self._credentials = credentials
        self._token = token
        self._offered = False
        self.rejected: list[str] = []

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        if allowed_types & CredentialType.USERNAME:
            # ssh asks for the user name first when the URL has none.
            return pygit2.Username(username_from_url or getpass.getuser())
        if self._offered:
            raise AuthRefused
        self._offered = True
        key = self._credentials.ssh_key
        if allowed_types & CredentialType.SSH_KEY and key is not None:
            pub = Path(f"{key}.pub")
            user = username_from_url or getpass.getuser()
            return pygit2.Keypair(user, str(pub) if pub.exists() else None, str(key), "")
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and self._token:
            return pygit2.UserPass(username_from_url or self._credentials.username, self._token)
        raise AuthRefused

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        # libgit2 has already compared the key with known_hosts (ssh) or the
        # certificate chain (https); its verdict stands, nothing is learned.
        return valid

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected.append(f"{refname}: {message}")


def check_ssh_key(credentials: Credentials) -> None:
    """A missing key is a configuration mistake, not a refusal by the server."""
    key = credentials.ssh_key
    if key is not None and not os.access(key, os.R_OK):
        raise SourceError(f"cannot read ssh key {key}")


@contextmanager
def ssh_home(data_dir: Path, credentials: Credentials) -> Iterator[None]:
    """Point libgit2's home at a directory whose .ssh/known_hosts is the configured one."""
    if credentials.known_hosts is None:
        yield
        return
    ssh_dir = data_dir / "ssh-home" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _HOME_LOCK:
        try:
            shutil.copyfile(credentials.known_hosts, ssh_dir / "known_hosts")
        except OSError as exc:
            raise SourceError(
                f"cannot read known_hosts file {credentials.known_hosts}: {exc.strerror}"
            ) from None
        previous = pygit2.settings.homedir or ""
        pygit2.settings.homedir = str(ssh_dir.parent)
        try:
            yield
        finally:
            pygit2.settings.homedir = previous
