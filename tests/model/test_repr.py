"""Secret values must not leak through an accidental print or log of a model value."""

from __future__ import annotations

from reconciler.model import Action, Change, LiveResource, Location, Resource, ResourceId

SECRET = "s3cr3t-value"


def test_reprs_never_show_bodies_or_comparable_forms() -> None:
    rid = ResourceId(kind="Secret", namespace="ns", name="creds")
    resource = Resource(id=rid, app="a", body={"data": {"k": SECRET}},
                        location=Location(file="apps/a/s.yaml", line=1), secret=True)
    change = Change(id=rid, app="a", target="t", action=Action.UPDATE,
                    desired={"data": {"k": SECRET}}, live={"data": {"k": SECRET}},
                    resource=resource)
    live = LiveResource(id=rid, state={"data": {"k": SECRET}}, owner_app="a")
    for value in (resource, change, live):
        text = repr(value)
        assert SECRET not in text
        assert "creds" in text  # the identity is still there to read
