"""The YARN backend: services read, created, flexed, upgraded and deleted through
the YARN Services REST API (Hadoop 3.x, `/app/v1/services`).

Why it is shaped this way:
- YARN has no labels, so ownership comes only from the inventory the engine
  passes to `read_live`. A delete is refused unless that inventory names the
  service as the deleting app's: nothing this tool did not create is touched.
- The documented list call (`GET /app/v1/services`) is marked TBD and Hadoop's
  ApiServer does not serve it, so each service is read with its own GET. When a
  server does list services with full specs, those answers are used and only
  the services missing from the list are fetched one by one (the list may omit
  stopped services). A 404/405/501 on the list is remembered for the session.
- An update is the smallest documented sequence: start or stop by PUTting the
  service state; flex by PUTting a component's number_of_containers; upgrade by
  PUTting the new spec with state UPGRADING_AUTO_FINALIZE (the service must be
  STABLE and the version new), then PUTting {"state": "UPGRADING"} on every
  component the service marks NEEDS_UPGRADE. YARN finalises on its own.

Invariants: a no-op reconcile makes only GET requests; errors name the target,
the service and the HTTP status, and never contain the token.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backends.base import ApplyResult, HealthReport, Inventory
from backends.yarn import health as yarn_health
from backends.yarn import spec
from backends.yarn.client import API_ROOT, YarnClient
from backends.yarn.options import Options
from reconciler.errors import ApiError, BackendError
from reconciler.model import (
    Action,
    App,
    Change,
    HostKey,
    LiveResource,
    LiveView,
    Resource,
    ResourceId,
    Target,
)

_UPGRADING = spec.UPGRADE_STATES
# Hadoop's ApiServer answers the list call with 503 (a WebApplicationException
# it throws for "not implemented"); others may say 404, 405 or 501.
_LIST_UNSUPPORTED = (404, 405, 501, 503)
_READ_WORKERS = 8


def read_token(target: str, options: Options) -> str | None:
    """The token `token_file` or `token_env` names, read when the backend opens."""
    if options.token_file:
        path = Path(options.token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise BackendError(
                f"yarn target {target}: cannot read token_file {path}: {err.strerror}"
            ) from None
        if not token:
            raise BackendError(f"yarn target {target}: token_file {path} is empty")
        return token
    if options.token_env:
        name = options.token_env
        token = os.environ.get(name, "").strip()
        if not token:
            raise BackendError(f"yarn target {target}: environment variable {name} is not set")
        return token
    return None


def _path(name: str, *rest: str) -> str:
    parts = [urllib.parse.quote(p, safe="") for p in (name, *rest)]
    return "/".join([API_ROOT, *parts])


def _state(obj: Mapping[str, Any]) -> str:
    return str(obj.get("state", "")).upper()


def _located(change: Change, message: str) -> str:
    """`message` led by the state-repo file:line of the change's spec (the RM's
    own words, such as a validation message, stay in it)."""
    if change.resource is None or not change.resource.location.file:
        return message
    return f"{change.resource.location}: {message}"


def _key(name: str) -> HostKey:
    return ("", ResourceId(kind=spec.KIND, name=name))


class YarnBackend:
    """Backend protocol over the YARN Services API; one per target."""

    def __init__(self, target: Target, options: Options, *, client: YarnClient | None = None):
        self.target = target
        self.options = options
        self._client = client or YarnClient(
            target=target.name,
            url=options.url,
            user=options.user,
            token=read_token(target.name, options),
            timeout=options.timeout,
        )
        self._list_supported: bool | None = None
        self._owned: dict[str, str] = {}

    # --- reading -------------------------------------------------------------

    def _list(self) -> dict[str, Mapping[str, Any]]:
        """Full service specs from the list call, when the server offers one."""
        if self._list_supported is False:
            return {}
        reply = self._client.call("GET", API_ROOT, service="*", tolerate=_LIST_UNSUPPORTED)
        if reply.status in _LIST_UNSUPPORTED or not isinstance(reply.body, list):
            self._list_supported = False
            return {}
        full = {
            str(s["name"]): s
            for s in reply.body
            if isinstance(s, Mapping) and "name" in s and "components" in s
        }
        # A "minimal projection" (the docs' words) without components cannot be
        # compared; stop asking for it and read each service instead.
        self._list_supported = bool(full) or not reply.body
        return full

    def get(self, name: str) -> Mapping[str, Any] | None:
        """One service's GET answer, None when it does not exist."""
        reply = self._client.call("GET", _path(name), service=name, tolerate=(404,))
        if reply.status == 404 or not isinstance(reply.body, Mapping):
            return None
        return reply.body

    def fetch(self, names: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """GET answers of the services that exist among `names`."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        found = {n: s for n, s in self._list().items() if n in wanted}
        missing = [n for n in wanted if n not in found]
        # One GET per service; the RM asks each running service's AM (about
        # 0.1 s), so they go out a few at a time.
        with ThreadPoolExecutor(max_workers=min(_READ_WORKERS, max(1, len(missing)))) as pool:
            for name, body in zip(missing, pool.map(self.get, missing), strict=True):
                if body is not None:
                    found[name] = body
        return found

    def read_live(self, resources: Sequence[Resource], inventory: Inventory) -> LiveView:
        desired = {("", r.id): spec.comparable(r.body) for r in resources if r.id.kind == spec.KIND}
        owned = {
            key[1].name: app
            for key, app in inventory.items()
            if key[0] == "" and key[1].kind == spec.KIND
        }
        self._owned = dict(owned)
        names = [key[1].name for key in desired] + list(owned)
        live = {}
        for name, body in self.fetch(names).items():
            want = desired.get(_key(name))
            # A stopped or not yet running service is reported without its
            # spec; only its run state can be compared (see spec.reports_spec).
            if spec.reports_spec(body) or want is None:
                form = spec.comparable(body)
            else:
                form = spec.assumed(want, body)
            live[_key(name)] = LiveResource(id=_key(name)[1], state=form, owner_app=owned.get(name))
        return LiveView(target=self.target.name, hosts=("",), desired=desired, live=live)

    # --- writing -------------------------------------------------------------

    def apply(self, app: App, changes: Sequence[Change]) -> ApplyResult:
        writes = 0
        messages: list[str] = []
        for change in changes:
            try:
                count, done = self._apply_one(app, change)
            except ApiError as err:
                raise ApiError(_located(change, str(err)), status=err.status) from None
            except BackendError as err:
                raise BackendError(_located(change, str(err))) from None
            writes += count
            messages.extend(f"service {change.id.name}: {d}" for d in done)
        return ApplyResult(applied=writes, messages=tuple(messages))

    def _apply_one(self, app: App, change: Change) -> tuple[int, list[str]]:
        """(writes made, what was done) for one change."""
        if change.action == Action.CREATE:
            return self._create(change), ["create submitted"]
        if change.action == Action.UPDATE:
            done = self._update(change)
            return len(done), done
        if change.action == Action.DELETE:
            return self._delete(app, change.id.name), ["destroyed"]
        return 0, []

    def _body(self, change: Change) -> dict[str, Any]:
        if change.resource is None:
            raise BackendError(f"yarn target {self.target.name}: service {change.id.name}: no spec")
        return dict(change.resource.body)

    def _create(self, change: Change) -> int:
        body = self._body(change)
        self._client.call("POST", API_ROOT, service=change.id.name, body=body)
        return 1

    def _delete(self, app: App, name: str) -> int:
        if self._owned.get(name) != app.name:
            raise BackendError(
                f"yarn target {self.target.name}: service {name}: delete refused, "
                f"the inventory does not record it as created by app {app.name}"
            )
        try:
            self._client.call("DELETE", _path(name), service=name, tolerate=(404,))
        except ApiError as err:
            # Hadoop's ApiServer answers a DELETE of an unknown service with
            # 400 "Service X doesn't exist": already gone is what prune wants.
            if not (err.status == 400 and "doesn't exist" in str(err)):
                raise
        return 1

    def _update(self, change: Change) -> list[str]:
        name = change.id.name
        body = self._body(change)
        desired = change.desired or spec.comparable(body)
        live_form = change.live
        if live_form is None:
            found = self.get(name)
            live_form = spec.comparable(found) if found is not None else None
        if live_form is None:
            self._client.call("POST", API_ROOT, service=name, body=body)
            return ["created (it was gone)"]
        plan = spec.plan_update(name, desired, live_form)
        if isinstance(plan, str):
            raise BackendError(f"yarn target {self.target.name}: {plan}")
        done: list[str] = []
        for step in plan.steps:
            done.extend(self._run_step(step, name, body, plan))
        return done

    def _run_step(
        self, step: spec.Step, name: str, body: Mapping[str, Any], plan: spec.UpdatePlan
    ) -> list[str]:
        if step == spec.Step.STOP:
            try:
                self._client.call("PUT", _path(name), service=name, body={"state": spec.STOPPED})
            except ApiError as err:
                # 400 "Service X is already stopped": the state we want.
                if not (err.status == 400 and "already stopped" in str(err)):
                    raise
            return [f"state {spec.STOPPED} requested"]
        if step == spec.Step.START:
            self._client.call("PUT", _path(name), service=name, body={"state": "STARTED"})
            return ["state STARTED requested", *self._after_start(name, body)]
        if step == spec.Step.WAIT:
            return []
        if step == spec.Step.RECREATE:
            return self._recreate(name, body)
        if step == spec.Step.FLEX:
            for comp, count in sorted(plan.flex.items()):
                self._client.call(
                    "PUT",
                    _path(name, "components", comp),
                    service=name,
                    body={"number_of_containers": count},
                )
            return [f"flexed {comp} to {n}" for comp, n in sorted(plan.flex.items())]
        return self._upgrade(name, body, plan.upgrade_components)

    def _recreate(self, name: str, body: Mapping[str, Any]) -> list[str]:
        """Destroy a service stuck in an upgrade, wait until it is gone, create it anew."""
        self._client.call("DELETE", _path(name), service=name, tolerate=(404,))
        self._wait_gone(name)
        self._client.call("POST", API_ROOT, service=name, body=dict(body))
        return ["destroyed mid-upgrade", "re-created at the desired spec"]

    def _wait_gone(self, name: str) -> None:
        deadline = time.monotonic() + self.options.settle_timeout
        while self.get(name) is not None:
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"yarn target {self.target.name}: service {name} still exists "
                    f"{self.options.settle_timeout:g}s after its DELETE"
                )
            time.sleep(self.options.poll_interval)

    def _after_start(self, name: str, body: Mapping[str, Any]) -> list[str]:
        """A stopped service starts with the spec it was saved with, which a GET
        could not show: once it runs, flex or upgrade it to the desired spec."""
        live = self._wait(name, spec.reports_spec, "it to report its spec after the start")
        desired = spec.comparable(body)
        plan = spec.plan_update(name, desired, spec.comparable(live))
        if isinstance(plan, str):
            raise BackendError(f"yarn target {self.target.name}: {plan} (after the start)")
        done: list[str] = []
        for step in plan.steps:
            if step in (spec.Step.FLEX, spec.Step.UPGRADE):
                done.extend(self._run_step(step, name, body, plan))
        return done

    def _upgrade(self, name: str, body: Mapping[str, Any], changed: Sequence[str]) -> list[str]:
        # YARN only initiates an upgrade of a STABLE service (after a create,
        # start or flex it may still be settling).
        self._wait(name, lambda s: _state(s) == "STABLE", "STABLE before upgrading")
        version = str(body.get("version"))
        request = {**body, "name": name, "state": "UPGRADING_AUTO_FINALIZE"}
        self._client.call("PUT", _path(name), service=name, body=request)
        live = self._wait(
            name,
            lambda s: _state(s) in _UPGRADING or str(s.get("version")) == version,
            "the upgrade to start",
        )
        flagged = [
            str(c.get("name"))
            for c in live.get("components") or []
            if isinstance(c, Mapping) and _state(c) == "NEEDS_UPGRADE"
        ]
        # The service says which components need an upgrade; our own diff is the
        # fallback for servers that do not flag them.
        targets = flagged or (list(changed) if _state(live) in _UPGRADING else [])
        for comp in targets:
            self._client.call(
                "PUT", _path(name, "components", comp), service=name, body={"state": "UPGRADING"}
            )
        return [f"upgrade to version {version} initiated"] + [f"upgrading {c}" for c in targets]

    def _wait(
        self, name: str, done: Callable[[Mapping[str, Any]], bool], what: str
    ) -> Mapping[str, Any]:
        """GET the service every poll_interval until `done` holds for it."""
        deadline = time.monotonic() + self.options.settle_timeout
        while True:
            live = self.get(name)
            state = _state(live) if live is not None else "absent"
            if live is not None and done(live):
                return live
            if state in ("FAILED", "absent"):
                raise BackendError(
                    f"yarn target {self.target.name}: service {name} is {state} "
                    f"while waiting for {what}"
                )
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"yarn target {self.target.name}: service {name} still {state} after "
                    f"{self.options.settle_timeout:g}s waiting for {what}"
                )
            time.sleep(self.options.poll_interval)

    # --- health --------------------------------------------------------------

    def health(self, app: App, hosts: Sequence[str]) -> HealthReport:
        services = [r for r in app.resources if r.id.kind == spec.KIND]
        found = self.fetch([r.id.name for r in services])
        now_ms = time.time() * 1000.0
        results = []
        for r in services:
            version = r.body.get("version")
            live = found.get(r.id.name)
            want_stopped = str(r.body.get("state", "")).upper() == spec.STOPPED
            if live is not None and not spec.reports_spec(live):
                version = None  # a stopped or starting service reports no version
            results.append(
                yarn_health.service_health(
                    live,
                    name=r.id.name,
                    version=str(version) if version is not None else None,
                    now_ms=now_ms,
                    min_ready=self.options.min_ready,
                    want_stopped=want_stopped,
                )
            )
        folded = yarn_health.fold(results)
        return HealthReport(status=folded.status, message=folded.message)

    def close(self) -> None:
        """Nothing to release: urllib opens one connection per request."""
