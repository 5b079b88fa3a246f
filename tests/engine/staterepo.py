"""A real state repository in a temporary git repo, for end-to-end tests.

The repo is built with the git CLI, as a user would. It has a `fleet` target
(vm over ssh to a real sshd fleet, root "<tmp>/roots/{host}"), and a `prod`
Kubernetes target that no test may touch: syncs select `fleet` only, as a
laptop run of the example repository would.

Apps: `config` (wave 0) and `web` (wave 1, batch 2 over five hosts); a
release of `web` may carry command health checks, e.g. `broken_check()`, which
fails on every host whose root holds a file named `broken`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.gitrepo import git
from tests.support.sshd import SshFleet


@dataclass
class StateRepo:
    path: Path
    roots: Path
    fleet: SshFleet

    @property
    def hosts(self) -> list[str]:
        return [h.address for h in self.fleet.hosts]

    def root(self, index: int) -> Path:
        """The root of host number `index` (1-based, as people count hosts)."""
        return self.roots / self.hosts[index - 1]

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD").strip()

    def release(self, version: str, *checks: str, interval: str = "50ms",
                retries: int = 1, timeout: str = "20s") -> str:
        """Commit a release of `web` serving `version`, health-checked by `checks`."""
        health = "".join(
            f'  - command: "{command}"\n    interval: {interval}\n    retries: {retries}\n'
            for command in checks
        )
        self.write("apps/web/app.yaml",
                   "target: fleet\nwave: 1\nrollout: {batch: 2, max_failures: 0}\n"
                   f"timeout: {timeout}\n" + (f"health:\n{health}" if health else ""))
        self.write("apps/web/site.yaml",
                   "kind: File\npath: /srv/web/index.html\n"
                   f"content: \"{version}\\n\"\nmode: \"0644\"\n")
        return self.commit(f"web {version}")

    def broken_check(self) -> str:
        """A command check that fails on every host whose root holds `broken`."""
        return f"test ! -e {self.roots}/{{host}}/broken"

    def served(self, index: int) -> str:
        page = self.root(index) / "srv/web/index.html"
        return page.read_text().strip() if page.exists() else ""

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """(inode, mtime_ns) of every file under the roots: equal means untouched."""
        return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns)
                for p in sorted(self.roots.rglob("*")) if p.is_file()}


def create(base: Path, fleet: SshFleet) -> StateRepo:
    path, roots = base / "state", base / "roots"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    repo = StateRepo(path=path, roots=roots, fleet=fleet)
    for host in repo.hosts:
        (roots / host).mkdir(parents=True)
    hosts = ", ".join(h.spec for h in fleet.hosts)
    repo.write("reconciler.yaml", (
        "apiVersion: reconciler/v1\n"
        "defaults: {prune: true, rollback: auto}\n"
        "targets:\n"
        f"  fleet: {{backend: vm, transport: ssh, hosts: [{hosts}], user: {fleet.user},\n"
        f"          identity_file: {fleet.identity_file}, known_hosts: {fleet.known_hosts},\n"
        f"          root: \"{roots}/{{host}}\"}}\n"
        "  prod: {backend: kubernetes, kubeconfig: /nonexistent/kubeconfig, context: prod}\n"
    ))
    repo.write("apps/config/app.yaml", "target: fleet\nwave: 0\n")
    repo.write("apps/config/conf.yaml",
               "kind: File\npath: /etc/web.conf\ncontent: \"port=8080\\n\"\n")
    repo.write("apps/kube/app.yaml", "target: prod\n")
    repo.write("apps/kube/cm.yaml", (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: default}\n"
        "data: {a: b}\n"
    ))
    return repo
