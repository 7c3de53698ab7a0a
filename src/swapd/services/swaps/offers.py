"""Offers: one pack offered (reserved, its allowance held), an offer released without a hand-over,
a whole swap abandoned, and the swap a BatterySwap event belongs to (battery-as-key and RFID
swaps learn their requestId from their first event)."""

from __future__ import annotations

import dataclasses

from swapd.domain.lifecycle import Offer, OfferState, PackOutcomeKind, Swap
from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken
from swapd.services.ports import UnitOfWork
from swapd.services.swaps.lookups import token_rider
from swapd.services.swaps.postings import hold, release
from swapd.services.swaps.records import PackOutcome


def place_offer(
    uow: UnitOfWork, swap_id: int, rider_id: str, plan: Plan, serial: str, slot_no: int, hold_units: int
) -> Offer:
    """Reserve the pack in ``slot_no`` for the swap and hold ``hold_units`` of the rider's
    allowance for it (R2). Raises Retry when another swap reserved the pack since it was read."""
    uow.repo.reserve_pack(serial, swap_id, uow.now)
    hold_id = hold(uow, f"offer:{swap_id}:{serial}", rider_id, plan, hold_units)
    offer = Offer(swap_id, serial, slot_no, hold_units, hold_id, OfferState.OFFERED)
    uow.repo.insert_offer(offer)
    return offer


def release_offer(uow: UnitOfWork, swap: Swap, offer: Offer) -> PackOutcome:
    """Void an open offer's hold and clear its pack's reservation. An offer is open whenever its
    pack is still reserved for its swap (taking or releasing it clears the reservation)."""
    released = offer.release()
    serial = released.pack_serial
    release(uow, f"offer:{swap.id}:{serial}", released.hold_transfer_id, swap.rider_id)
    uow.repo.set_offer_state(swap.id, serial, released.state)
    uow.repo.unreserve_pack(serial, swap.id, uow.now)
    return PackOutcome(
        serial,
        released.slot_no,
        PackOutcomeKind.RELEASED,
        swap.rider_id,
        hold_units=released.hold_units,
    )


def abandon(uow: UnitOfWork, swap: Swap) -> list[PackOutcome]:
    """Release every pack still offered in an open swap and mark it abandoned."""
    if not swap.is_open:
        return []
    abandoned = swap.abandon()
    if swap.rider_id is not None:
        uow.repo.lock_riders([swap.rider_id])
    offers = uow.repo.offers(swap.id)
    outcomes = [release_offer(uow, swap, offer) for offer in offers if offer.is_open]
    uow.repo.set_swap_state(swap.id, abandoned.state, uow.now)
    return outcomes


def swap_for_event(
    uow: UnitOfWork, station_id: str, request_id: str, token: IdToken | None
) -> Swap | None:
    """The swap a BatterySwap event belongs to: by requestId, else the open offer of the rider
    the token names (battery-as-key and RFID swaps learn their requestId here)."""
    swap = uow.repo.swap_by_request(station_id, request_id)
    if swap is not None:
        return swap
    rider_id = token_rider(uow, token)
    if rider_id is None:
        return None
    offer = uow.repo.open_offer(station_id, rider_id)
    if offer is None or offer.request_id is not None:
        return None
    uow.repo.set_swap_request(offer.id, request_id, uow.now)
    return dataclasses.replace(offer, request_id=request_id)
