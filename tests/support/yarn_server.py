"""A YARN Services API server for tests: real HTTP on 127.0.0.1, state in memory.

Why: no ResourceManager runs on a test machine, so this server plays one. It
follows the YARN Services REST API (`/app/v1/services`, Hadoop 3.x): the paths,
the JSON shapes of Service, Component and Container, the service states, and
the status codes of Hadoop's ApiServer where the docs and the code differ
(a create of a taken name answers 500 "Service name X is already taken.").
The list call is documented as TBD and ApiServer does not serve it, so by
default `GET /app/v1/services` answers 405; `list_services=True` serves it.

Determinism: a service moves one step per GET of it (ACCEPTED -> STARTED ->
READY containers -> STABLE; an upgrade moves its UPGRADING containers to READY,
then finalises), or only through `advance()` when `auto_advance=False`.
`fail(name)` fails a service now, `doom(name)` fails it at its next step.

Simplifications: upgrades keep the set of components; containers go READY in
one step; no queues, lifetimes or placement.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = "/app/v1/services"
_UPGRADING = ("UPGRADING", "UPGRADING_AUTO_FINALIZE")


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


def _without_count(comp: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comp.items() if k != "number_of_containers"}


class _Service:
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
        elif self.state in _UPGRADING:
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


class YarnServer:
    """Start with `start()`, point a target's `url` at `url`, `stop()` after."""

    def __init__(
        self,
        *,
        token: str | None = None,
        require_user: bool = False,
        list_services: bool = False,
        auto_advance: bool = True,
    ) -> None:
        self.token = token
        self.require_user = require_user
        self.list_services = list_services
        self.auto_advance = auto_advance
        self.requests: list[tuple[str, str]] = []
        self.users: list[str | None] = []
        self.authorizations: list[str | None] = []
        self._services: dict[str, _Service] = {}
        self._doomed: set[str] = set()
        self._lock = threading.Lock()
        self._apps = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> YarnServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> YarnServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- test controls ------------------------------------------------------

    def seed(self, spec: Mapping[str, Any], *, state: str = "STABLE") -> None:
        """Put a service in place without a request: STABLE with READY containers."""
        with self._lock:
            svc = self._add(resolve(spec), "ACCEPTED")
            for _ in range(5 if state != "ACCEPTED" else 0):
                svc.step()
            if state in ("STOPPED", "FAILED"):
                svc.state = state
                if state == "STOPPED":
                    svc.containers = {k: [] for k in svc.containers}
                else:
                    svc.fail()

    def advance(self, name: str, steps: int = 1) -> str:
        with self._lock:
            svc = self._services[name]
            for _ in range(steps):
                svc.step()
            return svc.state

    def settle(self, name: str, limit: int = 20) -> str:
        """Step until the service stops changing state (STABLE, FAILED, ...)."""
        return self.advance(name, limit)

    def fail(self, name: str) -> None:
        with self._lock:
            self._services[name].fail()

    def doom(self, name: str) -> None:
        """Make `name` (existing now or created later) fail at its next step."""
        with self._lock:
            self._doomed.add(name)
            if name in self._services:
                self._services[name].doomed = True

    def service(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            svc = self._services.get(name)
            return svc.render() if svc else None

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for m, p in list(self.requests)
            if (method is None or m == method) and (path is None or p == path)
        )

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in list(self.requests) if m != "GET"]

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter(self.requests)

    def reset(self) -> None:
        self.requests.clear()
        self.users.clear()
        self.authorizations.clear()

    # --- the API ------------------------------------------------------------

    def _add(self, spec: dict[str, Any], state: str) -> _Service:
        self._apps += 1
        svc = _Service(spec, f"application_1700000000000_{self._apps:04d}", state)
        svc.doomed = spec["name"] in self._doomed
        self._services[spec["name"]] = svc
        return svc

    def _get(self, name: str) -> _Service:
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

    def _service_put(self, svc: _Service, body: dict[str, Any]) -> tuple[int, Any]:
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
        if state in _UPGRADING:
            return self._initiate_upgrade(svc, body, state)
        if state == "STABLE" and svc.state == "UPGRADING":
            svc.finalize()
            return answer(202, f"Service {name} upgrade finalized.")
        return 204, None

    def _initiate_upgrade(self, svc: _Service, body: dict[str, Any], state: str) -> tuple[int, Any]:
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
            if _without_count(spec) != _without_count(old[comp]):
                svc.comp_state[comp] = "NEEDS_UPGRADE"
                for c in svc.containers[comp]:
                    c["state"] = "NEEDS_UPGRADE"
        if state == "UPGRADING_AUTO_FINALIZE" and "NEEDS_UPGRADE" not in svc.comp_state.values():
            svc.finalize()
        return answer(202, f"Service {name} version {target['version']} saved.", "ACCEPTED")

    def _component_put(self, svc: _Service, comp: str, body: Any) -> tuple[int, Any]:
        svc.comp(comp)
        if not isinstance(body, dict):
            raise HttpAnswer(400, "No component data provided")
        if str(body.get("state", "")).upper() == "UPGRADING":
            if svc.state not in _UPGRADING:
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

    def _flex(self, svc: _Service, comp: str, count: int) -> int:
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


def _handler(server: YarnServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests assert on `server.requests` instead."""

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            server.requests.append((method, split.path))
            user = parse_qs(split.query).get("user.name", [None])[0]
            server.users.append(user)
            server.authorizations.append(self.headers.get("Authorization"))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    raise HttpAnswer(401, "Authentication required")
                if server.require_user and not user:
                    raise HttpAnswer(401, "Authentication required: user.name is missing")
                if not split.path.startswith(ROOT):
                    raise HttpAnswer(404, "Not Found")
                parts = [unquote(p) for p in split.path[len(ROOT) :].split("/") if p]
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError:
                    raise HttpAnswer(400, "Malformed JSON") from None
                status, answer = server.handle(method, parts, body)
            except HttpAnswer as err:
                status, answer = err.status, err.body
            data = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler
