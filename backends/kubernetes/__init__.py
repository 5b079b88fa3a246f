"""The Kubernetes backend package: `open(target, context)` returns a Backend.

Target options (reconciler.yaml): `kubeconfig` (file; default ~/.kube/config),
`context` (default: the file's current context), `in_cluster` (use the pod's
service account instead), `namespace` (for namespaced objects that name none;
default "default"), `force_conflicts` (take over fields other managers own),
`propagation_policy` (Background, Foreground or Orphan, for prune), `crd_timeout`
(to wait for a CRD to be Established), `delete_timeout`, `namespaces`, `watch`
(default true: in the daemon, live state comes from a watch-fed cache, see
cache.py; false lists everything on every read, as one-shot commands always
do), and the sync options (`create_namespace`, `replace`, `exclude`,
`health_exprs`, `impersonate`); parsed once, by `backends.kubernetes.options`;
docs/kubernetes.md has them all.

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
    from backends.kubernetes.cache import CONNECTIONS, LiveCache
    from backends.kubernetes.client import KubeClient, load_configuration

    options = options_of(target)
    path = os.path.expanduser(options.kubeconfig) if options.kubeconfig else None
    name = options.context
    in_cluster = options.in_cluster
    user = options.impersonated_user
    # Every call then has the service account's rights only (the API server
    # checks that the configured credentials may impersonate it); the cache's
    # watches too, so it never holds what the account may not read.
    headers = {"Impersonate-User": user} if user else None

    def client(watches: bool = False) -> KubeClient:
        configuration = load_configuration(kubeconfig=path, context=name, in_cluster=in_cluster)
        if watches:
            configuration.connection_pool_maxsize = CONNECTIONS
            # TCP keepalive, as client-go asks for: a watch whose peer vanished
            # without a word (a dropped NAT entry) breaks in about a minute
            # instead of at its timeout, minutes later.
            configuration.keep_alive = True
        return KubeClient(configuration, headers=headers)

    backend = KubernetesBackend(target, client())
    if context.keeper is not None and options.watch:
        # The cache outlives this backend: its own client, made from the same
        # place; a changed kubeconfig (file or its content) makes a new cache.
        identity = (path, name, in_cluster, user, _modified(path))
        backend.cache = context.keeper.get(
            ("kubernetes", target.name), identity,
            lambda: LiveCache(client(watches=True), page_size=backend.page_size))
    return backend


def _modified(path: str | None) -> float:
    try:
        return os.stat(path or os.path.expanduser("~/.kube/config")).st_mtime
    except OSError:
        return 0.0


def __getattr__(name: str) -> object:
    # The Kubernetes client loads on first use: the state-repo loader imports
    # `backends.kubernetes.options` and must not pay for it.
    if name == "KubernetesBackend":
        from backends.kubernetes.backend import KubernetesBackend

        return KubernetesBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
