"""Health checks of a VM app: one probe per check per host, no retries.

http and tcp probes run from the reconciler's machine (reconciler.health);
command checks run ON the host through its transport, with the same
RECONCILER_ROOT and RECONCILER_HOST variables as every other command. {host} in a URL, a tcp
host or a command is the host name without its port. A host whose transport
fails is Unknown rather than Degraded: nothing was learned about the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from backends.base import HealthReport
from backends.vm import resources as res
from backends.vm.facts import env_prelude
from backends.vm.transport import Transport
from reconciler import health as probes
from reconciler.errors import TransportError
from reconciler.model import CheckKind, HealthCheck, HealthStatus, worse

# One probe must leave the engine room for its retries inside the app's deadline.
_PROBE_TIMEOUT = 10.0


def _probe(
    host: str, check: HealthCheck, transport: Callable[[str], Transport],
    env: Mapping[str, str],
) -> probes.Probe:
    name, spec = res.host_name(host), check.spec
    timeout = min(check.timeout, _PROBE_TIMEOUT)
    if check.kind is CheckKind.HTTP:
        status = spec.get("status", 200)
        wanted = tuple(int(s) for s in status) if isinstance(status, list) else int(status)
        return probes.probe_http(res.expand(str(spec["url"]), name), status=wanted,
                                 timeout=timeout)
    if check.kind is CheckKind.TCP:
        address = res.expand(str(spec.get("host", name)), name)
        return probes.probe_tcp(address, int(spec["port"]), timeout=timeout)
    command = res.expand(str(spec["run"]), name)
    script = "\n".join([*env_prelude(env), f"( {command}\n) </dev/null 2>&1"])
    result = transport(host).run(script)
    if result.exit == 0:
        return probes.Probe(ok=True, message=f"{command!r} exited 0")
    last = result.stdout.strip().splitlines()[-1:] or [""]
    return probes.Probe(ok=False, message=f"{command!r} exited {result.exit} {last[0]}".strip())


def check_host(
    host: str, checks: Sequence[HealthCheck], transport: Callable[[str], Transport],
    env: Mapping[str, str],
) -> tuple[HealthStatus, list[str]]:
    """Probe every check once on `host`; the status and the failure messages."""
    status, failures = HealthStatus.HEALTHY, list[str]()
    for check in checks:
        try:
            probe = _probe(host, check, transport, env)
        except TransportError as exc:
            return worse(status, HealthStatus.UNKNOWN), [*failures, str(exc)]
        if not probe.ok:
            status = HealthStatus.DEGRADED
            failures.append(f"{host}: {probe.message}")
    return status, failures


def report(results: Mapping[str, tuple[HealthStatus, list[str]]]) -> HealthReport:
    overall = HealthStatus.HEALTHY
    messages: list[str] = []
    for status, failures in results.values():
        overall = worse(overall, status)
        messages.extend(failures)
    return HealthReport(
        status=overall, message="; ".join(messages) or "healthy",
        hosts={host: status for host, (status, _) in results.items()},
    )
