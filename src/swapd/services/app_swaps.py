"""S02: a swap the rider starts from the app (or a QR code) and the server asks the station for."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from swapd.domain.errors import Conflict, StationOffline
from swapd.domain.riders import IdToken, TokenType
from swapd.services import station_commands as commands
from swapd.services import stations, swaps
from swapd.store.database import Database


@dataclass(frozen=True, slots=True)
class AppSwap:
    accepted: bool
    reason: str | None
    text: str
    request_id: str | None = None
    swap_id: int | None = None
    offered_slots: tuple[int, ...] = ()
    # A right-sized offer waiting for the rider's yes: the app shows ``text`` (the question)
    # and asks again with ``accept_right_sized``; ``right_sized`` on an accepted swap too.
    asks: bool = False
    right_sized: bool = False


# Refusals by the station itself, after the server accepted (the decision's own are in
# swapd.domain.decision.RefusalReason): the offer is abandoned, nothing stays held.
STATION_REFUSED = "station_refused"
STATION_NO_ANSWER = "station_no_answer"
STATION_TEXT = {
    STATION_REFUSED: "The station could not start the swap: please try again",
    STATION_NO_ANSWER: "The station did not answer: please try again",
}

# OCPP's requestId is an integer; ours are ten digits, apart from small station-made ones.
_REQUEST_ID_LOW, _REQUEST_ID_SPAN = 10**9, 2**31 - 10**9


def request_id_for(key: str) -> str:
    """The requestId of an app swap named by a caller's idempotency key: a repeat of the request
    (or two first attempts racing) finds the same swap instead of reserving packs twice."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return str(_REQUEST_ID_LOW + digest % _REQUEST_ID_SPAN)


def ensure_connected(db: Database, station_id: str) -> None:
    """Refuse with StationOffline when no server process holds the station's socket. A disabled
    station passes: the decision refuses it, and records the refusal as such."""
    presence = stations.presence(db, station_id)
    if presence.enabled and not presence.connected:
        raise StationOffline(presence.offline_text())


def request_swap(
    db: Database,
    station_id: str,
    rider_id: str,
    *,
    timeout_s: float = 30,
    key: str | None = None,
    accept_right_sized: bool = False,
) -> AppSwap:
    """Decide (R6), reserve packs and holds, then send RequestBatterySwap to the station through
    whichever server process holds its socket. A station that rejects or does not answer gets
    the offer abandoned, so no hold outlives the attempt. With ``key`` the attempt is idempotent.

    A station that is not connected, or whose connection ends before it answers, is
    StationOffline, within seconds (swapd.services.station_commands.PICKUP_TIMEOUT_S), not a refusal. The
    decision comes first, so that an unknown rider or one without credit hears that."""
    if key is None:
        request_id = str(_REQUEST_ID_LOW + secrets.randbelow(_REQUEST_ID_SPAN))
    else:
        request_id = request_id_for(key)
        earlier = db.read(lambda tx: tx.repo.swap_by_request(station_id, request_id))
        if earlier is not None and earlier.rider_id != rider_id:
            # 1 in 10^9 per earlier swap at this station: refuse rather than answer with another's.
            raise Conflict("this request collides with an earlier one; retry with a new key")
    decision = swaps.authorize(
        db,
        station_id,
        IdToken(TokenType.APP, rider_id),
        request_id=request_id,
        consented=accept_right_sized,
    )
    if decision.asks:
        slots = tuple(decision.offered_slots)
        return AppSwap(
            False,
            decision.reason,
            decision.text,
            swap_id=decision.swap_id,
            offered_slots=slots,
            asks=True,
        )
    if not decision.accepted:
        return AppSwap(False, decision.reason, decision.text, swap_id=decision.swap_id)
    assert decision.swap_id is not None
    # A yes to an offer the app asked about earlier answers with that offer, under its requestId.
    request_id = decision.request_id or request_id
    payload = {"idToken": {"idToken": rider_id, "type": "Central"}, "requestId": int(request_id)}
    try:
        ensure_connected(db, station_id)
        command_id = commands.enqueue(
            db, station_id, "RequestBatterySwap", payload, timeout_s=timeout_s, requested_by=rider_id
        )
        outcome = commands.wait_for(db, command_id, timeout_s=timeout_s)
    except BaseException:
        swaps.abandon_offer(db, decision.swap_id)
        raise
    response = outcome.response or {}
    if outcome.state == commands.CommandState.ANSWERED and response.get("status") == "Accepted":
        return AppSwap(
            True,
            None,
            "Accepted",
            request_id,
            decision.swap_id,
            tuple(decision.offered_slots),
            right_sized=decision.right_sized,
        )
    swaps.abandon_offer(db, decision.swap_id)
    if outcome.state == commands.CommandState.UNDELIVERED:
        # No process took it, or the connection it went to ended: even if the record says the
        # station is connected (again, or still, after its process died), no socket answered.
        raise StationOffline(stations.presence(db, station_id).offline_text())
    if outcome.state == commands.CommandState.FAILED:
        ensure_connected(db, station_id)  # the send failed because the station left: say so
    if outcome.state == commands.CommandState.ANSWERED:
        reason, detail = STATION_REFUSED, f"the station answered {response.get('status')}"
    elif outcome.state == commands.CommandState.FAILED:
        reason, detail = STATION_REFUSED, outcome.error or "the station answered with an error"
    else:
        reason, detail = STATION_NO_ANSWER, outcome.error or "the station did not answer"
    return AppSwap(False, reason, f"{STATION_TEXT[reason]} ({detail})", request_id, decision.swap_id)
