"""Signed commits: `reconciler sync --verify-signatures` applies only what a trusted key signed.

Real keys, real signatures: ssh-keygen makes the keys, git signs with them
(`gpg.format=ssh`, `user.signingkey`), and the sync deploys to a local VM
target whose root is a temporary folder, so "applied" is a file on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.config import parse_config
from reconciler.errors import ConfigError
from reconciler.history import History
from reconciler.source.verify import VerifyPolicy

ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, timeout=60, env=env)
    return done.stdout.strip()


def _key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True, timeout=60)
    return path


class SignedRepo:
    """A state repo whose commits are signed (or not) with a chosen key."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "state"
        self.deployed = tmp / "root"
        self.path.mkdir()
        _git(self.path, "init", "-q", "-b", "main")
        _git(self.path, "config", "user.name", "Dev")
        _git(self.path, "config", "user.email", "dev@example.com")
        _git(self.path, "config", "gpg.format", "ssh")
        (self.path / "reconciler.yaml").write_text(
            "apiVersion: reconciler/v1\ntargets:\n"
            f"  laptop: {{backend: vm, transport: local, root: {self.deployed}}}\n")
        (self.path / "apps/web").mkdir(parents=True)
        (self.path / "apps/web/app.yaml").write_text("target: laptop\n")

    def commit(self, text: str, key: Path | None) -> str:
        (self.path / "apps/web/site.yaml").write_text(
            f"kind: File\npath: /site.txt\ncontent: {text}\n")
        _git(self.path, "add", "-A")
        sign = ["-c", f"user.signingkey={key}.pub", "commit", "-S"] if key else ["commit"]
        _git(self.path, *sign, "-q", "-m", text)
        return _git(self.path, "rev-parse", "HEAD")

    def site(self) -> str | None:
        path = self.deployed / "site.txt"
        return path.read_text() if path.exists() else None


@pytest.fixture
def repo(tmp_path: Path) -> SignedRepo:
    return SignedRepo(tmp_path)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    trusted, stranger = _key(tmp_path / "trusted"), _key(tmp_path / "stranger")
    allowed = tmp_path / "allowed_signers"
    public = (tmp_path / "trusted.pub").read_text().split()
    allowed.write_text(f"dev@example.com {public[0]} {public[1]}\n")
    return {"trusted": trusted, "stranger": stranger, "allowed": allowed}


def _sync(repo: SignedRepo, data: Path, *verify: str, command: str = "sync"
          ) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "reconciler", command, "--repo", str(repo.path),
            "--rev", "main", "--data-dir", str(data), *verify]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_only_a_commit_signed_by_an_allowed_key_is_applied(
    repo: SignedRepo, keys: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    flags = ("--verify-signatures", "ssh", "--allowed-signers", str(keys["allowed"]))

    unsigned = repo.commit("unsigned", None)
    refused = _sync(repo, data, *flags)
    assert refused.returncode == 2, refused.stderr
    assert f"commit {unsigned[:12]}: not signed" in refused.stderr
    assert repo.site() is None
    planned = _sync(repo, data, *flags, command="plan")
    assert planned.returncode == 2, planned.stderr
    assert f"commit {unsigned[:12]}: not signed" in planned.stderr

    strange = repo.commit("by-a-stranger", keys["stranger"])
    refused = _sync(repo, data, *flags)
    assert refused.returncode == 2, refused.stderr
    assert f"commit {strange[:12]}: signed by a key that {keys['allowed']} does not allow" in (
        refused.stderr)
    assert repo.site() is None

    good = repo.commit("trusted", keys["trusted"])
    done = _sync(repo, data, *flags)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"synced {good[:12]}")
    assert repo.site() == "trusted"
    history = History(data)
    try:
        outcomes = [(d.revision, d.result) for d in reversed(history.deploys(3))]
        refusal = history.deploys(3)[-1].message
    finally:
        history.close()
    assert outcomes == [(unsigned, "error"), (strange, "error"), (good, "success")]
    assert refusal.startswith(f"invalid: commit {unsigned[:12]}: not signed; only commits with "
                              f"ssh signatures by {keys['allowed']} are applied")


def test_without_a_policy_an_unsigned_commit_deploys(repo: SignedRepo, tmp_path: Path) -> None:
    repo.commit("plain", None)
    done = _sync(repo, tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert repo.site() == "plain"


def test_a_commit_changed_after_signing_is_refused(
    repo: SignedRepo, keys: dict[str, Path], tmp_path: Path
) -> None:
    """The signature covers the commit's bytes: a forged object with the trusted
    signature copied in does not verify."""
    signed = repo.commit("trusted", keys["trusted"])
    raw = _git(repo.path, "cat-file", "commit", signed) + "\n"
    forged_text = raw.replace("\ntrusted\n", "\nforged\n")
    forged = subprocess.run(["git", "-C", str(repo.path), "hash-object", "-t", "commit", "-w",
                             "--stdin"], input=forged_text, capture_output=True, text=True,
                            check=True).stdout.strip()
    _git(repo.path, "update-ref", "refs/heads/main", forged)
    refused = _sync(repo, tmp_path / "data", "--verify-signatures", "ssh",
                    "--allowed-signers", str(keys["allowed"]))
    assert refused.returncode == 2, refused.stderr
    assert f"commit {forged[:12]}: the ssh signature does not verify" in refused.stderr


def test_the_daemon_config_and_the_flags_share_one_schema(tmp_path: Path) -> None:
    config = parse_config("repo: /r\nverify: {signatures: ssh, allowed_signers: signers}\n",
                          base_dir=tmp_path)
    assert config.verify == VerifyPolicy(signatures="ssh", allowed_signers=tmp_path / "signers")
    gpg = parse_config("repo: /r\nverify: {signatures: gpg, keyring: /k.gpg}\n")
    assert gpg.verify == VerifyPolicy(signatures="gpg", keyring=Path("/k.gpg"))
    for text, message in [
        ("verify: {signatures: ssh}", ":2: signatures: ssh needs allowed_signers"),
        ("verify: {signatures: gpg, keyring: k, allowed_signers: s}",
         ":2: allowed_signers applies to signatures: ssh only"),
        ("verify: {signatures: shh, allowed_signers: s}", "(did you mean 'ssh'?)"),
        ("verify: {signature: ssh}", "unknown key 'signature' (did you mean 'signatures'?)"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_config(f"repo: /r\n{text}\n", source="d.yaml")
        assert message in str(caught.value), caught.value
    bad = _sync_flags(tmp_path, "--verify-signatures", "ssh")
    assert bad.returncode == 1 and "needs allowed_signers" in bad.stderr


def _sync_flags(tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reconciler", "sync", "--repo", str(tmp / "none"),
               "--data-dir", str(tmp / "data"), *flags]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _gpg_key(home: Path, email: str) -> str:
    """A new signing key in GNUPGHOME `home`; its fingerprint."""
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", email,
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True,
                   timeout=120)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"],
                             env=env, check=True, capture_output=True, text=True).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))


@pytest.fixture
def gpg_homes(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Two GNUPGHOMEs, each with its own key; their gpg-agents are stopped after."""
    homes = {"trusted": tmp_path / "gpg-trusted", "stranger": tmp_path / "gpg-stranger"}
    yield homes
    for home in homes.values():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, timeout=30, check=False)


def test_gpg_signatures_verify_against_the_named_keyring(
    repo: SignedRepo, tmp_path: Path, gpg_homes: dict[str, Path]
) -> None:
    trusted = _gpg_key(gpg_homes["trusted"], "dev@example.com")
    stranger = _gpg_key(gpg_homes["stranger"], "eve@example.com")
    keyring = tmp_path / "trusted.asc"
    keyring.write_bytes(subprocess.run(
        ["gpg", "--batch", "--armor", "--export", trusted], check=True, capture_output=True,
        env={**os.environ, "GNUPGHOME": str(gpg_homes["trusted"])}).stdout)
    _git(repo.path, "config", "gpg.format", "openpgp")
    flags = ("--verify-signatures", "gpg", "--keyring", str(keyring))

    strange = _signed_gpg(repo, "by-eve", stranger, gpg_homes["stranger"])
    refused = _sync(repo, tmp_path / "data", *flags)
    assert refused.returncode == 2, refused.stderr
    assert f"commit {strange[:12]}: it has a signature by a key the keyring does not hold" in (
        refused.stderr)
    assert repo.site() is None
    ssh_flags = ("--verify-signatures", "ssh", "--allowed-signers", str(keyring))
    assert "signed with gpg, but the policy asks for ssh" in _sync(
        repo, tmp_path / "data", *ssh_flags).stderr

    good = _signed_gpg(repo, "by-dev", trusted, gpg_homes["trusted"])
    done = _sync(repo, tmp_path / "data", *flags)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"synced {good[:12]}")
    assert repo.site() == "by-dev"


def _signed_gpg(repo: SignedRepo, text: str, key: str, home: Path) -> str:
    (repo.path / "apps/web/site.yaml").write_text(f"kind: File\npath: /site.txt\ncontent: {text}\n")
    _git(repo.path, "add", "-A")
    _git(repo.path, "-c", f"user.signingkey={key}", "commit", "-S", "-q", "-m", text,
         env={**os.environ, "GNUPGHOME": str(home)})
    return _git(repo.path, "rev-parse", "HEAD")
