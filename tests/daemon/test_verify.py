"""The daemon with `verify:`: an unsigned commit gets status error and is never
applied; the next commit, signed by an allowed key, deploys."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from reconciler.daemon.service import Daemon
from reconciler.source.verify import VerifyPolicy
from tests.daemon.conftest import StateRepo, deploys, git, notes, wait_for


def _signed_commit(repo: StateRepo, key: Path, content: str) -> str:
    (repo.path / "apps/web/files.yaml").write_text(
        f"kind: File\npath: /etc/web.conf\ncontent: {json.dumps(content)}\n")
    git(repo.path, "add", "-A")
    git(repo.path, "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub",
        "commit", "-S", "-q", "-m", "signed")
    return git(repo.path, "rev-parse", "HEAD")


def test_an_unsigned_head_is_an_error_status_and_a_signed_one_deploys(
    state_repo: StateRepo, daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    key = tmp_path / "deploy-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, timeout=60)
    kind, blob = (tmp_path / "deploy-key.pub").read_text().split()[:2]
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"t@example.com {kind} {blob}\n")
    unsigned = git(state_repo.path, "rev-parse", "HEAD")

    daemon = daemon_factory(state_repo, verify=VerifyPolicy(signatures="ssh",
                                                            allowed_signers=allowed))
    wait_for(lambda: notes(daemon, unsigned))
    status = notes(daemon, unsigned)[-1]
    assert status["state"] == "error"
    assert f"commit {unsigned[:12]}: not signed" in status["description"]
    assert deploys(daemon) == [(unsigned, "error")]
    assert state_repo.web_conf() is None

    signed = _signed_commit(state_repo, key, "version 2\n")
    daemon.trigger("test")
    wait_for(lambda: [s["state"] for s in notes(daemon, signed)][-1:] == ["success"])
    assert state_repo.web_conf() == "version 2\n"
