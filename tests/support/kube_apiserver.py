"""The test Kubernetes API server; it lives in tests/support/kube/ (this name stays
importable for the tests and benchmarks that use it)."""

from tests.support.kube import KubeApiServer

__all__ = ["KubeApiServer"]
