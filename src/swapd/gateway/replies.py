"""Replies to the actions a station may send that swapd has nothing to do with.

The ``ocpp`` package answers nothing at all for an action without a handler, and a station
waiting for that answer stalls. Every such action gets the smallest reply its response schema
allows, built from the schema itself so that it is valid by construction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

# Actions a Charging Station sends to the CSMS in OCPP 2.1 (Part 2, per functional block).
STATION_ACTIONS_21 = frozenset(
    {
        "Authorize",
        "BatterySwap",
        "BootNotification",
        "ClearedChargingLimit",
        "ClosePeriodicEventStream",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateChainStatus",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDERAlarm",
        "NotifyDERStartStop",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyPriorityCharging",
        "NotifyReport",
        "NotifySettlement",
        "OpenPeriodicEventStream",
        "PublishFirmwareStatusNotification",
        "PullDynamicScheduleUpdate",
        "ReportChargingProfiles",
        "ReportDERControl",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
        "VatNumberValidation",
    }
)
STATION_ACTIONS_201 = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)

# swapd does no PKI, DER or display work: decline what it cannot honour rather than fake it.
_PREFERRED = ("UnknownVendorId", "Rejected", "Failed", "Accepted")


@cache
def _schema(version: str, action: str) -> dict[str, Any]:
    package = "ocpp.v21.schemas" if version == "2.1" else "ocpp.v201.schemas"
    text = resources.files(package).joinpath(f"{action}Response.json").read_text(encoding="utf-8-sig")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _minimal(node: dict[str, Any], definitions: dict[str, Any]) -> Any:
    if "$ref" in node:
        return _minimal(definitions[node["$ref"].split("/")[-1]], definitions)
    if "enum" in node:
        return next((v for v in _PREFERRED if v in node["enum"]), node["enum"][0])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        return {name: _minimal(properties[name], definitions) for name in node.get("required", [])}
    if kind == "array":
        return [_minimal(node["items"], definitions) for _ in range(node.get("minItems", 0))]
    if kind == "integer":
        return int(node.get("minimum", 0))
    if kind == "number":
        return node.get("minimum", 0)
    if kind == "boolean":
        return False
    if node.get("format") == "date-time":
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return ""


def minimal_reply(version: str, action: str) -> dict[str, Any]:
    schema = _schema(version, action)
    reply = _minimal(schema, schema.get("definitions", {}))
    assert isinstance(reply, dict)
    return reply
