"""API discovery: which REST collection serves a kind, and whether it is namespaced.

Discovery is lazy and per group-version: a sync fetches `/api/v1` and
`/apis/<group>/<version>` only for the apiVersions its manifests and inventory
use, so the cost is one call per apiVersion, not per kind or object.

Invariants:
- The cache lives for one sync (`reset()` at the start of `read_live`); a CRD
  applied during a sync invalidates its group (`forget_group`) so its custom
  resources are found right after it is Established.
- A group-version the server does not serve (404) is cached as empty: its kinds
  are "unknown", which callers treat as "nothing live yet" (a CRD in the same
  app may be about to create it).
- A group-version that is registered but unavailable (503: an aggregated API
  whose server is down) is an error, not "empty": reporting its objects as
  absent would plan re-creations, and would let the engine forget inventory
  rows of objects that still exist (they would never be pruned).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backends.kubernetes.client import KubeClient, object_path


@dataclass(frozen=True, kw_only=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str) -> str:
        """The REST path of one object of this kind (namespace "" for cluster scope)."""
        return object_path(group=self.group, version=self.version, plural=self.plural,
                           namespace=namespace, name=name)


def split_api_version(api_version: str) -> tuple[str, str]:
    """("apps", "v1") for "apps/v1"; ("", "v1") for the core group."""
    group, _, version = api_version.rpartition("/")
    return group, version


def parse_resource_list(api_version: str, document: Mapping[str, Any]) -> dict[str, ApiResource]:
    """Pure: an APIResourceList document -> kind -> ApiResource (subresources skipped)."""
    group, version = split_api_version(api_version)
    out: dict[str, ApiResource] = {}
    for entry in document.get("resources") or ():
        name = str(entry.get("name", ""))
        if not name or "/" in name:
            continue
        kind = str(entry.get("kind", ""))
        out.setdefault(
            kind,
            ApiResource(
                group=group,
                version=version,
                kind=kind,
                plural=name,
                namespaced=bool(entry.get("namespaced")),
            ),
        )
    return out


class Discovery:
    """A per-sync cache of group-version documents."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._cache: dict[str, dict[str, ApiResource]] = {}
        self._groups: dict[str, tuple[str, ...]] | None = None
        self.calls = 0

    def reset(self) -> None:
        self._cache.clear()
        self._groups = None

    def forget_group(self, group: str) -> None:
        for api_version in list(self._cache):
            if split_api_version(api_version)[0] == group:
                del self._cache[api_version]
        self._groups = None

    def lookup(self, api_version: str, kind: str) -> ApiResource | None:
        """The resource serving `kind` in `api_version`, or None when not served (yet)."""
        if api_version not in self._cache:
            self._cache[api_version] = self._fetch(api_version)
        return self._cache[api_version].get(kind)

    def _fetch(self, api_version: str) -> dict[str, ApiResource]:
        group, version = split_api_version(api_version)
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        self.calls += 1
        response = self._client.request(
            "GET", path, what=f"discovery {api_version}", allow=(404,)
        )
        if response.status >= 400:
            return {}
        return parse_resource_list(api_version, response.body)

    def versions(self, group: str) -> tuple[str, ...]:
        """The versions the server serves of `group`, preferred first; one /apis
        call per sync at most."""
        if not group:
            return ("v1",)
        if self._groups is None:
            self.calls += 1
            response = self._client.request("GET", "/apis", what="discovery /apis", allow=(404,))
            self._groups = {
                str(g.get("name")): parse_group_versions(g)
                for g in response.body.get("groups") or ()
            }
        return self._groups.get(group, ())

    def find(self, group: str, kind: str) -> ApiResource | None:
        """The resource serving `kind` of `group` in any served version, preferred
        first: inventory entries and deletes carry no version, and a kind may be
        served only by a version that is not the group's preferred one."""
        for version in self.versions(group):
            api = self.lookup(f"{group}/{version}" if group else version, kind)
            if api is not None:
                return api
        return None


def parse_group_versions(group: Mapping[str, Any]) -> tuple[str, ...]:
    """Pure: an APIGroup document -> its versions, preferred first."""
    preferred = str((group.get("preferredVersion") or {}).get("version") or "")
    others = [str(v.get("version") or "") for v in group.get("versions") or ()]
    ordered = [preferred, *others] if preferred else others
    return tuple(dict.fromkeys(v for v in ordered if v))
