"""Offers: one pack offered (reserved, its allowance held), an offer released without a hand-over,
a whole swap abandoned, and the swap a BatterySwap event belongs to (battery-as-key and RFID
swaps learn their requestId from their first event)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from swapd.domain.lifecycle import Offer, OfferState, PackOutcomeKind, Swap
from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken
from swapd.services.swaps.lookups import token_rider
from swapd.services.swaps.postings import hold, release
from swapd.services.swaps.records import PackOutcome
from swapd.services.swaps.rows import INSERT_OFFER, offer_of, open_offer, set_swap, swap_of
from swapd.store import schema as t
from swapd.store.database import Tx
from swapd.store.repository import Retry


def place_offer(
    tx: Tx, swap_id: int, rider_id: str, plan: Plan, serial: str, slot_no: int, hold_units: int
) -> Offer:
    """Reserve the pack in ``slot_no`` for the swap and hold ``hold_units`` of the rider's
    allowance for it (R2). Raises Retry when another swap reserved the pack since it was read."""
    if not tx.repo.reserve_pack(serial, swap_id, tx.now):
        raise Retry()
    hold_id = hold(tx, f"offer:{swap_id}:{serial}", rider_id, plan, hold_units)
    offer = Offer(swap_id, serial, slot_no, hold_units, hold_id, OfferState.OFFERED)
    tx.repo.run(
        INSERT_OFFER,
        {
            "swap_id": swap_id,
            "pack_serial": serial,
            "slot_no": slot_no,
            "hold_units": hold_units,
            "hold_transfer_id": hold_id,
            "state": offer.state,
        },
    )
    return offer


def release_offer(tx: Tx, swap: Swap, offer: Offer) -> PackOutcome:
    """Void an open offer's hold and clear its pack's reservation. An offer is open whenever its
    pack is still reserved for its swap (taking or releasing it clears the reservation)."""
    released = offer.release()
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


def abandon(tx: Tx, swap: Swap) -> list[PackOutcome]:
    """Release every pack still offered in an open swap and mark it abandoned."""
    if not swap.is_open:
        return []
    abandoned = swap.abandon()
    if swap.rider_id is not None:
        tx.repo.lock_riders([swap.rider_id])
    offers = [offer_of(row) for row in tx.repo.offers(swap.id)]
    outcomes = [release_offer(tx, swap, offer) for offer in offers if offer.is_open]
    set_swap(tx, swap.id, state=abandoned.state)
    return outcomes


def swap_for_event(tx: Tx, station_id: str, request_id: str, token: IdToken | None) -> Swap | None:
    """The swap a BatterySwap event belongs to: by requestId, else the open offer of the rider
    the token names (battery-as-key and RFID swaps learn their requestId here)."""
    swap = tx.repo.swap_by_request(station_id, request_id)
    if swap is not None:
        return swap_of(swap)
    rider_id = token_rider(tx, token)
    if rider_id is None:
        return None
    offer = open_offer(tx, station_id, rider_id)
    if offer is None or offer.request_id is not None:
        return None
    set_swap(tx, offer.id, request_id=request_id)
    return dataclasses.replace(swap_of(offer), request_id=request_id)
