"""The VM backend: the Backend protocol over a fleet of hosts.

Per sync and host it costs one connection (kept until `close`), one fact
command for `read_live` (plus one that reads the text of changed files, only
when some file differs), and at most two scripts plus the uploads for `apply`.
Hosts run in parallel on a thread pool bounded by the target's `parallel`.

Invariants:
- A no-op `read_live` runs exactly one command per host, and `apply` with
  nothing to do on a host opens no connection and runs nothing there.
- A managed path that leads outside the root through a symlink fails
  `read_live` for its host (naming host and path) before any form holds
  something read through it; `apply` checks again on the host before writing.
- A host whose transport failed is forgotten, so the next call reconnects.
- A read that failed only because hosts could not be reached raises
  HostsUnreachable, holding the live view of every host it did reach.
- Errors name the host; when several hosts fail, HostsFailed lists each.
"""

from __future__ import annotations

import getpass
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from backends.base import ApplyResult, HealthReport, Inventory
from backends.vm import content
from backends.vm import health as vm_health
from backends.vm import live as vm_live
from backends.vm import resources as res
from backends.vm.facts import FactRequest, Facts, fact_script, parse_facts
from backends.vm.options import VmOptions
from backends.vm.steps import HostWork, Step, host_work, steps_script
from backends.vm.transport import NO_SPACE, LocalTransport, Transport, lacks_space, plain
from reconciler.errors import BackendError, HostsUnreachable, TransportError
from reconciler.model import (
    App,
    Change,
    HostKey,
    LiveResource,
    LiveView,
    Resource,
    ResourceId,
    Target,
)

T = TypeVar("T")
TransportFactory = Callable[[str], Transport]


class HostsFailed(BackendError):
    """More than one host failed; `failures` maps each host to its error."""

    def __init__(self, failures: Mapping[str, BaseException]) -> None:
        self.failures = dict(failures)
        detail = "; ".join(str(e) for e in self.failures.values())
        super().__init__(f"{len(self.failures)} hosts failed: {detail}")


class VmBackend:
    def __init__(
        self, target: Target, options: VmOptions, *, factory: TransportFactory | None = None
    ) -> None:
        self.target = target
        self.options = options
        self._factory = factory or self._default_factory
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self._key: Any = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(options.parallel, len(options.hosts))),
            thread_name_prefix=f"vm-{target.name}",
        )

    # --- connections -------------------------------------------------------

    def _default_factory(self, host: str) -> Transport:
        opts = self.options
        if opts.transport == "local":
            return LocalTransport(host=host, sudo=opts.sudo, sudo_command=opts.sudo_command)
        from backends.vm import ssh  # paramiko only when a target uses SSH

        with self._lock:
            if self._key is None:
                self._key = ssh.load_key(opts.identity_file)
        return ssh.SshTransport(
            host=host, address=res.host_name(host), port=res.host_port(host, opts.port),
            user=opts.user or getpass.getuser(), key=self._key, known_hosts=opts.known_hosts,
            sudo=opts.sudo, sudo_command=opts.sudo_command,
            connect_timeout=opts.connect_timeout,
        )

    def transport(self, host: str) -> Transport:
        """The host's open transport, connecting on first use."""
        with self._lock:
            found = self._transports.get(host)
        if found is not None:
            return found
        made = self._factory(host)
        with self._lock:
            self._transports.setdefault(host, made)
            kept = self._transports[host]
        if kept is not made:
            made.close()
        return kept

    def _forget(self, host: str) -> None:
        with self._lock:
            dropped = self._transports.pop(host, None)
        if dropped is not None:
            dropped.close()

    def _each(self, hosts: Iterable[str], work: Callable[[str], T]) -> dict[str, T]:
        """Run `work` for every host in parallel; raise when any host failed."""
        results, failures = self._each_host(hosts, work)
        if failures:
            raise _failure(failures)
        return results

    def _each_host(self, hosts: Iterable[str], work: Callable[[str], T]
                   ) -> tuple[dict[str, T], dict[str, BackendError]]:
        """Run `work` for every host in parallel: the results and the failures."""
        hosts = list(dict.fromkeys(hosts))
        futures = {host: self._pool.submit(self._guarded, host, work) for host in hosts}
        results: dict[str, T] = {}
        failures: dict[str, BackendError] = {}
        for host, future in futures.items():
            try:
                results[host] = future.result()
            except BackendError as exc:
                failures[host] = exc
        return results, failures

    def _guarded(self, host: str, work: Callable[[str], T]) -> T:
        try:
            return work(host)
        except TransportError:
            self._forget(host)
            raise

    def root(self, host: str) -> str:
        return posixpath.normpath(res.expand(self.options.root, res.host_name(host)))

    def env(self, host: str) -> dict[str, str]:
        return {"RECONCILER_ROOT": self.root(host), "RECONCILER_HOST": res.host_name(host)}

    # --- Backend protocol --------------------------------------------------

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        unknown = [r.id for r in resources if r.id.kind not in res.KINDS]
        if unknown:
            raise BackendError(f"target {self.target.name}: {unknown[0]} is not a VM kind")
        per_host, failures = self._each_host(
            self.options.hosts,
            lambda host: self._read_host(
                host, resources, {rid: app for (h, rid), app in inventory.items() if h == host}
            ),
        )
        desired: dict[HostKey, Mapping[str, Any]] = {}
        live: dict[HostKey, LiveResource] = {}
        reached = tuple(h for h in self.options.hosts if h in per_host)
        for host in reached:
            want, have = per_host[host]
            desired.update(want)
            live.update(have)
        view = LiveView(target=self.target.name, hosts=reached, desired=desired, live=live)
        if failures and all(isinstance(e, TransportError) for e in failures.values()):
            # Only connections failed: what the other hosts hold is still true,
            # and a rollback can return them (see HostsUnreachable).
            lost = tuple(h for h in self.options.hosts if h in failures)
            raise HostsUnreachable(str(_failure(failures)), hosts=lost, view=view)
        if failures:
            raise _failure(failures)
        return view

    def _read_host(
        self, host: str, resources: Sequence[Resource], owned: Mapping[ResourceId, str]
    ) -> tuple[dict[HostKey, Mapping[str, Any]], dict[HostKey, LiveResource]]:
        asked = vm_live.ask(host, self.root(host), resources, owned, self.env(host))
        facts = self._collect(host, asked.request)
        refused = vm_live.refusals(asked, facts)
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise BackendError(refused[0] + more)
        live = vm_live.answer(asked, facts, owned)
        desired = dict(asked.desired)
        self._add_content(host, asked, facts, desired, live)
        return desired, live

    def _add_content(
        self, host: str, asked: vm_live.HostAsk, facts: Facts,
        desired: dict[HostKey, Mapping[str, Any]], live: dict[HostKey, LiveResource],
    ) -> None:
        """Put the text of changed (and new) non-secret files into both forms,
        reading every changed file of the host in one command."""
        by_id = {r.id: r for r in asked.resources}
        reads: list[Resource] = []
        for rid, path in asked.paths.items():
            resource, key = by_id.get(rid), (host, rid)
            if resource is None or resource.id.kind != "File":
                continue
            if key not in live:
                desired[key] = content.creation_form(resource, desired[key])
            elif content.to_read(resource, facts.paths.get(path)):
                reads.append(resource)
        if not reads:
            return
        paths = [asked.paths[r.id] for r in reads]
        result = self.transport(host).run(content.read_script(paths))
        for index, data in content.parse_read(result.stdout, len(paths)).items():
            resource = reads[index]
            key = (host, resource.id)
            want, have = content.enrich(resource, desired[key], live[key].state, data)
            desired[key] = want
            live[key] = replace(live[key], state=have)

    def _collect(self, host: str, request: FactRequest) -> Facts:
        result = self.transport(host).run(fact_script(request))
        facts = parse_facts(result.stdout, request)
        if not facts.complete:
            tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
            raise BackendError(
                f"{host}: fact collection failed (exit {result.exit}): {tail[0]}"
            )
        return facts

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        by_host: dict[str, list[Change]] = {}
        for change in changes:
            if change.host not in self.options.hosts:
                raise BackendError(f"{change.host}: not a host of target {self.target.name}")
            by_host.setdefault(change.host, []).append(change)
        works = {
            host: host_work(app, host_changes, self.root(host), res.host_name(host))
            for host, host_changes in by_host.items()
        }
        busy = [host for host, work in works.items() if not work.empty]
        done = self._each(busy, lambda host: self._apply_host(host, works[host]))
        restarted = tuple(f"{host}: {svc}" for host in busy for svc in works[host].restarted)
        return ApplyResult(applied=sum(count for count, _ in done.values()), restarted=restarted,
                           messages=tuple(note for _, notes in done.values() for note in notes))

    def _apply_host(self, host: str, work: HostWork) -> tuple[int, list[str]]:
        transport = self.transport(host)
        done, notes = self._run_steps(host, transport, work.prepare)
        for upload in work.uploads:
            transport.put(upload.path, upload.data, upload.mode)
        more, later = self._run_steps(host, transport, work.finish)
        return done + len(work.uploads) + more, notes + later

    def _run_steps(
        self, host: str, transport: Transport, steps: Sequence[Step]
    ) -> tuple[int, list[str]]:
        """Run one batch; the writes it made and the notes of steps that chose
        to leave something as it was (those are not writes)."""
        if not steps:
            return 0, []
        result = transport.run(steps_script(steps, self.env(host), self.root(host)))
        lines = result.stdout.splitlines()
        ok = sum(1 for line in lines if line.startswith("OK "))
        if result.exit == 0 and ok == len(steps):
            return _writes_and_notes(host, steps, lines)
        failed = [line.split() for line in lines if line.startswith("FAIL ")]
        output = " | ".join(result.stderr.strip().splitlines()[-3:])
        if failed and len(failed[0]) == 3 and failed[0][1].isdigit():
            step = steps[int(failed[0][1])]
            room = next((line[6:] for line in lines if line.startswith("SPACE ")), "")
            if step.path and (plain(output) == NO_SPACE or lacks_space(room, 1)):
                raise BackendError(
                    f"{host}: cannot write {step.path}: {NO_SPACE} ({step.description})")
            raise BackendError(
                f"{host}: {step.description} failed (exit {failed[0][2]}): {output}"
            )
        raise BackendError(f"{host}: apply script failed (exit {result.exit}): {output}")

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        checks = app.health
        results = self._each(
            hosts, lambda host: vm_health.check_host(host, checks, self.transport, self.env(host))
        )
        return vm_health.report(results)

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()
        self._pool.shutdown(wait=True)


def _failure(failures: Mapping[str, BackendError]) -> BackendError:
    """One host's own error, or HostsFailed naming each."""
    if len(failures) == 1:
        return next(iter(failures.values()))
    return HostsFailed(failures)


def _writes_and_notes(host: str, steps: Sequence[Step], lines: Sequence[str]
                      ) -> tuple[int, list[str]]:
    """A NOTE belongs to the step whose OK line follows it."""
    noted: set[int] = set()
    notes: list[str] = []
    index = 0
    for line in lines:
        if line.startswith("NOTE "):
            noted.add(index)
            notes.append(f"{host}: {line[5:]}")
        elif line.startswith("OK "):
            index += 1
    writes = sum(1 for i, step in enumerate(steps) if step.write and i not in noted)
    return writes, notes
