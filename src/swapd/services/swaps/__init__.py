"""Swaps: the decision (R6), returns that identify the rider by pack (R3), metering and charging
(R4, R5), hand-overs with two-phase holds (R2), and abandoned hand-overs.

The events mirror OCPP's battery swap: ``authorize`` answers Authorize (or an app request),
``battery_in`` / ``battery_out`` / ``battery_out_timeout`` are the BatterySwap events. Each event is
applied exactly once per (station, requestId, eventType); a repeat returns the first answer. Each
public function is one unit of work (``swapd.services.ports``): load, let the domain decide, save;
it runs on the SQL store or on the in-memory fake of the tests alike.

Modules: ``records`` (the values), ``checks`` (input), ``event_records`` (the record that makes
an event apply once), ``lookups``, ``postings`` (the ledger transfers), ``authorization``,
``returns`` (BatteryIn), ``hand_over`` and ``hand_outs`` (BatteryOut), ``offers`` and
``timeouts`` (offers released or abandoned).
"""

from __future__ import annotations

from swapd.domain.lifecycle import SwapState
from swapd.services.swaps.authorization import authorize
from swapd.services.swaps.hand_outs import battery_out
from swapd.services.swaps.records import (
    MAX_PACKS_PER_SWAP,
    AuthorizeResult,
    BatteryReading,
    EventResult,
    EventType,
    OfferedPack,
    PackOutcome,
)
from swapd.services.swaps.returns import battery_in
from swapd.services.swaps.timeouts import abandon_offer, battery_out_timeout, expire_stale_offers

__all__ = [
    "MAX_PACKS_PER_SWAP",
    "AuthorizeResult",
    "BatteryReading",
    "EventResult",
    "EventType",
    "OfferedPack",
    "PackOutcome",
    "SwapState",
    "abandon_offer",
    "authorize",
    "battery_in",
    "battery_out",
    "battery_out_timeout",
    "expire_stale_offers",
]
