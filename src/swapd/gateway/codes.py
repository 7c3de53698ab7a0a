"""How swapd's refusal reasons read on the wire (OCPP 2.1 AuthorizationStatus + swap reason codes)."""

from __future__ import annotations

from swapd.domain.decision import RefusalReason

AUTHORIZATION_STATUS: dict[RefusalReason, str] = {
    RefusalReason.UNKNOWN_TOKEN: "Unknown",
    RefusalReason.UNKNOWN_PACK: "Unknown",
    RefusalReason.PACK_NOT_ASSIGNED: "Invalid",
    RefusalReason.PACK_HELD_BY_OTHER: "Invalid",
    RefusalReason.RIDER_BLOCKED: "Blocked",
    RefusalReason.NO_CREDIT: "NoCredit",
    RefusalReason.PACK_DAMAGED: "Invalid",
    RefusalReason.PACK_SOH_LOW: "Invalid",
    RefusalReason.NO_CHARGED_PACK: "NotAtThisTime",
    RefusalReason.VEHICLE_FULL: "NotAllowedTypeEVSE",
    RefusalReason.STATION_DISABLED: "NotAtThisLocation",
    RefusalReason.PACK_AT_OTHER_STATION: "Invalid",
}

# The reason codes the profile defines for swap stations, carried in the personal message's
# language-neutral prefix so a station firmware can branch on them.
REASON_CODE: dict[RefusalReason, str] = {
    RefusalReason.UNKNOWN_PACK: "BatteryUnknown",
    RefusalReason.PACK_NOT_ASSIGNED: "BatteryUnknown",
    RefusalReason.PACK_DAMAGED: "BatteryDamaged",
    RefusalReason.PACK_SOH_LOW: "BatterySoHLow",
    RefusalReason.NO_CHARGED_PACK: "NoBatteryAvailable",
}


def status_for(reason: str | None) -> str:
    return "Accepted" if reason is None else AUTHORIZATION_STATUS[RefusalReason(reason)]
