"""The one HTTP seam of the Kubernetes backend: raw JSON requests to the API server.

Why raw requests instead of the typed API classes: the backend handles arbitrary
kinds (custom resources included) as plain mappings, and server-side apply needs
the `application/apply-patch+yaml` content type, which the typed classes do not
cover for every kind. The official client still does the hard parts: kubeconfig
and in-cluster loading, TLS, client certificates, bearer tokens, token refresh.

Invariants:
- Every target gets its own `Configuration`; the client's global default
  configuration is never read or written, so several clusters can be open at once.
- Every failure is an `ApiError` that names the object; the server's message is
  left out for Secrets, because validation errors may echo submitted values.
- Request bodies are never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config

from reconciler.errors import ApiError, BackendError

# The client's config loaders and REST responses carry no annotations.
k8s_config: Any = _k8s_config

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
FIELD_MANAGER = "reconciler"

Query = Sequence[tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    body: Mapping[str, Any]


def load_configuration(
    *, kubeconfig: str | None, context: str | None, in_cluster: bool
) -> k8s_client.Configuration:
    """A fresh Configuration for one target, never the process-wide default."""
    configuration = k8s_client.Configuration()
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (k8s_config.ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "~/.kube/config"
        source = "in-cluster config" if in_cluster else f"kubeconfig {where}"
        raise BackendError(f"cannot load {source} (context {context or 'current'}): {exc}") from exc
    return configuration


class KubeClient:
    """JSON over HTTP with the target's credentials; one instance per target."""

    def __init__(self, configuration: k8s_client.Configuration, *, timeout: float = 30.0) -> None:
        self._api: Any = k8s_client.ApiClient(configuration)
        self._timeout = timeout

    def close(self) -> None:
        self._api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Query = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        secret: bool = False,
        allow: Sequence[int] = (),
    ) -> Response:
        """Send one request; statuses in `allow` are returned instead of raised.

        `what` names the object or collection for error messages.
        """
        headers = {"Accept": JSON}
        payload: str | Mapping[str, Any] | None = body
        if body is not None:
            headers["Content-Type"] = content_type
            if "json" not in content_type:
                # The client serialises mappings only for JSON types in every
                # supported version; a string is sent as is, and JSON is valid YAML.
                payload = json.dumps(body)
        method, url, headers, _, _ = self._api.param_serialize(
            method,
            path,
            query_params=list(query) or None,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:
            raw = self._api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=self._timeout
            )
            data = raw.read()
        except Exception as exc:  # urllib3 and ssl errors have no common base worth naming
            reason = f"cannot reach the API server: {type(exc).__name__}"
            raise ApiError(f"{method} {what}: {reason}") from exc
        parsed = _parse(data)
        status = int(raw.status)
        if status >= 400 and status not in allow:
            raise ApiError(_error_message(method, what, status, parsed, secret), status=status)
        return Response(status=status, body=parsed)


def _parse(data: bytes | None) -> Mapping[str, Any]:
    if not data:
        return {}
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _error_message(
    method: str, what: str, status: int, body: Mapping[str, Any], secret: bool
) -> str:
    reason = str(body.get("reason") or "")
    if secret:
        # Invalid-value messages quote the submitted value: never for a Secret.
        detail = reason or f"HTTP {status}"
    else:
        message = str(body.get("message") or reason or f"HTTP {status}")
        detail = message.splitlines()[0][:300]
    return f"{method} {what}: {status} {detail}"


def object_path(
    *, group: str, version: str, plural: str, namespace: str, name: str = "", subresource: str = ""
) -> str:
    """The REST path of an object or a collection (namespace "" = cluster scope or all)."""
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    parts = [prefix]
    if namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)
