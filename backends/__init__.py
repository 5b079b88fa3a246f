"""Backends: the edge where desired state meets live machines, clusters and YARN.

Each backend lives in its own package and never imports another. The rollout
engine sees only the `Backend` protocol of `backends.base`; `open_backend`
imports a backend package only when a target uses it, because the Kubernetes
client alone costs a large share of a second to import.
"""
