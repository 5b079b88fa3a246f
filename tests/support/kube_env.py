"""The Kubernetes the tests run against, and one namespace plus one proxy per test.

By default that is the real control plane of `kube_cluster.py`, started once per
test session. When $KUBECONFIG is set the same tests run against that cluster
instead (its current context, with the credentials it names), each in a
namespace of its own that is deleted afterwards.

Tests reach the server through a `KubeProxy` (recording, fault-injecting) and
check what happened with the admin's own calls (`call`, `get`), which bypass the
proxy and so never show in its records.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kube_cluster import ControlPlane
from tests.support.kube_proxy import KubeProxy, Upstream, upstream_from_kubeconfig

Obj = dict[str, Any]
JSON = "application/json"


@dataclass
class KubeEnv:
    upstream: Upstream
    plane: ControlPlane | None
    tmp: Path
    _proxies: list[KubeProxy] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def open(cls, tmp: Path) -> Iterator[KubeEnv]:
        external = os.environ.get("KUBECONFIG")
        if external:
            yield cls(upstream=upstream_from_kubeconfig(Path(external.split(os.pathsep)[0])),
                      plane=None, tmp=tmp)
            return
        plane = ControlPlane.start(tmp / "control-plane")
        try:
            upstream = upstream_from_kubeconfig(plane.admin_kubeconfig)
            yield cls(upstream=upstream, plane=plane, tmp=tmp)
        finally:
            plane.stop()

    # --- admin calls, not recorded by any proxy ------------------------------------

    def call(self, method: str, path: str, body: Mapping[str, Any] | str | None = None, *,
             content_type: str = JSON, token: str | None = None) -> tuple[int, Obj]:
        connection = self.upstream.connect()
        headers = {"Accept": JSON, "Content-Type": content_type, **self.upstream.headers}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, str) else json.dumps(body) if body is not None else None
        try:
            connection.request(method, path, body=data, headers=headers)
            reply = connection.getresponse()
            raw = reply.read()
        finally:
            connection.close()
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {"message": raw[:300].decode(errors="replace")}
        return reply.status, parsed if isinstance(parsed, dict) else {}

    def get(self, path: str) -> Obj | None:
        status, body = self.call("GET", path)
        if status == 404:
            return None
        assert status == 200, f"GET {path}: {status} {body.get('message')}"
        return body

    def apply(self, path: str, manifest: Mapping[str, Any], manager: str,
              *, force: bool = False) -> Obj:
        """A server-side apply as another tool (kubectl, a controller) would make it."""
        query = f"?fieldManager={manager}" + ("&force=true" if force else "")
        status, body = self.call("PATCH", path + query, manifest,
                                 content_type="application/apply-patch+yaml")
        assert status in (200, 201), f"apply {path}: {status} {body.get('message')}"
        return body

    def create(self, path: str, body: Mapping[str, Any]) -> Obj:
        status, answer = self.call("POST", path, body)
        assert status in (200, 201), f"POST {path}: {status} {answer.get('message')}"
        return answer

    def delete(self, path: str) -> None:
        status, answer = self.call("DELETE", path)
        assert status in (200, 202, 404), f"DELETE {path}: {status} {answer.get('message')}"

    def wait_for(self, path: str, check: Any, timeout: float = 60.0) -> Obj:
        """GET `path` until `check(obj)` is true; the last object is in the error."""
        deadline = time.monotonic() + timeout
        found: Obj | None = None
        while time.monotonic() < deadline:
            found = self.get(path)
            if found is not None and check(found):
                return found
            time.sleep(0.2)
        raise AssertionError(f"{path}: condition not met in {timeout:.0f} s: "
                             f"{json.dumps((found or {}).get('status'))[:800]}")

    def wait_gone(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get(path) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} still exists after {timeout:.0f} s")
            time.sleep(0.2)

    def token_for(self, namespace: str, account: str) -> str:
        """A bearer token of a ServiceAccount (created if missing), from TokenRequest."""
        self.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                  {"metadata": {"name": account}})
        status, answer = self.call(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 3600}})
        assert status == 201, f"TokenRequest {namespace}/{account}: {status} {answer}"
        return str(answer["status"]["token"])

    # --- per test -----------------------------------------------------------------

    def proxy(self) -> KubeProxy:
        return KubeProxy.start(self.upstream)

    def namespace(self, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.create("/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    def drop_namespace(self, name: str) -> None:
        """Delete without waiting: the namespace controller finishes it meanwhile."""
        with contextlib.suppress(OSError, AssertionError):
            self.delete(f"/api/v1/namespaces/{name}")


@dataclass
class KubeTest:
    """What one test gets: a namespace of its own and a fresh proxy to the server."""

    env: KubeEnv
    proxy: KubeProxy
    namespace: str
    suffix: str
    """Unique per test: CRD groups and other cluster-scoped names use it."""
    tmp: Path

    def kubeconfig(self, name: str = "kubeconfig", *, token: str | None = None) -> Path:
        return self.proxy.write_kubeconfig(self.tmp / name, token=token,
                                           namespace=self.namespace)


@contextlib.contextmanager
def kube_test(env: KubeEnv, tmp: Path) -> Iterator[KubeTest]:
    proxy = env.proxy()
    namespace = env.namespace()
    try:
        yield KubeTest(env=env, proxy=proxy, namespace=namespace,
                       suffix=namespace.rpartition("-")[2], tmp=tmp)
    finally:
        proxy.stop()
        env.drop_namespace(namespace)
