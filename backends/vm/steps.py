"""From one host's changes to the work that makes them true. Pure.

`host_work` turns the changes of one app on one host into three batches, so an
apply costs few round trips whatever its size: one `prepare` script (make
directories and the parents of new files), the atomic file uploads, and one
`finish` script (modes and owners, symlinks, commands, services, deletions).
`steps_script` renders a batch as one POSIX sh script that stops at the first
failing step and says which (FAIL <index> <exit>), with the step's last output
on stderr.

Invariants:
- No change, no work: an empty change list yields an empty HostWork.
- A file whose live hash already matches is not uploaded again (only its mode
  or owner is fixed).
- A service is restarted only when a file named in its restart_on changed in
  this apply, and only when it should be running; a service that is changed
  itself is started or stopped instead.
- Upload data is excluded from repr, so logging a HostWork cannot leak content.
- Unless the root is "/", the first script of an apply that touches a path
  starts with a guard step: every path the apply goes through must resolve
  (symlinks followed) inside the root's real location, or the script stops
  before its first write and uploads never start.
- A step that decides to leave something as it is (a non-empty Directory, a
  Service without a stop record) says so on fd 3 (`NOTE <text>`); that step
  is not counted as a write and its note reaches ApplyResult.messages.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.vm import records
from backends.vm import resources as res
from backends.vm.facts import env_prelude
from backends.vm.transport import space_script
from reconciler.model import Action, App, Change, Resource


@dataclass(frozen=True, kw_only=True)
class Upload:
    path: str
    data: bytes = field(repr=False)
    mode: int


@dataclass(frozen=True, kw_only=True)
class Step:
    description: str
    command: str
    write: bool = True
    """False for checks: they are not counted as writes."""
    notes: bool = False
    """The step may print a NOTE on fd 3. Only our own short commands get fd 3:
    a background process started by a user command would hold it open."""
    path: str = ""
    """What the step writes, named when it fails on a full disk."""


@dataclass(frozen=True, kw_only=True)
class HostWork:
    prepare: tuple[Step, ...] = ()
    uploads: tuple[Upload, ...] = ()
    finish: tuple[Step, ...] = ()
    restarted: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.prepare or self.uploads or self.finish)


@dataclass
class _Builder:
    root: str
    host: str
    prepare: list[Step] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    finish: list[Step] = field(default_factory=list)
    deletes: list[tuple[int, Step]] = field(default_factory=list)
    changed_files: set[str] = field(default_factory=set)
    contained: dict[str, str] = field(default_factory=dict)
    """Paths this work goes through -> the resource they are checked for."""

    def path(self, name: str, kind: str = "") -> str:
        path = res.under_root(self.root, name, self.host)
        if kind:
            self.contained.setdefault(res.contained_path(kind, path), f"{kind} {name}")
        return path

    def record(self, path: str) -> str:
        self.contained.setdefault(records.state_dir(self.root),
                                  "the reconciler's state folder")
        return path


def _q(text: str) -> str:
    return shlex.quote(text)


def _owner_step(path: str, body: Mapping[str, Any], what: str) -> Step | None:
    owner, group = body.get("owner"), body.get("group")
    if owner is None and group is None:
        return None
    spec = f"{owner or ''}:{group or ''}" if group is not None else str(owner)
    return Step(description=f"set owner of {what}", command=f"chown -h {_q(spec)} -- {_q(path)}",
                path=path)


def _file(b: _Builder, change: Change, resource: Resource) -> None:
    path, body = b.path(resource.id.name, "File"), resource.body
    want = res.desired_form(resource, b.root, b.host)
    live = change.live or {}
    mode = int(want.get("mode", "0644"), 8)
    what = f"File {resource.id.name}"
    if live.get("type") != "file" or live.get("sha256") != want["sha256"]:
        if not live:
            b.prepare.append(Step(
                description=f"make the directory of {what}",
                command=f"mkdir -p -- {_q(posixpath.dirname(path))}",
                path=posixpath.dirname(path),
            ))
        b.uploads.append(Upload(path=path, data=res.content_bytes(body), mode=mode))
    elif "mode" in want and live.get("mode") != want["mode"]:
        b.finish.append(Step(description=f"set mode of {what}",
                             command=f"chmod {want['mode']} -- {_q(path)}", path=path))
    b.changed_files.add(posixpath.normpath("/" + resource.id.name))
    owner = _owner_step(path, body, what)
    if owner is not None:
        b.finish.append(owner)


def _directory(b: _Builder, resource: Resource) -> None:
    path, body = b.path(resource.id.name, "Directory"), resource.body
    want = res.desired_form(resource, b.root, b.host)
    what = f"Directory {resource.id.name}"
    command = f"mkdir -p -- {_q(path)}"
    if "mode" in want:
        command += f" && chmod {want['mode']} -- {_q(path)}"
    b.prepare.append(Step(description=f"make {what}", command=command, path=path))
    owner = _owner_step(path, body, what)
    if owner is not None:
        b.prepare.append(owner)


def _symlink(b: _Builder, resource: Resource) -> None:
    path = b.path(resource.id.name, "Symlink")
    target = res.desired_form(resource, b.root, b.host)["target"]
    tmp = f"{path}.reconciler-tmp"
    # ln to a temporary name, then rename over the path: the link flips atomically.
    b.finish.append(Step(
        description=f"link Symlink {resource.id.name}",
        command=(
            f"mkdir -p -- {_q(posixpath.dirname(path))} && rm -f -- {_q(tmp)} && "
            f"ln -s -- {_q(target)} {_q(tmp)} && mv -Tf -- {_q(tmp)} {_q(path)}"
        ),
        path=path,
    ))


def service_command(body: Mapping[str, Any], verb: str, host: str) -> str:
    """start, stop or restart a Service: systemctl for units, else its commands."""
    if body.get("unit"):
        return f"systemctl {verb} {_q(str(body['unit']))}"
    start, stop = res.expand(str(body.get("start", "")), host), res.expand(
        str(body.get("stop", "")), host)
    status = res.expand(str(body.get("status", "")), host)
    if verb == "start":
        return start
    if verb == "stop":
        return f"if ( {status}\n) >/dev/null 2>&1; then {stop}\nfi"
    return f"if ( {status}\n) >/dev/null 2>&1; then {stop}\nfi; {start}"


def _restart_on(body: Mapping[str, Any]) -> set[str]:
    return {posixpath.normpath("/" + str(p)) for p in body.get("restart_on", ()) or ()}


def _services(b: _Builder, app: App, changed: Mapping[str, Change]) -> list[str]:
    restarted: list[str] = []
    for resource in app.resources:
        if resource.id.kind != "Service":
            continue
        name, body = resource.id.name, resource.body
        running = res.service_state(body) == "running"
        if resource.id.name in changed:
            verb = "start" if running else "stop"
        elif running and _restart_on(body) & b.changed_files:
            verb = "restart"
            restarted.append(name)
        else:
            continue
        b.finish.append(Step(description=f"{verb} Service {name}",
                             command=service_command(body, verb, b.host)))
        b.finish.append(_service_record(b, app, resource))
    return restarted


def _service_record(b: _Builder, app: App, resource: Resource) -> Step:
    """Write down how to stop what now runs, so that a prune can stop it even
    after the Service left Git (the inventory only knows the owning app)."""
    name, body = resource.id.name, resource.body
    if body.get("unit"):
        text = records.service_json(name, app.name, unit=str(body["unit"]))
    else:
        text = records.service_json(name, app.name,
                                    stop=service_command(body, "stop", b.host))
    path = b.record(records.service_record(b.root, name))
    return Step(description=f"record how to stop Service {name}",
                command=records.write_command(path, text), path=path)


def _command(b: _Builder, resource: Resource) -> None:
    run = res.expand(str(resource.body.get("run", "")), b.host)
    if not res.guarded(resource.body):
        # Record the text that ran only once it succeeded; its own subshell,
        # so an `exit 0` inside `run` cannot skip the record.
        path = b.record(records.command_record(b.root, resource.id.name))
        run = f"( {run}\n) && {records.write_command(path, records.run_hash(run))}"
    b.finish.append(Step(description=f"run Command {resource.id.name}", command=run))


def _delete(b: _Builder, change: Change) -> None:
    kind, name = change.id.kind, change.id.name
    notes = kind == "Directory"
    if kind in ("File", "Symlink"):
        command = f"rm -f -- {_q(b.path(name, kind))}"
    elif kind == "Directory":
        # Only an empty directory is removed: it may hold files we never managed.
        path = _q(b.path(name, kind))
        note = _q(f"NOTE kept Directory {name}: not empty (the reconciler never deletes "
                  "files it does not manage)")
        command = f"rmdir -- {path} 2>/dev/null || {{ [ ! -d {path} ] || echo {note} >&3; }}"
    elif kind == "Service":
        command = _stop_pruned(b, name, (change.live or {}).get("stop"))
        notes = command.startswith("echo ")
    else:
        # A Command that ran cannot be undone: forget the text it ran, so that
        # adding it again runs it again.
        record = _q(b.record(records.command_record(b.root, name)))
        command = f"rm -f -- {record}"
    depth = posixpath.normpath("/" + name).count("/")
    b.deletes.append((depth, Step(description=f"delete {change.id}", command=command,
                                  notes=notes)))


def _stop_pruned(b: _Builder, name: str, stop: object) -> str:
    record = _q(b.record(records.service_record(b.root, name)))
    if not isinstance(stop, str) or not stop:
        note = _q(f"NOTE left Service {name} running: no stop record on the host")
        return f"echo {note} >&3"
    return f"( {stop}\n) && rm -f -- {record}"


def guard_step(root: str, contained: Mapping[str, str]) -> Step:
    """A step that fails, naming each offender, when a path leads outside the
    root's real location (one `realpath` per path: applies are rare, and this
    keeps each message tied to its resource)."""
    pairs = " ".join(f"{_q(path)} {_q(what)}" for path, what in sorted(contained.items()))
    return Step(
        description="check that no path leads outside the root", write=False,
        command=(
            f"r=$(realpath -m -- {_q(root)}) && bad=0 && set -- {pairs} && "
            "while [ $# -gt 0 ]; do "
            'if ! o=$(realpath -m -- "$1"); then echo "$2: cannot resolve $1" >&2; bad=1; '
            'else case $o in "$r"|"$r"/*) ;; '
            '*) echo "$2: $1 leads outside the root through a symlink (to $o)" >&2; bad=1;; '
            'esac; fi; shift 2; done; [ "$bad" = 0 ]'
        ),
    )


def host_work(app: App, changes: Sequence[Change], root: str, host: str) -> HostWork:
    """The work that makes one app's `changes` on one host true."""
    b = _Builder(root=root, host=host)
    services: dict[str, Change] = {}
    for change in changes:
        resource, kind = change.resource, change.id.kind
        if change.action is Action.DELETE or resource is None:
            _delete(b, change)
        elif kind == "File":
            _file(b, change, resource)
        elif kind == "Directory":
            _directory(b, resource)
        elif kind == "Symlink":
            _symlink(b, resource)
        elif kind == "Command":
            _command(b, resource)
        elif kind == "Service":
            services[resource.id.name] = change
    restarted = _services(b, app, services)
    # Deepest paths first, so files go before the directories that hold them.
    finish = b.finish + [step for _, step in sorted(b.deletes, key=lambda d: -d[0])]
    prepare = b.prepare
    if b.contained and b.root != "/":
        # The guard runs before the first write: in prepare when uploads follow it.
        guard = guard_step(b.root, b.contained)
        if prepare or b.uploads:
            prepare = [guard, *prepare]
        elif finish:
            finish = [guard, *finish]
    return HostWork(prepare=tuple(prepare), uploads=tuple(b.uploads),
                    finish=tuple(finish), restarted=tuple(restarted))


def steps_script(steps: Sequence[Step], env: Mapping[str, str], root: str = "/") -> str:
    """One script running `steps` in order; stops at the first failure, then
    says how much room is left under `root` (SPACE <bytes> <inodes>): tools
    do not all call a full disk by its name (dash's printf says "I/O error")."""
    lines = [*env_prelude(env), 'log=$(mktemp) || exit 97', "trap 'rm -f \"$log\"' EXIT"]
    space = f"echo \"SPACE $({space_script(root)})\""
    for index, step in enumerate(steps):
        # fd 3 is the script's stdout, so a step can leave a NOTE for the caller.
        fd3 = " 3>&1" if step.notes else ""
        lines.append(
            f"( {step.command}\n) </dev/null{fd3} >\"$log\" 2>&1 || {{ r=$?; "
            f"echo \"FAIL {index} $r\"; "
            f"tail -c 2000 \"$log\" >&2; {space}; exit 1; }}"
        )
        lines.append(f"echo 'OK {index}'")
    return "\n".join(lines) + "\n"
