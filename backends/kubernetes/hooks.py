"""Sync hooks as Argo CD users write them: objects run around an app's apply.

An object annotated `argocd.argoproj.io/hook` (or `reconciler.io/hook`) with
`PreSync`, `PostSync` or `SyncFail` (comma-separated for several) is a hook,
not a desired object:

- PreSync hooks run, one after another in declared order, before anything of
  the app is applied; one that fails stops the app with nothing applied.
- PostSync hooks run once every object of the app is healthy; the app is
  healthy only once they succeeded, and failed if one failed.
- SyncFail hooks run after the app failed (an apply error, a failed hook, a
  failed health gate, or a failed early prune of a `prune_first` app).

"Run" means: applied, then waited for until Healthy (a Job Complete, a Pod
Succeeded, any other kind by its ordinary health) or Degraded (a Job Failed),
within the app's `timeout`. Deletion policies (`argocd.argoproj.io/
hook-delete-policy`, comma-separated): `BeforeHookCreation` (the default, as
in Argo CD) deletes the previous run's object before creating it again,
`HookSucceeded` deletes it after it succeeded, `HookFailed` after it failed.

Helm's hook annotations (as `helm template` renders them) are read the way
Argo CD reads them, when no hook annotation of the above is set:
`helm.sh/hook` `pre-install`/`pre-upgrade` are PreSync, `post-install`/
`post-upgrade` are PostSync, and every other Helm hook (`test`, `pre-delete`,
`post-delete`, `pre-rollback`, `post-rollback`, `crd-install`) is a hook that
never runs (phase "Skip": neither applied nor planned); `helm.sh/
hook-delete-policy` `before-hook-creation`, `hook-succeeded`, `hook-failed`
are the policies of the same names.

Invariants: hooks are labelled `app.kubernetes.io/managed-by:
reconciler-hook`, so the owned-object lists never see them: they are never
pruned and never drift; the plan never shows them. Hooks run only when the
app has changes to apply, as part of that apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from backends.kubernetes.health import Health, object_health
from reconciler.errors import ApiError
from reconciler.model import HealthStatus, Resource

HOOK_ANNOTATIONS = ("argocd.argoproj.io/hook", "reconciler.io/hook")
DELETE_POLICY_ANNOTATION = "argocd.argoproj.io/hook-delete-policy"
HOOK_MANAGED_BY = "reconciler-hook"
HELM_HOOK = "helm.sh/hook"
HELM_DELETE_POLICY = "helm.sh/hook-delete-policy"
HELM_PHASES = {"pre-install": "PreSync", "pre-upgrade": "PreSync",
               "post-install": "PostSync", "post-upgrade": "PostSync"}
HELM_POLICIES = {"before-hook-creation": "BeforeHookCreation",
                 "hook-succeeded": "HookSucceeded", "hook-failed": "HookFailed"}


def _annotations(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return (body.get("metadata") or {}).get("annotations") or {}


def _split(value: Any) -> tuple[str, ...]:
    return tuple(p.strip() for p in str(value).split(",") if p.strip()) if value else ()


def phases(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The hook phases an object names; () for an ordinary object."""
    notes = _annotations(body)
    found: list[str] = []
    for key in HOOK_ANNOTATIONS:
        found.extend(p for p in _split(notes.get(key)) if p not in found)
    if not found:
        for name in _split(notes.get(HELM_HOOK)):
            phase = HELM_PHASES.get(name, "Skip")
            if phase not in found:
                found.append(phase)
    return tuple(found)


def delete_policies(body: Mapping[str, Any]) -> tuple[str, ...]:
    notes = _annotations(body)
    named = _split(notes.get(DELETE_POLICY_ANNOTATION))
    if not named and not any(notes.get(key) for key in HOOK_ANNOTATIONS):
        named = tuple(HELM_POLICIES.get(p, p) for p in _split(notes.get(HELM_DELETE_POLICY)))
    return named or ("BeforeHookCreation",)


def is_hook(resource: Resource) -> bool:
    return bool(phases(resource.body))


def of_phase(resources: Sequence[Resource], phase: str) -> list[Resource]:
    return [r for r in resources if phase in phases(r.body)]


def hook_health(obj: Mapping[str, Any]) -> Health:
    """A hook is done when it succeeded: a Pod must have finished, not just run."""
    if obj.get("kind") == "Pod" and str(obj.get("apiVersion")) == "v1":
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Succeeded":
            return Health(status=HealthStatus.HEALTHY)
        if phase == "Failed":
            return Health(status=HealthStatus.DEGRADED, message="pod failed")
        return Health(status=HealthStatus.PROGRESSING, message=f"pod {phase or 'Pending'}")
    return object_health(obj)


class HookIO(Protocol):
    """What running a hook needs of the backend."""

    def apply_hook(self, app: str, resource: Resource) -> tuple[str, Mapping[str, Any]]:
        """Apply the hook object; (its path, the server's answer)."""
        ...

    def get(self, path: str, what: str) -> Mapping[str, Any] | None: ...

    def delete(self, path: str, what: str, wait: bool) -> None: ...

    def path_of(self, resource: Resource) -> str: ...


@dataclass(frozen=True, kw_only=True)
class Started:
    resource: Resource
    path: str


class Hooks:
    """Runs the hooks of one app on one backend."""

    def __init__(self, io: HookIO, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.io = io
        self._sleep = sleep
        self._clock = clock

    def start(self, app: str, hook: Resource) -> Started:
        """Create the hook object afresh (after deleting the last run's, by default)."""
        path = self.io.path_of(hook)
        if "BeforeHookCreation" in delete_policies(hook.body):
            self.io.delete(path, str(hook.id), wait=True)
        path, _ = self.io.apply_hook(app, hook)
        return Started(resource=hook, path=path)

    def check(self, started: Started) -> Health:
        """The hook's state now; its deletion policy applied once it ended."""
        obj = self.io.get(started.path, str(started.resource.id))
        if obj is None:
            return Health(status=HealthStatus.DEGRADED, message="deleted while running")
        result = hook_health(obj)
        policies = delete_policies(started.resource.body)
        if result.status is HealthStatus.HEALTHY and "HookSucceeded" in policies:
            self.io.delete(started.path, str(started.resource.id), wait=False)
        if result.status is HealthStatus.DEGRADED and "HookFailed" in policies:
            self.io.delete(started.path, str(started.resource.id), wait=False)
        return result

    def run(self, app: str, phase: str, hooks: Sequence[Resource], timeout: float) -> None:
        """Run `hooks` one after another; raise at the first that fails or times out."""
        deadline = self._clock() + timeout
        for hook in hooks:
            started = self.start(app, hook)
            delay = 0.1
            while True:
                result = self.check(started)
                if result.status is HealthStatus.HEALTHY:
                    break
                if result.status is HealthStatus.DEGRADED:
                    raise ApiError(f"{hook.location}: {phase} hook {hook.id} failed"
                                   + (f": {result.message}" if result.message else ""))
                if self._clock() > deadline:
                    raise ApiError(f"{hook.location}: {phase} hook {hook.id} did not finish "
                                   f"within the app's timeout ({timeout:g}s)"
                                   + (f": {result.message}" if result.message else ""))
                self._sleep(delay)
                delay = min(delay * 2, 2.0)


@dataclass
class PostSync:
    """An app's PostSync hooks, stepped through by its health probes once the
    app is healthy: one hook at a time, each started once."""

    hooks: list[Resource]
    index: int = 0
    current: Started | None = None

    def step(self, runner: Hooks, app: str) -> Health:
        """Healthy once every hook succeeded; Degraded while one has failed."""
        while self.index < len(self.hooks):
            hook = self.hooks[self.index]
            if self.current is None:
                self.current = runner.start(app, hook)
            result = runner.check(self.current)
            detail = f": {result.message}" if result.message else ""
            if result.status is HealthStatus.DEGRADED:
                return Health(status=HealthStatus.DEGRADED,
                              message=f"{hook.location}: PostSync hook {hook.id} failed{detail}")
            if result.status is not HealthStatus.HEALTHY:
                return Health(status=HealthStatus.PROGRESSING,
                              message=f"PostSync hook {hook.id} running{detail}")
            self.index, self.current = self.index + 1, None
        names = ", ".join(str(h.id) for h in self.hooks)
        return Health(status=HealthStatus.HEALTHY, message=f"PostSync hook(s) succeeded: {names}")
