"""Property: whatever spec is posted, the test server's GET of it compares equal.

The server resolves specs on its own (tests/support/yarn_server.resolve), the
way Hadoop's ServiceApiUtil does; the backend's comparable form must absorb
every default and inherited value, or a no-op reconcile would write.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from backends.yarn import spec
from tests.support.yarn_server import resolve

names = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
small_maps = st.dictionaries(names, st.text(alphabet="xyz01", max_size=4), max_size=3)
configuration = st.fixed_dictionaries({}, optional={"properties": small_maps, "env": small_maps})
artifact = st.fixed_dictionaries(
    {"id": names}, optional={"type": st.sampled_from(["DOCKER", "TARBALL"])}
)
resource = st.fixed_dictionaries(
    {"cpus": st.integers(1, 8), "memory": st.one_of(st.integers(128, 4096), st.just("512"))}
)


@st.composite
def service_specs(draw: st.DrawFn) -> dict[str, Any]:
    comp_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    comps = []
    for name in comp_names:
        comp: dict[str, Any] = {"name": name, "number_of_containers": draw(st.integers(0, 4))}
        for key, strategy in (
            ("artifact", artifact),
            ("resource", resource),
            ("configuration", configuration),
            ("launch_command", names),
            ("restart_policy", st.sampled_from(["ALWAYS", "ON_FAILURE"])),
        ):
            if draw(st.booleans()):
                comp[key] = draw(strategy)
        comps.append(comp)
    body: dict[str, Any] = {"name": "svc", "version": draw(names), "components": comps}
    for key, strategy in (
        ("artifact", artifact),
        ("resource", resource),
        ("configuration", configuration),
    ):
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@settings(max_examples=150, deadline=None)
@given(service_specs())
def test_posted_and_resolved_specs_compare_equal(body: dict[str, Any]) -> None:
    assert spec.comparable(body) == spec.comparable(resolve(body))
