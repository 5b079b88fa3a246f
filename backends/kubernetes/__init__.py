"""The Kubernetes backend package: `open(target, context)` returns a Backend.

Target options (reconciler.yaml): `kubeconfig` (file; default ~/.kube/config),
`context` (default: the file's current context), `in_cluster` (use the pod's
service account instead), `namespace` (for namespaced objects that name none;
default "default"), `force_conflicts` (take over fields other managers own),
`propagation_policy` (Background, Foreground or Orphan, for prune), `crd_timeout`
(seconds to wait for a CRD to be Established), and the sync options of
backends/kubernetes/options.py (`create_namespace`, `replace`, `exclude`,
`health_exprs`, `impersonate`); docs/kubernetes.md has them all.

Each target gets its own client configuration: several clusters can be open in
one process, and the kubernetes client's global default is never touched.
"""

from __future__ import annotations

import os

from backends.base import BackendContext
from backends.kubernetes.backend import KubernetesBackend
from backends.kubernetes.client import KubeClient, load_configuration
from backends.kubernetes.options import Options
from reconciler.model import Target

__all__ = ["KubernetesBackend", "open"]


def open(target: Target, context: BackendContext) -> KubernetesBackend:
    """Connect lazily: nothing is sent to the cluster until the first read."""
    options = target.options
    kubeconfig = options.get("kubeconfig")
    configuration = load_configuration(
        kubeconfig=os.path.expanduser(str(kubeconfig)) if kubeconfig else None,
        context=str(options["context"]) if options.get("context") else None,
        in_cluster=bool(options.get("in_cluster", False)),
    )
    user = Options.of(options).impersonated_user
    # Every call then has the service account's rights only (the API server
    # checks that the configured credentials may impersonate it).
    headers = {"Impersonate-User": user} if user else None
    return KubernetesBackend(target, KubeClient(configuration, headers=headers))
