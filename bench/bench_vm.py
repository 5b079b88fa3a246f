"""Benchmark: a VM fleet sync through the VM backend, against ansible and pyinfra.

Twenty real sshd hosts on 127.0.0.100... (tests/support/sshd.py), each with an
app of 50 files, two directories and one service (a pid-file service whose
restart rewrites the pid file; restart_on the first config file). Timed, per
tool, on the whole fleet:

- no-op sync: read live state, compare, apply nothing (cold = new connections,
  warm = connections kept from the previous sync, as the daemon keeps them);
- one-file sync: one config file changes on every host, the service restarts.

A second case, VM backend only, gives every host `--large-files` files (2,000
by default; 0 skips it) in one folder and times the first sync (every file
uploaded), the no-op syncs and the one-file sync: a host with thousands of
managed paths must still cost one fact command per no-op.

ansible-core and pyinfra run from their own virtualenvs under bench/.venvs
(create them with `python -m venv bench/.venvs/ansible && bench/.venvs/ansible/bin/pip
install ansible-core`, same for pyinfra): pyinfra pins versions that conflict with
the kubernetes client. A tool whose venv is missing is skipped.

`--quiet-shell` restarts the fleet's sshd with `SetEnv SHLVL=1`: Debian's bash
sources ~/.bashrc for every SSH command, and a heavy .bashrc (pyenv init, say)
then costs every tool the same ~80 ms of CPU per command.

Usage: python bench/bench_vm.py [--hosts 20] [--files 50] [--large-files 2000] [--repeat 3]
                                [--quiet-shell] [--tools vm,ansible,pyinfra]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from backends.vm import VmBackend  # noqa: E402
from backends.vm.options import options_of  # noqa: E402
from reconciler.model import (  # noqa: E402
    Action,
    App,
    BackendKind,
    Change,
    Location,
    Resource,
    ResourceId,
    Target,
)
from tests.support import sshd  # noqa: E402
from tests.support.sshd import SshFleet  # noqa: E402

VENVS = HERE / ".venvs"
AT = Location(file="bench", line=0)
START = 'mkdir -p "{root}/run" && echo $$ > "{root}/run/app.pid"'
STOP = 'rm -f "{root}/run/app.pid"'
STATUS = 'test -e "{root}/run/app.pid"'


def content(index: int, version: int) -> str:
    return (f"[server]\nname = app\nport = {8000 + index}\nworkers = 4\n"
            f"version = {version if index == 0 else 1}\n")


# --- fleet -----------------------------------------------------------------


def quiet_shell(fleet: SshFleet) -> None:
    """Restart every host's sshd so that bash skips ~/.bashrc for SSH commands."""
    for host in fleet.hosts:
        host.process.terminate()
        host.process.wait(timeout=5)
        if host.process.stderr is not None:
            host.process.stderr.close()
        config = fleet.directory / host.address / "sshd_config"
        config.write_text(config.read_text() + "SetEnv SHLVL=1\n")
        host.process = subprocess.Popen(
            [sshd.SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        sshd._wait_listening(host.address, host.port, host.process)


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# --- the VM backend ----------------------------------------------------------


def vm_app(files: int, version: int) -> App:
    def res(kind: str, name: str, **body: Any) -> Resource:
        return Resource(id=ResourceId(kind=kind, name=name), app="app", body=body, location=AT)

    resources = [res("Directory", "/srv/app", mode="0755"), res("Directory", "/run")]
    resources += [res("File", f"/srv/app/conf-{i}.ini", content=content(i, version),
                      mode="0644") for i in range(files)]
    resources.append(res(
        "Service", "app", restart_on=["/srv/app/conf-0.ini"],
        start=START.format(root="$RECONCILER_ROOT"), stop=STOP.format(root="$RECONCILER_ROOT"),
        status=STATUS.format(root="$RECONCILER_ROOT"),
    ))
    return App(name="app", target="fleet", resources=tuple(resources), location=AT)


def vm_sync(backend: VmBackend, app: App) -> tuple[int, int]:
    """read_live, the planner's comparison, apply what differs: (changes, restarts)."""
    inventory = {(h, r.id): "app" for h in backend.options.hosts for r in app.resources}
    view = backend.read_live(app.resources, inventory)
    todo = []
    for resource in app.resources:
        for host in view.hosts:
            want, have = view.desired[(host, resource.id)], view.live.get((host, resource.id))
            if have is None or dict(have.state) != dict(want):
                todo.append(Change(
                    id=resource.id, app="app", target="fleet", host=host, resource=resource,
                    action=Action.CREATE if have is None else Action.UPDATE,
                    desired=want, live=None if have is None else have.state))
    if not todo:
        return 0, 0
    result = backend.apply(app, todo)
    return len(todo), len(result.restarted)


def bench_vm(fleet: SshFleet, work: Path, files: int, repeat: int, *, name: str = "vm"
             ) -> dict[str, float]:
    target = Target(name="fleet", backend=BackendKind.VM, location=AT, options={
        "transport": "ssh", "hosts": [h.spec for h in fleet.hosts], "user": fleet.user,
        "identity_file": str(fleet.identity_file), "known_hosts": str(fleet.known_hosts),
        "root": f"{work}/{name}/{{host}}", "parallel": 20,
    })

    def new() -> VmBackend:
        return VmBackend(target, options_of(target))

    warm = new()
    n = len(fleet.hosts)
    first = timed(partial(_expect, partial(vm_sync, warm, vm_app(files, 1)),
                          (n * (files + 3), 0)))

    def sync(backend: VmBackend, version: int, want: tuple[int, int]) -> None:
        _expect(partial(vm_sync, backend, vm_app(files, version)), want)

    cold: list[float] = []
    for _ in range(repeat):
        backend = new()
        cold.append(timed(partial(sync, backend, 1, (0, 0))))
        backend.close()
    hot = [timed(partial(sync, warm, 1, (0, 0))) for _ in range(repeat)]
    change = [timed(partial(sync, warm, v, (n, n))) for v in range(2, 2 + repeat)]
    runs = sum(warm.transport(h.spec).calls["run"] for h in fleet.hosts)
    warm.close()
    print(f"  {name}: {runs} shell commands over {n} hosts in all", file=sys.stderr)
    return {"first": first, "noop_cold": statistics.median(cold),
            "noop_warm": statistics.median(hot), "one_file": statistics.median(change)}


def _expect(sync: Callable[[], tuple[int, int]], want: tuple[int, int]) -> None:
    got = sync()
    if got != want:
        raise SystemExit(f"vm sync did {got} (changes, restarts), expected {want}")


# --- ansible -----------------------------------------------------------------

PLAYBOOK = """\
- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.file: {{path: "{{{{ root }}}}/srv/app", state: directory, mode: "0755"}}
    - ansible.builtin.file: {{path: "{{{{ root }}}}/run", state: directory}}
    - ansible.builtin.copy:
        dest: "{{{{ root }}}}/srv/app/conf-{{{{ item }}}}.ini"
        mode: "0644"
        content: "[server]\\nname = app\\nport = {{{{ 8000 + item }}}}\\nworkers = 4\\n\\
          version = {{{{ version if item == 0 else 1 }}}}\\n"
      loop: "{{{{ range({files}) | list }}}}"
      notify: restart app
    - ansible.builtin.shell: '{start}'
      args: {{creates: "{{{{ root }}}}/run/app.pid"}}
  handlers:
    - name: restart app
      ansible.builtin.shell: '{stop}; {start}'
"""


def bench_ansible(fleet: SshFleet, work: Path, files: int, repeat: int) -> dict[str, float]:
    base = work / "ansible"
    base.mkdir()
    (base / "inventory.ini").write_text("[fleet]\n" + "".join(
        f"h{h.address.rsplit('.', 1)[1]} ansible_host={h.address} ansible_port={h.port} "
        f"root={base}/{h.address}\n" for h in fleet.hosts))
    root = "{{ root }}"
    (base / "site.yml").write_text(PLAYBOOK.format(
        files=files, start=START.format(root=root), stop=STOP.format(root=root)))
    control = Path(tempfile.mkdtemp(prefix="cp", dir="/tmp"))
    (base / "ansible.cfg").write_text(
        "[defaults]\nforks = 20\ngathering = explicit\nhost_key_checking = True\n"
        f"interpreter_python = /usr/bin/python3\nremote_user = {fleet.user}\n"
        f"private_key_file = {fleet.identity_file}\ninventory = {base}/inventory.ini\n"
        "[ssh_connection]\npipelining = True\n"
        f"control_path_dir = {control}\n"
        "ssh_args = -o ControlMaster=auto -o ControlPersist=120s "
        f"-o UserKnownHostsFile={fleet.known_hosts} -o StrictHostKeyChecking=yes\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(base / "ansible.cfg"), LC_ALL="C.UTF-8")

    def play(version: int, want: str) -> None:
        done = subprocess.run(
            [str(VENVS / "ansible/bin/ansible-playbook"), str(base / "site.yml"),
             "-e", f"version={version}"], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or want not in done.stdout:
            raise SystemExit(f"ansible-playbook failed or did not say {want!r}:\n"
                             f"{done.stdout[-3000:]}{done.stderr[-2000:]}")

    play(1, "changed=")
    noop = [timed(partial(play, 1, "changed=0")) for _ in range(repeat)]
    change = [timed(partial(play, v, "changed=2")) for v in range(2, 2 + repeat)]
    shutil.rmtree(control, ignore_errors=True)
    return {"noop_warm": statistics.median(noop), "one_file": statistics.median(change)}


# --- pyinfra -----------------------------------------------------------------

DEPLOY = """\
from io import StringIO
import os
from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server

root = host.data.root
version = int(os.environ["BENCH_VERSION"])
files.directory(name="app dir", path=f"{{root}}/srv/app", mode="755")
files.directory(name="run dir", path=f"{{root}}/run")
first = None
for i in range({files}):
    text = ("[server]\\nname = app\\nport = %d\\nworkers = 4\\nversion = %d\\n"
            % (8000 + i, version if i == 0 else 1))
    op = files.put(name=f"conf {{i}}", src=StringIO(text),
                   dest=f"{{root}}/srv/app/conf-{{i}}.ini", mode="644")
    first = first or op
start = {start!r}.replace("ROOT", root)
stop = {stop!r}.replace("ROOT", root)
server.shell(name="restart app", commands=[f"{{stop}}; {{start}}"], _if=first.did_change)
if not host.get_fact(File, path=f"{{root}}/run/app.pid"):
    server.shell(name="start app", commands=[start])
"""


def bench_pyinfra(fleet: SshFleet, work: Path, files: int, repeat: int) -> dict[str, float]:
    base = work / "pyinfra"
    base.mkdir()
    rows = "".join(
        f"    ({h.address!r}, {{'ssh_port': {h.port}, 'ssh_user': {fleet.user!r}, "
        f"'ssh_key': {str(fleet.identity_file)!r}, "
        f"'ssh_known_hosts_file': {str(fleet.known_hosts)!r}, "
        f"'ssh_strict_host_key_checking': 'yes', 'root': {str(base / h.address)!r}}}),\n"
        for h in fleet.hosts)
    (base / "inventory.py").write_text(f"fleet = [\n{rows}]\n")
    (base / "deploy.py").write_text(DEPLOY.format(
        files=files, start=START.format(root="ROOT"), stop=STOP.format(root="ROOT")))

    def deploy(version: int) -> str:
        done = subprocess.run(
            [str(VENVS / "pyinfra/bin/pyinfra"), "-y", "--parallel", "20",
             str(base / "inventory.py"), str(base / "deploy.py")],
            cwd=base, env=dict(os.environ, BENCH_VERSION=str(version)),
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"pyinfra failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done.stdout + done.stderr

    deploy(1)
    noop = [timed(partial(deploy, 1)) for _ in range(repeat)]
    change = [timed(partial(deploy, v)) for v in range(2, 2 + repeat)]
    return {"noop_cold": statistics.median(noop), "one_file": statistics.median(change)}


# --- main --------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--large-files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quiet-shell", action="store_true")
    parser.add_argument("--tools", default="vm,ansible,pyinfra")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-vm-"))
    fleet = sshd.start_fleet(work / "fleet", args.hosts, first=100)
    results: dict[str, dict[str, float]] = {}
    try:
        if args.quiet_shell:
            quiet_shell(fleet)
        runners = {"vm": bench_vm, "ansible": bench_ansible, "pyinfra": bench_pyinfra}
        for tool in args.tools.split(","):
            if tool != "vm" and not (VENVS / tool).exists():
                print(f"  {tool}: skipped, no venv at {VENVS / tool}", file=sys.stderr)
                continue
            results[tool] = runners[tool](fleet, work, args.files, args.repeat)
        if args.large_files:
            results["vm-large"] = bench_vm(fleet, work, args.large_files, args.repeat,
                                           name="vm-large")
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    shell = "SetEnv SHLVL=1" if args.quiet_shell else "default shell"
    print(f"{args.hosts} hosts x {args.files} files + 1 service, median of {args.repeat} "
          f"({shell})")
    vm = results.get("vm", {})
    for tool, figures in results.items():
        if tool == "vm-large":
            print(f"{args.hosts} hosts x {args.large_files} files + 1 service, VM backend only")
        cells = []
        for key in ("first", "noop_cold", "noop_warm", "one_file"):
            if key in figures:
                ratio = ""
                base = vm.get(key) or vm.get("noop_cold" if key != "one_file" else key)
                if tool not in ("vm", "vm-large") and base:
                    ratio = f" ({figures[key] / base:.1f}x vm)"
                cells.append(f"{key} {figures[key]:.2f}s{ratio}")
        print(f"  {tool:8} " + ", ".join(cells))


if __name__ == "__main__":
    main()
