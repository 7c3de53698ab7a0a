"""S02: a swap the rider starts from the app (or a QR code) and the server asks the station for."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from swapd.domain.decision import REFUSAL_TEXT, RefusalReason
from swapd.domain.riders import IdToken, TokenType
from swapd.gateway import commands
from swapd.services import swaps
from swapd.store.database import Database


@dataclass(frozen=True, slots=True)
class AppSwap:
    accepted: bool
    reason: str | None
    text: str
    request_id: str | None = None
    swap_id: int | None = None
    offered_slots: tuple[int, ...] = ()


def request_swap(db: Database, station_id: str, rider_id: str, *, timeout_s: float = 30) -> AppSwap:
    """Decide (R6), reserve packs and holds, then send RequestBatterySwap to the station through
    whichever server process holds its socket. A station that rejects or does not answer gets
    the offer abandoned, so no hold outlives the attempt."""
    request_id = str(secrets.randbelow(2**31 - 10**9) + 10**9)  # OCPP requestId is an integer
    decision = swaps.authorize(db, station_id, IdToken(TokenType.APP, rider_id), request_id=request_id)
    if not decision.accepted:
        return AppSwap(False, decision.reason, decision.text, swap_id=decision.swap_id)
    assert decision.swap_id is not None
    payload = {"id_token": {"id_token": rider_id, "type": "Central"}, "request_id": int(request_id)}
    command_id = commands.enqueue(db, station_id, "RequestBatterySwap", payload, timeout_s=timeout_s)
    state, response, error = commands.wait_for(db, command_id, timeout_s=timeout_s)
    if state == commands.CommandState.ANSWERED and response and response.get("status") == "Accepted":
        return AppSwap(
            True, None, "Accepted", request_id, decision.swap_id, tuple(decision.offered_slots)
        )
    swaps.abandon_offer(db, decision.swap_id)
    reason = RefusalReason.NO_CHARGED_PACK.value
    detail = error or f"station answered {response}"
    return AppSwap(
        False,
        reason,
        f"{REFUSAL_TEXT[RefusalReason.NO_CHARGED_PACK]} ({detail})",
        request_id,
        decision.swap_id,
    )
