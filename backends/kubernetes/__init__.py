"""The Kubernetes backend package: `open(target, context)` returns a Backend.

Target options (reconciler.yaml): `kubeconfig` (file; default ~/.kube/config),
`context` (default: the file's current context), `in_cluster` (use the pod's
service account instead), `namespace` (for namespaced objects that name none;
default "default"), `force_conflicts` (take over fields other managers own),
`propagation_policy` (Background, Foreground or Orphan, for prune), `crd_timeout`
(to wait for a CRD to be Established), `delete_timeout`, `namespaces`; parsed
once, by `backends.kubernetes.options`.

Each target gets its own client configuration: several clusters can be open in
one process, and the kubernetes client's global default is never touched.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from backends.base import BackendContext
from backends.kubernetes.options import options_of
from reconciler.model import Target

if TYPE_CHECKING:
    from backends.kubernetes.backend import KubernetesBackend

__all__ = ["KubernetesBackend", "open"]


def open(target: Target, context: BackendContext) -> KubernetesBackend:
    """Connect lazily: nothing is sent to the cluster until the first read."""
    from backends.kubernetes.backend import KubernetesBackend
    from backends.kubernetes.client import KubeClient, load_configuration

    options = options_of(target)
    configuration = load_configuration(
        kubeconfig=os.path.expanduser(options.kubeconfig) if options.kubeconfig else None,
        context=options.context,
        in_cluster=options.in_cluster,
    )
    return KubernetesBackend(target, KubeClient(configuration))


def __getattr__(name: str) -> object:
    # The Kubernetes client loads on first use: the state-repo loader imports
    # `backends.kubernetes.options` and must not pay for it.
    if name == "KubernetesBackend":
        from backends.kubernetes.backend import KubernetesBackend

        return KubernetesBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
