"""One host's live view: what to ask it, and what its answers mean. Pure.

`ask` turns the resources of a target and what the inventory says this host
owns into one FactRequest (the one command of a read); `refusals` says which
managed paths lead outside the root through a symlink; `answer` turns the facts
into comparable live forms. The backend only runs the command in between.

Invariants:
- Every path that a write, delete or mode change would go through is resolved
  on the host (`realpath -m`: a parent for files and links, the directory
  itself for directories, the state folder when records are used); a path
  whose real location is outside the root's real location, or that cannot be
  resolved, is refused before anything is read into a form or written.
- Prune candidates say in their live form what a delete will do when it will
  not simply remove them (a non-empty Directory is kept; a Service without a
  stop record is left running), so the plan's diff shows it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backends.vm import records
from backends.vm import resources as res
from backends.vm.facts import FactRequest, Facts, GuardQuery, ServiceQuery, live_path_form
from reconciler.errors import BackendError
from reconciler.model import HostKey, LiveResource, Resource, ResourceId

LEFT_RUNNING = "left running: no stop record on the host (applied before records were kept)"


def kept_note(entries: int) -> str:
    noun = "entry" if entries == 1 else "entries"
    return f"kept: not empty ({entries} {noun} left); a Directory is removed only when empty"


@dataclass(frozen=True, kw_only=True)
class HostAsk:
    host: str
    """The host as the target spells it (may hold a port)."""
    root: str
    resources: tuple[Resource, ...]
    desired: Mapping[HostKey, Mapping[str, Any]]
    paths: Mapping[ResourceId, str]
    """Every managed or owned path resource -> its absolute path under the root."""
    contained: Mapping[str, str]
    """Path that must resolve inside the root -> the resource it is checked for."""
    services: tuple[Resource, ...]
    commands: tuple[Resource, ...]
    pruned_dirs: tuple[str, ...]
    pruned_services: tuple[ResourceId, ...]
    request: FactRequest


def ask(
    host: str, root: str, resources: Sequence[Resource], owned: Mapping[ResourceId, str],
    env: Mapping[str, str],
) -> HostAsk:
    name = res.host_name(host)
    desired: dict[HostKey, Mapping[str, Any]] = {
        (host, r.id): res.desired_form(r, root, name) for r in resources
    }
    paths = {r.id: res.under_root(root, r.id.name, name)
             for r in resources if r.id.kind in res.PATH_KINDS}
    for rid in owned:
        if rid.kind in res.PATH_KINDS and rid not in paths:
            paths[rid] = res.under_root(root, rid.name, name)
    contained: dict[str, str] = {}
    for rid, path in paths.items():
        contained.setdefault(res.contained_path(rid.kind, path), f"{rid.kind} {rid.name}")
    pruned = [rid for rid in owned if (host, rid) not in desired]
    services = tuple(r for r in resources if r.id.kind == "Service")
    commands = tuple(r for r in resources if r.id.kind == "Command")
    pruned_services = tuple(rid for rid in pruned if rid.kind == "Service")
    if services or commands or pruned_services or any(r.kind == "Command" for r in pruned):
        contained.setdefault(records.state_dir(root), "the reconciler's state folder")
    pruned_dirs = tuple(sorted(paths[rid] for rid in pruned if rid.kind == "Directory"))
    request = FactRequest(
        paths=tuple(sorted(set(paths.values()))),
        services=tuple(ServiceQuery(unit=str(s.body.get("unit") or ""),
                                    status=res.expand(str(s.body.get("status") or "false"), name))
                       for s in services),
        guards=tuple(_guard(c, root, name) for c in commands),
        env=env, root=root,
        # Under "/" nothing can lead outside: skip the resolution altogether.
        contained=tuple(sorted(contained)) if root != "/" else (),
        counted=pruned_dirs,
        records=tuple(records.service_record(root, rid.name) for rid in pruned_services),
    )
    return HostAsk(host=host, root=root, resources=tuple(resources), desired=desired,
                   paths=paths, contained=contained, services=services, commands=commands,
                   pruned_dirs=pruned_dirs,
                   pruned_services=pruned_services, request=request)


def _guard(command: Resource, root: str, host: str) -> GuardQuery:
    body = command.body
    return GuardQuery(
        unless=res.expand(str(body.get("unless") or ""), host),
        creates=res.under_root(root, str(body["creates"]), host) if body.get("creates") else "",
        record=records.command_record(root, command.id.name),
    )


def inside(real_root: str, real: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def refusals(asked: HostAsk, facts: Facts) -> list[str]:
    """One message per contained path that leads outside the root or cannot be
    resolved; empty when every path stays inside."""
    if not asked.request.contained:
        return []
    real_root = facts.resolved.get(asked.root)
    out: list[str] = []
    for path in asked.request.contained:
        real, what = facts.resolved.get(path), asked.contained[path]
        if real is None or real_root is None:
            out.append(f"{asked.host}: {what}: cannot resolve {path} on the host "
                       "(GNU realpath missing or a folder not searchable); refusing it")
        elif not inside(real_root, real):
            out.append(f"{asked.host}: {what}: {path} leads outside the root {asked.root} "
                       f"through a symlink (to {real}); refusing to read or write it")
    return out


def kept_entries(entries: Mapping[str, int], removed: set[str]) -> dict[str, int]:
    """Per pruned directory, the entries left after this prune deletes `removed`
    (deepest first: a pruned sub-directory counts as removed only if it empties)."""
    left: dict[str, int] = {}
    for directory in sorted(entries, key=lambda d: -d.count("/")):
        going = [p for p in removed if posixpath.dirname(p) == directory
                 and left.get(p, 0) == 0]
        left[directory] = max(0, entries[directory] - len(going))
    return left


def answer(asked: HostAsk, facts: Facts, owned: Mapping[ResourceId, str]
           ) -> dict[HostKey, LiveResource]:
    host, live = asked.host, dict[HostKey, LiveResource]()

    def put(rid: ResourceId, state: Mapping[str, Any]) -> None:
        live[(host, rid)] = LiveResource(id=rid, host=host, state=state,
                                         owner_app=owned.get(rid))

    removed = {path for rid, path in asked.paths.items()
               if (host, rid) not in asked.desired and rid in owned and path in facts.paths}
    left = kept_entries(facts.entries, removed)
    for rid, path in asked.paths.items():
        form: dict[str, Any] | None = live_path_form(
            facts.paths.get(path), asked.desired.get((host, rid)))
        if form is not None and left.get(path, 0) > 0 and form["type"] == "directory":
            form["on_delete"] = kept_note(left[path])
        if form is not None:
            put(rid, form)
    for index, svc in enumerate(asked.services):
        code = facts.services.get(index)
        if code is None:
            raise BackendError(f"{host}: {svc.id} names a unit but systemctl is missing")
        put(svc.id, {"state": "running" if code == 0 else "stopped"})
    for index, cmd in enumerate(asked.commands):
        if res.guarded(cmd.body):
            if facts.guards.get(index, False):
                put(cmd.id, {"done": True})
        elif index in facts.run_hashes:
            put(cmd.id, {"run_sha256": facts.run_hashes[index]})
    for index, rid in enumerate(asked.pruned_services):
        stop = records.stop_command(facts.records.get(index, ""), rid.name)
        put(rid, {"stop": stop} if stop else {"on_delete": LEFT_RUNNING})
    for rid in owned:  # an owned Command no longer desired: let prune forget it
        if rid.kind == "Command" and (host, rid) not in asked.desired:
            put(rid, {"done": True})
    return live

