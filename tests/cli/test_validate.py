"""`reconciler validate` per the command-line contract: 0 valid, 2 invalid with
`file:line: message` on stderr (every problem at once), 1 for other errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The example renders Kustomize and Helm apps with the real tools.
pytestmark = pytest.mark.usefixtures("render_tools")

EXAMPLE = Path(__file__).resolve().parents[2] / "desired-state-example"


def _validate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "validate", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


def test_the_example_is_valid() -> None:
    done = _validate(str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("valid: 3 targets, 6 apps")


def test_a_broken_copy_exits_2_with_every_problem_and_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(EXAMPLE, broken)
    app = broken / "apps/web/app.yaml"
    app.write_text(app.read_text().replace("wave: 1", "wave: one"))
    (broken / "apps/config/extra.yaml").write_text(
        "kind: File\npath: relative/path\ncontnet: x\n")
    done = _validate(str(broken))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert any(line.startswith("apps/web/app.yaml:3: ") and "wave" in line for line in lines)
    assert any(line.startswith("apps/config/extra.yaml:2: ") and "absolute" in line
               for line in lines)
    assert any(line.startswith("apps/config/extra.yaml:3: ") and "did you mean 'content'" in line
               for line in lines), lines
    assert "nothing was applied" in lines[-1]


def test_a_commit_of_a_repository_under_a_path(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo / "deploy")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "good")
    good = _validate("--repo", str(repo), "--path", "deploy", "--data-dir", str(tmp_path / "d"))
    assert good.returncode == 0, good.stderr
    (repo / "deploy/apps/web/app.yaml").write_text("target: nowhere\n")
    _git(repo, "commit", "-q", "-am", "bad")
    bad = _validate("--repo", f"file://{repo}", "--path", "deploy", "--rev", "main",
                    "--data-dir", str(tmp_path / "d"))
    assert bad.returncode == 2
    assert bad.stderr.startswith("deploy/apps/web/app.yaml:1: "), bad.stderr
    old = _validate("--repo", str(repo), "--path", "deploy", "--rev", "main~1",
                    "--data-dir", str(tmp_path / "d"))
    assert old.returncode == 0, old.stderr


def test_other_errors_exit_1_with_one_line(tmp_path: Path) -> None:
    missing = _validate("--repo", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d"))
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1
    both = _validate(str(EXAMPLE), "--repo", str(tmp_path))
    assert both.returncode == 1


def test_validate_never_imports_a_backend_client() -> None:
    """validate reads each backend's option schema, never its client."""
    code = (
        "import sys\n"
        "from reconciler.cli import main\n"
        f"assert main(['validate', {str(EXAMPLE)!r}]) == 0\n"
        "heavy = [m for m in ('kubernetes', 'paramiko', 'backends.kubernetes.client',\n"
        "                     'backends.vm.backend', 'backends.yarn.client')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_app_whose_tenant_may_not_use_its_target_is_refused(tmp_path: Path) -> None:
    """The example's shop app (Kubernetes `prod`) held by a tenant that only has the laptop."""
    copy = tmp_path / "tenants"
    shutil.copytree(EXAMPLE, copy)
    config = copy / "reconciler.yaml"
    config.write_text(config.read_text() + "\ntenants:\n  team:\n    apps: [shop, web]\n"
                                           "    targets: [laptop]\n")
    team_line = config.read_text().splitlines().index("  team:") + 1
    done = _validate(str(copy))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(
        "apps/shop/app.yaml:2: app 'shop' may not use target 'prod': tenant 'team' "
        f"(reconciler.yaml:{team_line}) allows laptop")
    assert done.stderr.splitlines()[-1] == "1 problem(s); nothing was applied"
