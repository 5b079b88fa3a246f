"""Rows of the history's tables as records: pure, the same for every store."""

from __future__ import annotations

import json

from reconciler.events import Event, EventKind
from reconciler.history.database import Row
from reconciler.history.records import (
    AppResult,
    DeployRecord,
    DriftCheck,
    DriftedResource,
    InventoryEntry,
)
from reconciler.model import ResourceId


def deploy(row: Row, apps: tuple[AppResult, ...], events: tuple[Event, ...]) -> DeployRecord:
    return DeployRecord(
        id=int(row["id"]), revision=row["revision"], trigger=row["trigger"],
        started=row["started"], finished=row["finished"], result=row["result"],
        message=row["message"], rolled_back=bool(row["rolled_back"]),
        summary=json.loads(row["summary"]), apps=apps, events=events,
        targets=tuple(json.loads(row["targets"])),
    )


def event(row: Row) -> Event:
    return Event(
        kind=EventKind(row["kind"]), deploy_id=int(row["deploy_id"]), revision=row["revision"],
        wave=row["wave"], app=row["app"], target=row["target"],
        hosts=tuple(json.loads(row["hosts"])), status=row["status"], message=row["message"],
        timestamp=row["timestamp"],
    )


def app_result(row: Row) -> AppResult:
    return AppResult(
        app=row["app"], target=row["target"], wave=row["wave"],
        hosts=tuple(json.loads(row["hosts"])), status=row["status"], error=row["error"],
        started=row["started"], finished=row["finished"], rollback=row["rollback"],
    )


def inventory_entry(row: Row) -> InventoryEntry:
    return InventoryEntry(
        target=row["target"], host=row["host"],
        id=ResourceId(group=row["rgroup"], kind=row["kind"], namespace=row["namespace"],
                      name=row["name"]),
        app=row["app"], wave=row["wave"], revision=row["revision"], state=row["state"],
    )


def drift_check(row: Row) -> DriftCheck:
    return DriftCheck(
        target=row["target"], checked_at=row["checked_at"], revision=row["revision"],
        drifted=int(row["drifted"]), healed=bool(row["healed"]),
        resources=tuple(DriftedResource(host=str(r["host"]), resource=str(r["resource"]),
                                        action=str(r["action"]))
                        for r in json.loads(row["summary"])),
    )
