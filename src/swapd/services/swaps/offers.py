"""Offers that end without a hand-over: one pack's offer released, a whole swap abandoned, and
the swap a BatterySwap event belongs to (battery-as-key and RFID swaps learn their requestId
from their first event)."""

from __future__ import annotations

import sqlalchemy as sa

from swapd.domain.lifecycle import (
    OfferState,
    PackOutcomeKind,
)
from swapd.domain.riders import IdToken
from swapd.services.swaps.lookups import (
    token_rider,
)
from swapd.services.swaps.postings import (
    release,
)
from swapd.services.swaps.records import (
    PackOutcome,
)
from swapd.services.swaps.rows import (
    offer_of,
    open_offer,
    set_swap,
    swap_of,
)
from swapd.store import schema as t
from swapd.store.database import Tx
from swapd.store.repository import Row


def release_offer(tx: Tx, swap: Row, offer: Row) -> PackOutcome:
    """Void an open offer's hold and clear its pack's reservation. An offer is open whenever its
    pack is still reserved for its swap (taking or releasing it clears the reservation)."""
    released = offer_of(offer).release()
    serial = released.pack_serial
    release(tx, f"offer:{swap.id}:{serial}", released.hold_transfer_id, swap.rider_id)
    tx.repo.execute(
        sa.update(t.swap_offers)
        .where(t.swap_offers.c.swap_id == swap.id, t.swap_offers.c.pack_serial == serial)
        .values(state=released.state)
    )
    tx.repo.execute(
        sa.update(t.packs)
        .where(t.packs.c.serial == serial, t.packs.c.reserved_swap_id == swap.id)
        .values(reserved_swap_id=None, updated_at=tx.now)
    )
    return PackOutcome(
        serial,
        released.slot_no,
        PackOutcomeKind.RELEASED,
        swap.rider_id,
        hold_units=released.hold_units,
    )


def abandon(tx: Tx, swap: Row) -> list[PackOutcome]:
    """Release every pack still offered in an open swap and mark it abandoned."""
    current = swap_of(swap)
    if not current.is_open:
        return []
    abandoned = current.abandon()
    if current.rider_id is not None:
        tx.repo.lock_riders([current.rider_id])
    offers = tx.repo.offers(current.id)
    outcomes = [release_offer(tx, swap, o) for o in offers if o.state == OfferState.OFFERED]
    set_swap(tx, current.id, state=abandoned.state)
    return outcomes


def swap_for_event(tx: Tx, station_id: str, request_id: str, token: IdToken | None) -> Row | None:
    """The swap a BatterySwap event belongs to: by requestId, else the open offer of the rider
    the token names (battery-as-key and RFID swaps learn their requestId here)."""
    swap = tx.repo.swap_by_request(station_id, request_id)
    if swap is not None:
        return swap
    rider_id = token_rider(tx, token)
    if rider_id is None:
        return None
    offer = open_offer(tx, station_id, rider_id)
    if offer is None or offer.request_id is not None:
        return None
    set_swap(tx, offer.id, request_id=request_id)
    return tx.repo.swap(offer.id)
