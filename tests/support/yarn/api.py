"""The YARN Services API of the test server, without HTTP: `ServiceApi.handle`
takes a method, the path parts under /app/v1/services and the JSON body, and
answers (status, body) or raises HttpAnswer, with the status codes and
diagnostics of Hadoop's ApiServer.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.support.yarn.records import (
    UPGRADING,
    HttpAnswer,
    Service,
    answer,
    resolve,
    without_count,
)


class ServiceApi:
    """The services in memory and the calls on them; one lock serialises calls."""

    def __init__(self, *, list_services: bool = False, auto_advance: bool = True) -> None:
        self.list_services = list_services
        self.auto_advance = auto_advance
        self._services: dict[str, Service] = {}
        self._doomed: set[str] = set()
        self._lock = threading.Lock()
        self._apps = 0

    def _add(self, spec: dict[str, Any], state: str) -> Service:
        self._apps += 1
        svc = Service(spec, f"application_1700000000000_{self._apps:04d}", state)
        svc.doomed = spec["name"] in self._doomed
        self._services[spec["name"]] = svc
        return svc

    def _get(self, name: str) -> Service:
        if name not in self._services:
            raise HttpAnswer(
                404,
                f"Service {name} not found",
                {"diagnostics": f"Service {name} not found", "code": 404001},
            )
        return self._services[name]

    def handle(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        with self._lock:
            if parts == [] and method == "POST":
                return self._create(body)
            if parts == [] and method == "GET":
                if not self.list_services:
                    raise HttpAnswer(405, "Method Not Allowed")
                return 200, [s.render() for s in self._services.values()]
            if parts == ["version"] and method == "GET":
                return 200, {"hadoop_version": "3.3.6-test"}
            if len(parts) == 1:
                return self._service_call(method, parts[0], body)
            if len(parts) == 3 and parts[1] == "components" and method == "PUT":
                return self._component_put(self._get(parts[0]), parts[2], body)
            if len(parts) == 2 and parts[1] == "components" and method == "PUT":
                svc = self._get(parts[0])
                for comp in body or []:
                    self._component_put(svc, comp.get("name", ""), comp)
                return answer(202, "Upgrading components.")
            raise HttpAnswer(404, "Not Found")

    def _create(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("version"):
            raise HttpAnswer(400, "Service name and version must be specified")
        comps = body.get("components")
        if not comps or any(not c.get("name") or "containers" in c for c in comps):
            raise HttpAnswer(400, "Every component needs a name and no containers")
        if body["name"] in self._services:
            raise HttpAnswer(500, f"Service name {body['name']} is already taken.")
        stopped = str(body.get("state", "")).upper() == "STOPPED"
        svc = self._add(resolve(body), "STOPPED" if stopped else "ACCEPTED")
        return answer(202, f"Application ID: {svc.id}", "ACCEPTED")

    def _service_call(self, method: str, name: str, body: Any) -> tuple[int, Any]:
        svc = self._get(name)
        if method == "GET":
            shown = svc.render()
            if self.auto_advance:
                svc.step()
            return 200, shown
        if method == "DELETE":
            del self._services[name]
            return 204, None
        if method != "PUT" or not isinstance(body, dict):
            raise HttpAnswer(405, "Method Not Allowed")
        return self._service_put(svc, body)

    def _service_put(self, svc: Service, body: dict[str, Any]) -> tuple[int, Any]:
        state = str(body.get("state", "")).upper()
        name = svc.spec["name"]
        if state == "STOPPED":
            if svc.state == "STOPPED":
                raise HttpAnswer(400, f"Service {name} is already stopped")
            svc.state, svc.containers = "STOPPED", {k: [] for k in svc.containers}
            return answer(200, f"Successfully stopped service {name}")
        if state == "STARTED":
            if svc.state != "STOPPED":
                raise HttpAnswer(400, f"Service {name} is already running")
            svc.state = "ACCEPTED"
            return answer(200, f"Service {name} is successfully started", "ACCEPTED")
        if state == "FLEX":
            for comp in body.get("components", []):
                self._flex(svc, comp["name"], int(comp["number_of_containers"]))
            return answer(202, f"Service {name} is successfully flexed.")
        if state in UPGRADING:
            return self._initiate_upgrade(svc, body, state)
        if state == "STABLE" and svc.state == "UPGRADING":
            svc.finalize()
            return answer(202, f"Service {name} upgrade finalized.")
        return 204, None

    def _initiate_upgrade(self, svc: Service, body: dict[str, Any], state: str) -> tuple[int, Any]:
        name = svc.spec["name"]
        if svc.state != "STABLE":
            raise HttpAnswer(
                400,
                f"{name} is at {svc.state} state and upgrade can only be initiated "
                "when service is STABLE.",
            )
        target = resolve(body)
        if target["version"] == svc.spec["version"]:
            raise HttpAnswer(
                400,
                f"{name} is already at version {target['version']}. There is nothing to upgrade.",
            )
        old = {c["name"]: c for c in svc.spec["components"]}
        new = {c["name"]: c for c in target["components"]}
        if set(old) != set(new):
            raise HttpAnswer(400, f"{name}: an upgrade cannot add or remove components")
        svc.pending, svc.state = target, state
        for comp, spec in new.items():
            if without_count(spec) != without_count(old[comp]):
                svc.comp_state[comp] = "NEEDS_UPGRADE"
                for c in svc.containers[comp]:
                    c["state"] = "NEEDS_UPGRADE"
        if state == "UPGRADING_AUTO_FINALIZE" and "NEEDS_UPGRADE" not in svc.comp_state.values():
            svc.finalize()
        return answer(202, f"Service {name} version {target['version']} saved.", "ACCEPTED")

    def _component_put(self, svc: Service, comp: str, body: Any) -> tuple[int, Any]:
        svc.comp(comp)
        if not isinstance(body, dict):
            raise HttpAnswer(400, "No component data provided")
        if str(body.get("state", "")).upper() == "UPGRADING":
            if svc.state not in UPGRADING:
                raise HttpAnswer(
                    400, f"The upgrade of service {svc.spec['name']} has not been initiated."
                )
            for c in svc.containers[comp]:
                if c["state"] == "NEEDS_UPGRADE":
                    c["state"] = "UPGRADING"
            svc.comp_state[comp] = "UPGRADING"
            return answer(202, f"Upgrading components {comp}.")
        if body.get("number_of_containers") is None:
            raise HttpAnswer(400, "No container count provided")
        old = self._flex(svc, comp, int(body["number_of_containers"]))
        new = body["number_of_containers"]
        return answer(200, f"Updating component ({comp}) size from {old} to {new}")

    def _flex(self, svc: Service, comp: str, count: int) -> int:
        if count < 0:
            raise HttpAnswer(400, f"Invalid number of containers specified {count}")
        old = svc.comp(comp)["number_of_containers"]
        for spec in (svc.spec, svc.pending or {}):
            for c in spec.get("components", []):
                if c["name"] == comp:
                    c["number_of_containers"] = count
        if svc.state in ("STABLE", "STARTED"):
            svc.state, svc.comp_state[comp] = "FLEX", "FLEXING"
        return int(old)

