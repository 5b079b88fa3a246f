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
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.vm import resources as res
from backends.vm.facts import env_prelude
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

    def path(self, name: str) -> str:
        return res.under_root(self.root, name, self.host)


def _q(text: str) -> str:
    return shlex.quote(text)


def _owner_step(path: str, body: Mapping[str, Any], what: str) -> Step | None:
    owner, group = body.get("owner"), body.get("group")
    if owner is None and group is None:
        return None
    spec = f"{owner or ''}:{group or ''}" if group is not None else str(owner)
    return Step(description=f"set owner of {what}", command=f"chown -h {_q(spec)} -- {_q(path)}")


def _file(b: _Builder, change: Change, resource: Resource) -> None:
    path, body = b.path(resource.id.name), resource.body
    want = res.desired_form(resource, b.root, b.host)
    live = change.live or {}
    mode = int(want.get("mode", "0644"), 8)
    what = f"File {resource.id.name}"
    if live.get("type") != "file" or live.get("sha256") != want["sha256"]:
        if not live:
            b.prepare.append(Step(
                description=f"make the directory of {what}",
                command=f"mkdir -p -- {_q(posixpath.dirname(path))}",
            ))
        b.uploads.append(Upload(path=path, data=res.content_bytes(body), mode=mode))
    elif "mode" in want and live.get("mode") != want["mode"]:
        b.finish.append(Step(description=f"set mode of {what}",
                             command=f"chmod {want['mode']} -- {_q(path)}"))
    b.changed_files.add(posixpath.normpath("/" + resource.id.name))
    owner = _owner_step(path, body, what)
    if owner is not None:
        b.finish.append(owner)


def _directory(b: _Builder, resource: Resource) -> None:
    path, body = b.path(resource.id.name), resource.body
    want = res.desired_form(resource, b.root, b.host)
    what = f"Directory {resource.id.name}"
    command = f"mkdir -p -- {_q(path)}"
    if "mode" in want:
        command += f" && chmod {want['mode']} -- {_q(path)}"
    b.prepare.append(Step(description=f"make {what}", command=command))
    owner = _owner_step(path, body, what)
    if owner is not None:
        b.prepare.append(owner)


def _symlink(b: _Builder, resource: Resource) -> None:
    path = b.path(resource.id.name)
    target = res.desired_form(resource, b.root, b.host)["target"]
    tmp = f"{path}.reconciler-tmp"
    # ln to a temporary name, then rename over the path: the link flips atomically.
    b.finish.append(Step(
        description=f"link Symlink {resource.id.name}",
        command=(
            f"mkdir -p -- {_q(posixpath.dirname(path))} && rm -f -- {_q(tmp)} && "
            f"ln -s -- {_q(target)} {_q(tmp)} && mv -Tf -- {_q(tmp)} {_q(path)}"
        ),
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
    return restarted


def _command(b: _Builder, resource: Resource) -> None:
    run = res.expand(str(resource.body.get("run", "")), b.host)
    b.finish.append(Step(description=f"run Command {resource.id.name}", command=run))


def _delete(b: _Builder, change: Change) -> None:
    kind, name = change.id.kind, change.id.name
    if kind in ("File", "Symlink"):
        command = f"rm -f -- {_q(b.path(name))}"
    elif kind == "Directory":
        # Only an empty directory is removed: it may hold files we never managed.
        command = f"rmdir -- {_q(b.path(name))} 2>/dev/null || true"
    elif kind == "Service":
        command = (f"if command -v systemctl >/dev/null 2>&1; then "
                   f"systemctl stop {_q(name)} || true; fi")
    else:
        return  # a Command that ran cannot be undone; forgetting it is enough
    depth = posixpath.normpath("/" + name).count("/")
    b.deletes.append((depth, Step(description=f"delete {change.id}", command=command)))


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
    deletes = [step for _, step in sorted(b.deletes, key=lambda d: -d[0])]
    return HostWork(
        prepare=tuple(b.prepare), uploads=tuple(b.uploads),
        finish=tuple(b.finish + deletes), restarted=tuple(restarted),
    )


def steps_script(steps: Sequence[Step], env: Mapping[str, str]) -> str:
    """One script running `steps` in order; stops at the first failure."""
    lines = [*env_prelude(env), 'log=$(mktemp) || exit 97', "trap 'rm -f \"$log\"' EXIT"]
    for index, step in enumerate(steps):
        lines.append(
            f"( {step.command}\n) </dev/null >\"$log\" 2>&1 || {{ r=$?; echo \"FAIL {index} $r\"; "
            f"tail -c 2000 \"$log\" >&2; exit 1; }}"
        )
        lines.append(f"echo 'OK {index}'")
    return "\n".join(lines) + "\n"
