"""Server defaults the test API server fills in, as the real one does (a few)."""

from __future__ import annotations

import base64
import itertools

from tests.support.kube.objects import Kind, Obj


def _default_containers(pod_spec: Obj) -> None:
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    for container in pod_spec.get("containers") or ():
        latest = str(container.get("image", "")).endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")


class Defaults:
    def __init__(self) -> None:
        self._ips = itertools.count(10)

    def apply(self, kind: Kind, obj: Obj) -> None:
        spec = obj.setdefault("spec", {}) if kind.kind in ("Deployment", "Service", "Job") else {}
        if kind.kind == "Deployment":
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate":
                                         {"maxSurge": "25%", "maxUnavailable": "25%"}})
            _default_containers((spec.get("template") or {}).setdefault("spec", {}))
        elif kind.kind == "Service":
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if "clusterIP" not in spec:
                n = next(self._ips)
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
                spec["clusterIPs"] = [spec["clusterIP"]]
            for port in spec.get("ports") or ():
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        elif kind.kind == "Job":
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
        elif kind.kind == "Secret":
            obj.setdefault("type", "Opaque")
            data = obj.setdefault("data", {})
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        elif kind.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif kind.kind == "CustomResourceDefinition":
            names = (obj.get("spec") or {}).get("names") or {}
            obj["status"] = {"acceptedNames": names, "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}

