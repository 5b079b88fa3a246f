"""A Kubernetes manifest's hook annotations, checked where the manifest is
loaded (backends/kubernetes/hooks.py runs the hooks).

Argo CD's `argocd.argoproj.io/hook` (or `reconciler.io/hook`) with its
`hook-delete-policy`, and Helm's `helm.sh/hook` annotations as a rendered chart
carries them: an unknown phase or policy is a validation error at its line.
"""

from __future__ import annotations

from reconciler.load.schema import Problems
from reconciler.load.yamlio import YamlMap, shown

HOOK_ANNOTATIONS = ("argocd.argoproj.io/hook", "reconciler.io/hook")
HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HOOK_PHASES = ("PreSync", "PostSync", "SyncFail")
HOOK_POLICIES = ("BeforeHookCreation", "HookSucceeded", "HookFailed")


def check_hook(p: Problems, metadata: YamlMap) -> None:
    """A manifest's hook annotations (backends/kubernetes/hooks.py runs them)."""
    notes = metadata.get("annotations")
    if not isinstance(notes, YamlMap):
        return
    phases = [key for key in HOOK_ANNOTATIONS if key in notes]
    for key in phases:
        for name in str(notes[key] or "").split(","):
            if name.strip() not in HOOK_PHASES:
                p.add(notes.line_of(key), f"metadata.annotations: {key}: {shown(name.strip())} "
                                          f"is not one of {', '.join(HOOK_PHASES)}")
    _check_helm_hook(p, notes)
    if HOOK_DELETE_POLICY not in notes:
        return
    if not phases:
        p.add(notes.line_of(HOOK_DELETE_POLICY),
              f"metadata.annotations: {HOOK_DELETE_POLICY} is set on an object that is not "
              f"a hook (no {HOOK_ANNOTATIONS[0]} annotation)")
    for name in str(notes[HOOK_DELETE_POLICY] or "").split(","):
        if name.strip() not in HOOK_POLICIES:
            p.add(notes.line_of(HOOK_DELETE_POLICY),
                  f"metadata.annotations: {HOOK_DELETE_POLICY}: {shown(name.strip())} is not "
                  f"one of {', '.join(HOOK_POLICIES)}")


HELM_HOOKS = ("pre-install", "post-install", "pre-upgrade", "post-upgrade", "pre-delete",
              "post-delete", "pre-rollback", "post-rollback", "test", "test-success",
              "test-failure", "crd-install")
HELM_POLICIES = ("before-hook-creation", "hook-succeeded", "hook-failed")


def _check_helm_hook(p: Problems, notes: YamlMap) -> None:
    """Helm's hook annotations, as a rendered chart carries them."""
    for key, allowed in (("helm.sh/hook", HELM_HOOKS),
                         ("helm.sh/hook-delete-policy", HELM_POLICIES)):
        if key not in notes:
            continue
        for name in str(notes[key] or "").split(","):
            if name.strip() not in allowed:
                p.add(notes.line_of(key), f"metadata.annotations: {key}: {shown(name.strip())} "
                                          f"is not one of {', '.join(allowed)}")
