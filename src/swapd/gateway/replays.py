"""The mark of a BatterySwap event a station replays from its offline queue (docs/OFFLINE.md).

OCPP 2.1's BatterySwapRequest has no time of its own. A station that served a swap from its
local list while it could not reach swapd sends each of its events later with

    "customData": {"vendorId": "org.swapd", "offline": true, "timestamp": "<RFC 3339>"}

customData is the standard extension point, so the message stays a valid BatterySwapRequest
for any CSMS. An event without it, or with another vendor's, is live.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError

from swapd.domain.local_lists import VENDOR_ID


def offline_time(custom_data: dict[str, Any] | None) -> datetime | None:
    """When a replayed event happened at the station (aware, UTC), or None for a live event.
    A replay without a usable time is refused with PropertyConstraintViolation: metering it
    at its arrival would bill a time plan for hours the rider never held the pack."""
    if not isinstance(custom_data, dict):
        return None
    vendor = custom_data.get("vendor_id", custom_data.get("vendorId"))
    if vendor != VENDOR_ID or custom_data.get("offline") is not True:
        return None
    text = custom_data.get("timestamp")
    at = None
    if isinstance(text, str) and "T" in text.upper():
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            at = None
    if at is None or at.tzinfo is None:
        raise PropertyConstraintViolationError(
            description="customData.timestamp of an offline BatterySwap must be an RFC 3339 "
            "date-time with a time zone"
        )
    return at.astimezone(UTC)
