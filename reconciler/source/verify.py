"""Signed commits: a commit is deployed only when its signature verifies.

Why: whoever can push to the state repository can change every target. With a
`verify` policy, a commit must also carry a signature by a key the operator
listed, checked before the commit is even loaded; one that does not is never
applied, and its status is `error` naming the commit and why.

How, as git itself does it:
- ssh: `ssh-keygen -Y find-principals` finds who may have made the signature
  in the `allowed_signers` file (git's `gpg.ssh.allowedSignersFile` format),
  then `ssh-keygen -Y verify -n git` checks it for that principal, over the
  exact bytes git signed (the commit object without its `gpgsig` header).
- gpg: the public keys of `keyring` (armored or binary, as `gpg --export`
  writes them) are imported into a fresh, private GNUPGHOME, and `gpg
  --verify` must report a good, valid signature (GOODSIG and VALIDSIG) and
  none that is bad, made by an expired or revoked key, or by a missing key.

Invariants: nothing here writes to the repository or to the user's own ssh or
gpg configuration; every refusal is one `SignatureError` line that names the
commit; the signature of the commit itself is checked, not that of its
parents (as Flux does for the commit it applies).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import Problem, ReconcilerError, ValidationError
from reconciler.model import Location

SCHEMES = ("ssh", "gpg")
_SSH_ARMOR = b"-----BEGIN SSH SIGNATURE-----"
_GPG_ARMOR = b"-----BEGIN PGP SIGNATURE-----"
_TIMEOUT = 30.0


class SignatureError(ReconcilerError):
    """A commit whose signature does not verify under the policy."""

    def __init__(self, sha: str, reason: str) -> None:
        super().__init__(f"commit {sha[:12]}: {reason}")
        self.sha = sha
        self.reason = reason


class _Refused(Exception):
    """Why a signature is refused; `verify_commit` names the commit."""


@dataclass(frozen=True, kw_only=True)
class VerifyPolicy:
    signatures: str
    """ssh or gpg."""
    allowed_signers: Path | None = None
    """ssh: the allowed signers file (`principal key-type key` per line)."""
    keyring: Path | None = None
    """gpg: the public keys that may sign."""

    def describe(self) -> str:
        trust = self.allowed_signers if self.signatures == "ssh" else self.keyring
        return f"{self.signatures} signatures by {trust}"


def signature_of(git_dir: Path, sha: str) -> tuple[bytes, bytes] | None:
    """(signature, signed payload) of commit `sha`, or None when it is unsigned."""
    import pygit2  # the source layer's client, loaded only when a policy asks

    commit = pygit2.Repository(str(git_dir))[sha].peel(pygit2.Commit)
    signature, payload = commit.gpg_signature
    if signature is None or payload is None:
        return None
    return bytes(signature), bytes(payload)


def verify_commit(git_dir: Path, sha: str, policy: VerifyPolicy) -> str:
    """Who signed commit `sha` (the principal or the key); SignatureError otherwise."""
    try:
        return _verify(git_dir, sha, policy)
    except _Refused as refused:
        raise SignatureError(sha, str(refused)) from None


def require_signature(git_dir: Path, sha: str, policy: VerifyPolicy) -> None:
    """As `verify_commit`, refusing as a ValidationError (status `error`, nothing
    applied) whose one problem names the commit and why."""
    try:
        _verify(git_dir, sha, policy)
    except _Refused as refused:
        where = Location(file=f"commit {sha[:12]}")
        raise ValidationError([Problem(location=where, message=str(refused))]) from None


def _verify(git_dir: Path, sha: str, policy: VerifyPolicy) -> str:
    found = signature_of(git_dir, sha)
    if found is None:
        raise _Refused(f"not signed; only commits with {policy.describe()} are applied")
    signature, payload = found
    if policy.signatures == "ssh":
        if not signature.lstrip().startswith(_SSH_ARMOR):
            raise _Refused("signed with gpg, but the policy asks for ssh signatures")
        return _verify_ssh(signature, payload, _trusted(policy.allowed_signers))
    if not signature.lstrip().startswith(_GPG_ARMOR):
        raise _Refused("signed with ssh, but the policy asks for gpg signatures")
    return _verify_gpg(signature, payload, _trusted(policy.keyring))


def _trusted(path: Path | None) -> Path:
    if path is None or not path.is_file() or not os.access(path, os.R_OK):
        raise _Refused(f"cannot read the trusted keys {path}")
    return path


def _run(argv: list[str], data: bytes, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, input=data, capture_output=True, timeout=_TIMEOUT,
                              env=env, check=False)
    except FileNotFoundError:
        raise _Refused(f"{argv[0]} is not installed; it checks commit signatures") from None
    except subprocess.TimeoutExpired:
        raise _Refused(f"{argv[0]} took over {_TIMEOUT:g}s to check a signature") from None


def _last_line(output: bytes) -> str:
    lines = [line.strip() for line in output.decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "no reason given")


def _verify_ssh(signature: bytes, payload: bytes, allowed: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="reconciler-verify-") as tmp:
        sig = Path(tmp) / "commit.sig"
        sig.write_bytes(signature)
        found = _run(["ssh-keygen", "-Y", "find-principals", "-f", str(allowed), "-s", str(sig)],
                     b"")
        principals = found.stdout.decode(errors="replace").split()
        if found.returncode != 0 or not principals:
            key = _run(["ssh-keygen", "-Y", "check-novalidate", "-n", "git", "-s", str(sig)],
                       payload)
            made = _last_line(key.stdout + key.stderr) if key.returncode == 0 else "an unknown key"
            raise _Refused(f"signed by a key that {allowed} does not allow ({made})")
        for principal in principals:
            checked = _run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal,
                            "-n", "git", "-s", str(sig)], payload)
            if checked.returncode == 0:
                return principal
        raise _Refused("the ssh signature does not verify: "
                       f"{_last_line(checked.stdout + checked.stderr)}")


_GPG_REFUSALS = {
    "BADSIG": "a bad signature (the commit was changed after signing)",
    "EXPKEYSIG": "a signature by an expired key",
    "REVKEYSIG": "a signature by a revoked key",
    "ERRSIG": "a signature by a key the keyring does not hold",
    "NO_PUBKEY": "a signature by a key the keyring does not hold",
}


def _verify_gpg(signature: bytes, payload: bytes, keyring: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="reconciler-gnupg-") as home:
        os.chmod(home, 0o700)
        env = {**os.environ, "GNUPGHOME": home}
        base = ["gpg", "--batch", "--no-tty", "--no-autostart", "--homedir", home]
        imported = _run([*base, "--import", str(keyring)], b"", env)
        if imported.returncode != 0:
            raise _Refused(f"cannot import the keyring {keyring}: {_last_line(imported.stderr)}")
        sig = Path(home) / "commit.sig"
        sig.write_bytes(signature)
        checked = _run([*base, "--status-fd", "1", "--verify", str(sig), "-"], payload, env)
    status = [line.split()[1:] for line in checked.stdout.decode(errors="replace").splitlines()
              if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
    words = {fields[0] for fields in status}
    for word, why in _GPG_REFUSALS.items():
        if word in words:
            raise _Refused(f"it has {why}")
    valid = next((fields for fields in status if fields[0] == "VALIDSIG"), None)
    if checked.returncode != 0 or "GOODSIG" not in words or valid is None or len(valid) < 2:
        raise _Refused(f"the gpg signature does not verify: {_last_line(checked.stderr)}")
    return valid[1]


def make_policy(signatures: object, allowed_signers: Path | None, keyring: Path | None,
                where: str) -> VerifyPolicy:
    """The policy of a `verify:` section or of the command-line flags, checked the same
    way for both; ConfigError names `where`."""
    from reconciler.errors import ConfigError
    from reconciler.options import did_you_mean

    if signatures not in SCHEMES:
        hint = did_you_mean(signatures, SCHEMES) if isinstance(signatures, str) else ""
        raise ConfigError(f"{where}: signatures must be ssh or gpg, not {signatures!r}{hint}")
    needed, other = (("allowed_signers", "keyring") if signatures == "ssh"
                     else ("keyring", "allowed_signers"))
    given = {"allowed_signers": allowed_signers, "keyring": keyring}
    if given[needed] is None:
        raise ConfigError(f"{where}: signatures: {signatures} needs {needed} (a file)")
    if given[other] is not None:
        raise ConfigError(f"{where}: {other} applies to signatures: "
                          f"{'gpg' if signatures == 'ssh' else 'ssh'} only")
    return VerifyPolicy(signatures=str(signatures), allowed_signers=allowed_signers,
                        keyring=keyring)
