"""BatteryOut: packs taken out of their slots, by a rider (each opens a possession) or by an
operator (withdrawn to the depot). Offered packs that were not taken are released."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from swapd.domain.lifecycle import PackOutcomeKind
from swapd.domain.packs import PackStatus
from swapd.domain.riders import IdToken
from swapd.domain.stations import Station
from swapd.services.ports import Transactions, UnitOfWork
from swapd.services.swaps import offline
from swapd.services.swaps.checks import check_batteries, check_request_id, check_token
from swapd.services.swaps.event_records import record, station_and_repeat
from swapd.services.swaps.hand_over import hand_over
from swapd.services.swaps.lookups import is_operator, token_rider
from swapd.services.swaps.offers import release_offer, swap_for_event
from swapd.services.swaps.records import BatteryReading, EventResult, EventType, PackOutcome


def battery_out(
    db: Transactions,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading],
    *,
    token: IdToken | None = None,
    offline_at: datetime | None = None,
) -> EventResult:
    """Packs taken out of their slots: each opens a possession (R2) that carries the hold placed
    when it was offered. Offered packs that were not taken are released. ``offline_at``: a
    station replays a hand-over it made while offline, at that time (offline.py)."""
    request_id = check_request_id(request_id)
    if token is not None:
        check_token(token)

    def work(uow: UnitOfWork) -> EventResult:
        station, repeated = station_and_repeat(uow, station_id, request_id, EventType.BATTERY_OUT)
        check_batteries(station, batteries)
        if repeated is not None:
            return repeated
        replay = offline.replay_of(offline_at, uow.now)
        at = None if replay is None else replay.at
        if is_operator(uow, token):
            withdrawn = tuple(_withdraw(uow, station, b) for b in batteries)
            return record(
                uow, station_id, request_id, EventResult(None, EventType.BATTERY_OUT, withdrawn)
            )
        swap = swap_for_event(uow, station_id, request_id, token)
        # Without an offer the token still says who took the packs (the station let them go).
        rider_id = token_rider(uow, token) if swap is None else swap.rider_id
        rider = None if rider_id is None else uow.repo.lock_riders([rider_id]).get(rider_id)
        packs = uow.repo.packs([b.serial for b in batteries], lock=True)
        offers = {} if swap is None else {o.pack_serial: o for o in uow.repo.offers(swap.id)}
        outcomes = []
        for battery in batteries:
            pack = packs.get(battery.serial)
            if at is not None:
                resolved, pack = offline.resolve_hand_out(uow, station, battery, pack, at)
                if resolved is not None:
                    outcomes.append(resolved)
                    continue
            offer = offers.get(battery.serial)
            outcomes.append(
                hand_over(uow, station, swap, rider, request_id, battery, pack, offer, offline_at=at)
            )
        if swap is not None:
            taken = {b.serial for b in batteries}
            for serial, offer in offers.items():
                if serial not in taken and offer.is_open:
                    outcomes.append(release_offer(uow, swap, offer))
            uow.repo.set_swap_state(swap.id, swap.complete().state, uow.now)
        swap_id = None if swap is None else swap.id
        if replay is not None:
            event = EventType.BATTERY_OUT
            offline.note_event(uow, station_id, request_id, event, replay, token, batteries, outcomes)
        return record(
            uow, station_id, request_id, EventResult(swap_id, EventType.BATTERY_OUT, tuple(outcomes))
        )

    return db.write(work)


def _withdraw(uow: UnitOfWork, station: Station, battery: BatteryReading) -> PackOutcome:
    pack = uow.repo.pack(battery.serial, lock=True)
    if pack is None or pack.status is not PackStatus.IN_SLOT or pack.station_id != station.id:
        uow.repo.alert(
            "withdraw_mismatch",
            f"operator took {battery.serial} from slot {battery.slot_no}, which we did not have there",
            uow.now,
            station_id=station.id,
            pack_serial=battery.serial,
        )
        return PackOutcome(battery.serial, battery.slot_no, PackOutcomeKind.WITHDRAW_MISMATCH)
    if pack.reserved_swap_id is not None:
        swap = uow.repo.swap(pack.reserved_swap_id)
        offer = next(o for o in uow.repo.offers(pack.reserved_swap_id) if o.pack_serial == pack.serial)
        if swap is not None:
            release_offer(uow, swap, offer)
    uow.repo.move_pack(pack.to_stock(battery.soc_bp, battery.soh_bp), uow.now)
    return PackOutcome(battery.serial, battery.slot_no, PackOutcomeKind.WITHDRAWN)
