"""A custom resource whose health is a CEL rule (app.yaml `kubernetes: health_exprs`)
gates its wave, through the Engine on the real control plane. The CRD is made by
the test's own first wave; the test plays the resource's controller, writing its
status through the status subresource as a controller would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.events import Event, EventKind
from tests.engine import support_targets as st
from tests.support.kube_env import KubeTest

RULE = """\
timeout: 15s
kubernetes:
  health_exprs:
    - apiVersion: {group}/v1
      kind: Widget
      current: has(status.phase) && status.phase == "Ready"
      inProgress: "!has(status.phase) || status.phase == 'Provisioning'"
      failed: has(status.phase) && status.phase == "Failed"
"""


def crd(group: str) -> str:
    return (f"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            f"metadata: {{name: widgets.{group}}}\n"
            f"spec:\n  group: {group}\n  scope: Namespaced\n"
            "  names: {kind: Widget, plural: widgets, singular: widget}\n"
            "  versions:\n    - name: v1\n      served: true\n      storage: true\n"
            "      subresources: {status: {}}\n"
            "      schema: {openAPIV3Schema: {type: object, "
            "x-kubernetes-preserve-unknown-fields: true}}\n")


def widget(group: str, ns: str, size: int) -> str:
    return (f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w1, namespace: {ns}}}\n"
            f"spec: {{size: {size}}}\n")


group = st.crd_group


@pytest.fixture
def repo(tmp_path: Path, kube: KubeTest, group: str) -> st.Repo:
    made = st.create_repo(tmp_path)
    made.kubernetes("prod", kube)
    made.app("crds", "prod", wave=0)
    made.write("apps/crds/crd.yaml", crd(group))
    made.app("widgets", "prod", wave=1, extra=RULE.format(group=group))
    made.app("after", "prod", wave=2)
    made.write("apps/after/cfg.yaml", st.configmap("after", {"k": "v"}, kube.namespace))
    return made


engine = st.engine_of_repo


class Controller:
    """Sets the widget's status.phase through the status subresource: each phase
    of `phases`, `pause` seconds apart, once the widget exists; `before` runs
    before each write."""

    def __init__(self, kube: KubeTest, group: str, phases: list[str], pause: float,
                 before: Callable[[], None] = lambda: None) -> None:
        self.kube, self.phases, self.pause, self.before = kube, phases, pause, before
        self.path = f"/apis/{group}/v1/namespaces/{kube.namespace}/widgets/w1"
        self.written: list[tuple[str, float]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while self.kube.env.get(self.path) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        for phase in self.phases:
            self.before()
            status, body = self.kube.env.call(
                "PATCH", self.path + "/status", {"status": {"phase": phase}},
                content_type="application/merge-patch+json")
            assert status == 200, body
            self.written.append((phase, time.monotonic()))
            time.sleep(self.pause)


def test_the_wave_waits_while_in_progress_and_passes_once_current(
    engine: Engine, repo: st.Repo, kube: KubeTest, group: str
) -> None:
    repo.write("apps/widgets/w.yaml", widget(group, kube.namespace, 1))
    repo.commit("widget")
    controller = Controller(kube, group, ["Provisioning", "Ready"], pause=1.5)
    waves: dict[int, float] = {}

    def seen(event: Event) -> None:
        if event.kind is EventKind.WAVE_STARTED and event.wave is not None:
            waves.setdefault(event.wave, time.monotonic())

    engine.subscribe(seen)
    result = engine.sync()
    controller.thread.join(10)
    assert result.result == "success", result.message
    assert st.live_object(kube, "configmaps", "after") is not None
    written = dict(controller.written)
    # Wave 2 started only once the widget was Ready, never while it was Provisioning.
    assert waves[1] < written["Provisioning"] < written["Ready"] < waves[2]


def test_a_failed_custom_resource_fails_its_wave_and_the_next_never_starts(
    engine: Engine, repo: st.Repo, kube: KubeTest, group: str
) -> None:
    repo.write("apps/widgets/w.yaml", widget(group, kube.namespace, 1))
    repo.commit("widget")
    Controller(kube, group, ["Failed"], pause=0)
    started = time.monotonic()
    result = engine.sync()
    assert result.result == "failure", result.message
    assert "widgets" in result.message and "failed (health rule at apps/widgets/app.yaml:" \
        in result.message
    # Degraded fails the gate after a few probes, not after the 15 s timeout.
    assert time.monotonic() - started < 12
    assert st.live_object(kube, "configmaps", "after") is None


def test_a_custom_resource_that_stays_in_progress_times_out(
    engine: Engine, repo: st.Repo, kube: KubeTest, group: str
) -> None:
    repo.app("widgets", "prod", wave=1, extra=RULE.format(group=group).replace("15s", "3s"))
    repo.write("apps/widgets/w.yaml", widget(group, kube.namespace, 1))
    repo.commit("widget")
    Controller(kube, group, ["Provisioning"], pause=0)
    result = engine.sync()
    assert result.result == "failure", result.message
    assert "timed out after 3s" in result.message and "in progress (health rule at" \
        in result.message
    assert st.live_object(kube, "configmaps", "after") is None
