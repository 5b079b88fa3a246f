"""Which objects are hooks, of which phases and delete policies (pure): Argo CD's
annotations, the reconciler's own, and Helm's as Argo CD maps them."""

from __future__ import annotations

from typing import Any

import pytest

from backends.kubernetes.hooks import delete_policies, phases


def obj(**annotations: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "annotations": annotations}}


@pytest.mark.parametrize(("annotations", "expected"), [
    ({}, ()),
    ({"argocd.argoproj.io/hook": "PreSync"}, ("PreSync",)),
    ({"argocd.argoproj.io/hook": "PreSync, SyncFail"}, ("PreSync", "SyncFail")),
    ({"reconciler.io/hook": "PostSync"}, ("PostSync",)),
    ({"argocd.argoproj.io/hook": "PreSync", "reconciler.io/hook": "PreSync,PostSync"},
     ("PreSync", "PostSync")),
    ({"helm.sh/hook": "pre-install,pre-upgrade"}, ("PreSync",)),
    ({"helm.sh/hook": "post-install"}, ("PostSync",)),
    # Helm hooks Argo CD does not run are hooks that never run: not applied either.
    ({"helm.sh/hook": "test"}, ("Skip",)),
    ({"helm.sh/hook": "pre-delete,post-install"}, ("Skip", "PostSync")),
    # An Argo CD annotation wins over Helm's.
    ({"argocd.argoproj.io/hook": "SyncFail", "helm.sh/hook": "pre-install"}, ("SyncFail",)),
])
def test_phases(annotations: dict[str, str], expected: tuple[str, ...]) -> None:
    assert phases(obj(**annotations)) == expected


@pytest.mark.parametrize(("annotations", "expected"), [
    ({"argocd.argoproj.io/hook": "PreSync"}, ("BeforeHookCreation",)),
    ({"argocd.argoproj.io/hook": "PreSync",
      "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,HookFailed"},
     ("HookSucceeded", "HookFailed")),
    ({"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "hook-succeeded"},
     ("HookSucceeded",)),
    ({"helm.sh/hook": "pre-install"}, ("BeforeHookCreation",)),
    # Helm's policy belongs to Helm's hook: with an Argo CD hook it is not read.
    ({"argocd.argoproj.io/hook": "PreSync", "helm.sh/hook-delete-policy": "hook-succeeded"},
     ("BeforeHookCreation",)),
])
def test_delete_policies(annotations: dict[str, str], expected: tuple[str, ...]) -> None:
    assert delete_policies(obj(**annotations)) == expected
