"""The VM backend: the Backend protocol over a fleet of hosts.

Per sync and host it costs one connection (kept until `close`), one fact
command for `read_live`, and at most two scripts plus the uploads for `apply`.
Hosts run in parallel on a thread pool bounded by the target's `parallel`.

Invariants:
- `read_live` runs exactly one command per host, and `apply` with nothing to do
  on a host opens no connection and runs nothing there.
- A host whose transport failed is forgotten, so the next call reconnects.
- Errors name the host; when several hosts fail, HostsFailed lists each.
"""

from __future__ import annotations

import getpass
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from backends.base import ApplyResult, HealthReport, Inventory
from backends.vm import health as vm_health
from backends.vm import resources as res
from backends.vm.facts import (
    FactRequest,
    Facts,
    GuardQuery,
    ServiceQuery,
    fact_script,
    live_path_form,
    parse_facts,
)
from backends.vm.options import VmOptions
from backends.vm.steps import HostWork, Step, host_work, steps_script
from backends.vm.transport import LocalTransport, Transport
from reconciler.errors import BackendError, TransportError
from reconciler.model import App, Change, HostKey, LiveResource, LiveView, Resource, Target

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
            return LocalTransport(host=host, sudo=opts.sudo)
        from backends.vm import ssh  # paramiko only when a target uses SSH

        with self._lock:
            if self._key is None:
                self._key = ssh.load_key(opts.identity_file)
        return ssh.SshTransport(
            host=host, address=res.host_name(host), port=res.host_port(host, opts.port),
            user=opts.user or getpass.getuser(), key=self._key, known_hosts=opts.known_hosts,
            sudo=opts.sudo, connect_timeout=opts.connect_timeout,
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
        hosts = list(dict.fromkeys(hosts))
        futures = {host: self._pool.submit(self._guarded, host, work) for host in hosts}
        results: dict[str, T] = {}
        failures: dict[str, BaseException] = {}
        for host, future in futures.items():
            try:
                results[host] = future.result()
            except BackendError as exc:
                failures[host] = exc
        if len(failures) == 1:
            raise next(iter(failures.values()))
        if failures:
            raise HostsFailed(failures)
        return results

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
        per_host = self._each(
            self.options.hosts,
            lambda host: self._read_host(
                host, resources, {rid: app for (h, rid), app in inventory.items() if h == host}
            ),
        )
        desired: dict[HostKey, Mapping[str, Any]] = {}
        live: dict[HostKey, LiveResource] = {}
        for host in self.options.hosts:
            want, have = per_host[host]
            desired.update(want)
            live.update(have)
        return LiveView(
            target=self.target.name, hosts=self.options.hosts, desired=desired, live=live
        )

    def _read_host(
        self, host: str, resources: Sequence[Resource], owned: Mapping[Any, str]
    ) -> tuple[dict[HostKey, Mapping[str, Any]], dict[HostKey, LiveResource]]:
        name, root = res.host_name(host), self.root(host)
        desired: dict[HostKey, Mapping[str, Any]] = {
            (host, r.id): res.desired_form(r, root, name) for r in resources
        }
        paths = {r.id: res.under_root(root, r.id.name, name)
                 for r in resources if r.id.kind in res.PATH_KINDS}
        for rid in owned:
            if rid.kind in res.PATH_KINDS and rid not in paths:
                paths[rid] = res.under_root(root, rid.name, name)
        services = [r for r in resources if r.id.kind == "Service"]
        commands = [r for r in resources if r.id.kind == "Command"]
        request = _fact_request(services, commands, paths.values(), root, name, self.env(host))
        facts = self._collect(host, request)
        live: dict[HostKey, LiveResource] = {}

        def put(rid: Any, state: Mapping[str, Any]) -> None:
            live[(host, rid)] = LiveResource(id=rid, host=host, state=state,
                                             owner_app=owned.get(rid))

        for rid, path in paths.items():
            form = live_path_form(facts.paths.get(path), desired.get((host, rid)))
            if form is not None:
                put(rid, form)
        for index, svc in enumerate(services):
            code = facts.services.get(index)
            if code is None:
                raise BackendError(f"{host}: {svc.id} names a unit but systemctl is missing")
            put(svc.id, {"state": "running" if code == 0 else "stopped"})
        for index, cmd in enumerate(commands):
            # Without a guard, a command is done once it ran (it is in the inventory).
            guarded = bool(cmd.body.get("unless") or cmd.body.get("creates"))
            if facts.guards.get(index, False) if guarded else cmd.id in owned:
                put(cmd.id, {"done": True})
        for rid in owned:  # owned, no longer desired, not a path: let prune forget it
            if rid.kind in ("Service", "Command") and (host, rid) not in desired:
                put(rid, {"state": "unknown"} if rid.kind == "Service" else {"done": True})
        return desired, live

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
        counts = self._each(busy, lambda host: self._apply_host(host, works[host]))
        restarted = tuple(f"{host}: {svc}" for host in busy for svc in works[host].restarted)
        return ApplyResult(applied=sum(counts.values()), restarted=restarted)

    def _apply_host(self, host: str, work: HostWork) -> int:
        transport = self.transport(host)
        done = self._run_steps(host, transport, work.prepare)
        for upload in work.uploads:
            transport.put(upload.path, upload.data, upload.mode)
        return done + len(work.uploads) + self._run_steps(host, transport, work.finish)

    def _run_steps(self, host: str, transport: Transport, steps: Sequence[Step]) -> int:
        if not steps:
            return 0
        result = transport.run(steps_script(steps, self.env(host)))
        ok = sum(1 for line in result.stdout.splitlines() if line.startswith("OK "))
        if result.exit == 0 and ok == len(steps):
            return ok
        failed = [line.split() for line in result.stdout.splitlines() if line.startswith("FAIL ")]
        output = " | ".join(result.stderr.strip().splitlines()[-3:])
        if failed and len(failed[0]) == 3 and failed[0][1].isdigit():
            step = steps[int(failed[0][1])]
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


def _fact_request(
    services: Sequence[Resource], commands: Sequence[Resource], paths: Iterable[str],
    root: str, host: str, env: Mapping[str, str],
) -> FactRequest:
    service_queries = tuple(
        ServiceQuery(unit=str(s.body.get("unit") or ""),
                     status=res.expand(str(s.body.get("status") or "false"), host))
        for s in services
    )
    guard_queries = tuple(
        GuardQuery(
            unless=res.expand(str(c.body.get("unless") or ""), host),
            creates=res.under_root(root, str(c.body["creates"]), host)
            if c.body.get("creates") else "",
        )
        for c in commands
    )
    return FactRequest(paths=tuple(sorted(set(paths))), services=service_queries,
                       guards=guard_queries, env=env)
