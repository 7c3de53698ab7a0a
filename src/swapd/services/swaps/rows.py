"""The swap path's rows: its prepared statements (built once; see swapd.store.repository for why),
the swap, offer and possession rows read as lifecycle entities, and the station event record that
makes each event apply once per (station, requestId, eventType)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from swapd.domain.lifecycle import Offer, OfferState, Possession, Swap, SwapState
from swapd.domain.riders import IdToken
from swapd.services.swaps.records import EventResult
from swapd.store import schema as t
from swapd.store.database import Tx
from swapd.store.prepared import Prepared
from swapd.store.repository import Row

# The statements of the swap path, built once (see swapd.store.repository for why).
_B = sa.bindparam


INSERT_SWAP = Prepared(sa.insert(t.swaps).returning(t.swaps.c.id))


# The state is written as a literal so that SQLite can use the partial index ix_swaps_offered.
_OFFERED: sa.ColumnElement[str] = sa.literal_column(f"'{SwapState.OFFERED}'")


OPEN_OFFER = Prepared(
    sa.select(t.swaps)
    .where(
        t.swaps.c.station_id == _B("station_id"),
        t.swaps.c.rider_id == _B("rider_id"),
        t.swaps.c.state == _OFFERED,
    )
    .order_by(t.swaps.c.id.desc())
)


# Every swap still offered to a rider, newest first: the open offer at this station, and the
# same pack as the key of a swap still open at another station (R3: one pack, one place).
OFFERED_TO_RIDER = Prepared(
    sa.select(t.swaps)
    .where(t.swaps.c.rider_id == _B("rider_id"), t.swaps.c.state == _OFFERED)
    .order_by(t.swaps.c.id.desc())
)


INSERT_OFFER = Prepared(sa.insert(t.swap_offers))


SET_OFFER_STATE = Prepared(
    sa.update(t.swap_offers)
    .where(t.swap_offers.c.swap_id == _B("p_swap_id"), t.swap_offers.c.pack_serial == _B("p_serial"))
    .values(state=_B("v_state"))
)


INSERT_EVENT = Prepared(sa.insert(t.station_events))


INSERT_POSSESSION = Prepared(sa.insert(t.possessions))


def insert_swap(
    tx: Tx,
    station_id: str,
    token: IdToken,
    state: str,
    *,
    rider_id: str | None,
    request_id: str | None = None,
    reason: str | None = None,
) -> int:
    values = {
        "station_id": station_id,
        "request_id": request_id,
        "rider_id": rider_id,
        "token_type": token.type.value,
        "token_value": token.value,
        "state": state,
        "reason": reason,
        "created_at": tx.now,
        "updated_at": tx.now,
    }
    return int(tx.repo.run(INSERT_SWAP, values).scalar_one())


def set_swap(tx: Tx, swap_id: int, **values: Any) -> None:
    tx.repo.update(t.swaps, "id", swap_id, {**values, "updated_at": tx.now})


def open_offer(tx: Tx, station_id: str, rider_id: str) -> Row | None:
    """The rider's offer at this station that no BatterySwap event has claimed yet."""
    return tx.repo.run(OPEN_OFFER, {"station_id": station_id, "rider_id": rider_id}).first()


def swap_of(row: Row) -> Swap:
    return Swap(row.id, row.station_id, row.rider_id, SwapState(row.state), row.request_id)


def offer_of(row: Row) -> Offer:
    return Offer(
        row.swap_id,
        row.pack_serial,
        row.slot_no,
        int(row.hold_units),
        row.hold_transfer_id,
        OfferState(row.state),
    )


def possession_of(row: Row) -> Possession:
    return Possession(
        row.id,
        row.rider_id,
        row.pack_serial,
        row.plan_id,
        row.at_out,
        row.soc_out_bp,
        row.soh_out_bp,
        row.hold_units,
        row.hold_transfer_id,
        row.at_in,
    )


def already(tx: Tx, station_id: str, request_id: str, event_type: str) -> EventResult | None:
    row = tx.repo.station_event(station_id, request_id, event_type)
    return None if row is None else EventResult.from_json(row.result)


def record(tx: Tx, station_id: str, request_id: str, result: EventResult) -> EventResult:
    tx.repo.run(
        INSERT_EVENT,
        {
            "station_id": station_id,
            "request_id": request_id,
            "event_type": result.event_type,
            "received_at": tx.now,
            "result": result.to_json(),
        },
    )
    return result
