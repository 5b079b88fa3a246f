"""A tenant target impersonating a namespace-scoped service account
(`impersonate: {service_account: ns/name}`): every call has that account's
rights only. The admin credentials of the test's kubeconfig may impersonate;
RBAC on the real API server decides what the account may do."""

from __future__ import annotations

import pytest

from reconciler.errors import ApiError
from reconciler.model import Action
from tests.backends.kubernetes.conftest import Cluster, make_app, plan_changes, resource
from tests.backends.kubernetes.test_backend import configmap
from tests.backends.kubernetes.test_cache import Daemonish

pytestmark = pytest.mark.kubeconfig


def _tenant(cluster: Cluster, account: str) -> None:
    """A service account allowed to manage ConfigMaps in the test's namespace only."""
    ns = cluster.namespace
    cluster.env.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": account}})
    cluster.env.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
        "metadata": {"name": account},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                   "verbs": ["get", "list", "create", "patch", "delete"]}]})
    cluster.env.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]})


def test_the_tenant_applies_in_its_namespace_and_cannot_touch_another(cluster: Cluster) -> None:
    home = cluster.namespace
    other = cluster.env.namespace("other")
    try:
        _tenant(cluster, "deployer")
        backend = cluster.backend(impersonate=deployer(home), namespaces=(home,))
        mine = [resource("team", configmap(home, "cfg", {"k": "v"}))]
        changes = plan_changes(backend.read_live(mine, {}), mine, "team")
        assert [c.action for c in changes] == [Action.CREATE]
        assert backend.apply(make_app("team", mine), changes).applied == 1
        assert cluster.env.get(f"/api/v1/namespaces/{home}/configmaps/cfg") is not None

        # The same tenant, told of a second namespace its account has no rights in.
        wider = cluster.backend(impersonate=deployer(home), namespaces=(home, other))
        both = [*mine, resource("team", configmap(other, "cfg", {"k": "v"}), line=12)]
        cluster.proxy.reset_counts()
        with pytest.raises(ApiError) as refused:
            wider.read_live(both, {})
        message = str(refused.value)
        assert refused.value.status == 403
        assert message.startswith(f"target {cluster.target} (impersonating service account "
                                  f"{home}/deployer): ")
        assert f'User "system:serviceaccount:{home}:deployer" cannot list resource ' \
               f'"configmaps"' in message and f'in the namespace "{other}"' in message
        assert cluster.proxy.writes() == []
        assert cluster.env.get(f"/api/v1/namespaces/{other}/configmaps/cfg") is None
    finally:
        cluster.env.drop_namespace(other)


def test_the_tenant_has_the_accounts_rights_not_the_kubeconfigs(cluster: Cluster) -> None:
    home = cluster.namespace
    _tenant(cluster, "deployer")
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "s", "namespace": home}, "stringData": {"k": "v"}}
    wanted = [resource("team", secret)]
    admin = cluster.backend(namespaces=(home,))
    assert plan_changes(admin.read_live(wanted, {}), wanted, "team")  # the admin may
    tenant = cluster.backend(impersonate=deployer(home), namespaces=(home,))
    with pytest.raises(ApiError, match='cannot list resource "secrets"') as refused:
        tenant.read_live(wanted, {})
    assert "impersonating service account" in str(refused.value)
    # A prune of what the account may not delete is refused too, and names the account.
    other_kind = resource("team", {"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {"name": "deployer", "namespace": home}})
    with pytest.raises(ApiError, match="403"):
        tenant.read_live([], {("", other_kind.id): "team"})


def test_the_daemons_cache_has_the_accounts_rights_too(cluster: Cluster) -> None:
    """In the daemon, reads come from the watch-fed cache: its lists and watches
    impersonate the account as well, and the admin's warm cache of the same
    target is not reused for the tenant."""
    home = cluster.namespace
    _tenant(cluster, "deployer")
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "s", "namespace": home}, "stringData": {"k": "v"}}
    wanted = [resource("team", secret)]
    daemon = Daemonish(cluster)
    try:
        admin = daemon.backend(namespaces=[home])
        assert admin.cache is not None
        assert plan_changes(admin.read_live(wanted, {}), wanted, "team")  # the admin may
        tenant = daemon.backend(impersonate=deployer(home), namespaces=[home])
        assert tenant.cache is not None and tenant.cache is not admin.cache
        with pytest.raises(ApiError, match='cannot list resource "secrets"') as refused:
            tenant.read_live(wanted, {})
        assert f"impersonating service account {home}/deployer" in str(refused.value)
        # What the account may read, it reads through its own cache.
        mine = [resource("team", configmap(home, "cfg", {"k": "v"}))]
        assert [c.action for c in plan_changes(tenant.read_live(mine, {}), mine, "team")] == [
            Action.CREATE]
        admin.close()
        tenant.close()
    finally:
        daemon.keeper.close()


def deployer(namespace: str) -> dict[str, str]:
    """The `impersonate:` value naming the namespace's deployer account."""
    return {"service_account": f"{namespace}/deployer"}
