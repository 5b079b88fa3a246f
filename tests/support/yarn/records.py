"""The records of the YARN test server: stored specs, live services, answers.

A posted spec is stored resolved, the way Hadoop's ServiceApiUtil resolves it
(service-level artifact, resource and configuration filled into components,
server defaults set), so a GET answers what a real ResourceManager would. A
`Service` moves one deterministic step at a time (see `Service.step`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

ROOT = "/app/v1/services"
UPGRADING = ("UPGRADING", "UPGRADING_AUTO_FINALIZE")


class HttpAnswer(Exception):
    def __init__(self, status: int, diagnostics: str = "", body: Any = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.body = (
            body if body is not None else ({"diagnostics": diagnostics} if diagnostics else None)
        )


def resolve(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A posted spec as the server stores it: global values and defaults filled in."""
    svc = copy.deepcopy(dict(spec))
    svc.pop("state", None)
    glob_conf = svc.setdefault("configuration", {})
    for key, empty in (("properties", {}), ("env", {}), ("files", [])):
        glob_conf.setdefault(key, empty)
    svc.setdefault("quicklinks", {})
    svc.setdefault("kerberos_principal", {})
    svc.setdefault("lifetime", -1)
    svc["version"] = str(svc.get("version"))
    for comp in svc.get("components", []):
        inherit = "artifact" in svc and svc["artifact"].get("type") != "SERVICE"
        if "artifact" not in comp and inherit:
            comp["artifact"] = copy.deepcopy(svc["artifact"])
        if "artifact" in comp:
            comp["artifact"].setdefault("type", "DOCKER")
        if "resource" not in comp and "resource" in svc:
            comp["resource"] = copy.deepcopy(svc["resource"])
        if "resource" in comp and "memory" in comp["resource"]:
            comp["resource"]["memory"] = str(comp["resource"]["memory"])
        conf = comp.setdefault("configuration", {})
        for key in ("properties", "env"):
            conf[key] = {**glob_conf[key], **conf.get(key, {})}
        known = {f.get("dest_file") for f in conf.get("files", [])}
        conf["files"] = conf.get("files", []) + [
            f for f in glob_conf["files"] if f.get("dest_file") not in known
        ]
        comp.setdefault("restart_policy", "ALWAYS")
        comp.setdefault("run_privileged_container", False)
        comp.setdefault("dependencies", [])
        comp.setdefault("quicklinks", [])
        comp["number_of_containers"] = int(comp.get("number_of_containers", 1))
    return svc


def answer(code: int, diagnostics: str, state: str | None = None) -> tuple[int, Any]:
    """An answer with a ServiceStatus body, as ApiServer's formatResponse builds it."""
    body: dict[str, Any] = {"diagnostics": diagnostics}
    if state:
        body["state"] = state
    return code, body


def without_count(comp: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comp.items() if k != "number_of_containers"}


class Service:
    """One service's live record: its stored spec, state and containers."""

    def __init__(self, spec: dict[str, Any], app_id: str, state: str) -> None:
        self.spec = spec
        self.id = app_id
        self.state = state
        self.doomed = False
        self.pending: dict[str, Any] | None = None
        self.comp_state = {c["name"]: "INIT" for c in spec["components"]}
        self.containers: dict[str, list[dict[str, Any]]] = {
            c["name"]: [] for c in spec["components"]
        }
        self.serial = 0

    def comp(self, name: str) -> dict[str, Any]:
        for c in self.spec["components"]:
            if c["name"] == name:
                return dict(c)
        raise HttpAnswer(400, f"{name} does not exist !")

    def _new_container(self, comp: str, index: int) -> dict[str, Any]:
        self.serial += 1
        return {
            "id": f"container_{self.id[12:]}_01_{self.serial:06d}",
            "component_instance_name": f"{comp}-{index}",
            "state": "INIT",
            "launch_time": 1_700_000_000_000 + self.serial,
            "ip": "127.0.0.1",
            "hostname": f"{comp}-{index}.{self.spec['name']}.test",
            "bare_host": "127.0.0.1",
        }

    def step(self) -> None:
        if self.doomed and self.state not in ("STOPPED", "FAILED"):
            self.fail()
        elif self.state == "ACCEPTED":
            self.state = "STARTED"
            self._fill()
        elif self.state in ("STARTED", "FLEX"):
            for ctrs in self.containers.values():
                for c in ctrs:
                    c["state"] = "READY"
            self._fill()
            if self._all_ready():
                self.state = "STABLE"
                self.comp_state = dict.fromkeys(self.comp_state, "STABLE")
        elif self.state in UPGRADING:
            self._upgrade_step()

    def _fill(self) -> None:
        for comp in self.spec["components"]:
            ctrs = self.containers[comp["name"]]
            del ctrs[comp["number_of_containers"] :]
            while len(ctrs) < comp["number_of_containers"]:
                ctrs.append(self._new_container(comp["name"], len(ctrs)))

    def _all_ready(self) -> bool:
        return all(
            len(self.containers[c["name"]]) == c["number_of_containers"]
            and all(x["state"] == "READY" for x in self.containers[c["name"]])
            for c in self.spec["components"]
        )

    def _upgrade_step(self) -> None:
        for name, ctrs in self.containers.items():
            for c in ctrs:
                if c["state"] == "UPGRADING":
                    c["state"] = "READY"
            if all(c["state"] == "READY" for c in ctrs):
                self.comp_state[name] = "STABLE"
        if self.state == "UPGRADING_AUTO_FINALIZE" and self._all_ready():
            self.finalize()

    def finalize(self) -> None:
        if self.pending is not None:
            self.spec, self.pending = self.pending, None
        self.state = "STABLE"

    def fail(self) -> None:
        self.state = "FAILED"
        self.comp_state = dict.fromkeys(self.comp_state, "FAILED")

    def render(self) -> dict[str, Any]:
        out = copy.deepcopy(self.spec)
        out.update(id=self.id, state=self.state, launch_time=1_700_000_000_000)
        running = 0
        for comp in out["components"]:
            comp["state"] = self.comp_state[comp["name"]]
            comp["containers"] = copy.deepcopy(self.containers[comp["name"]])
            running += len(comp["containers"])
        out["number_of_running_containers"] = running
        return out

