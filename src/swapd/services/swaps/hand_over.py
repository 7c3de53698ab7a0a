"""One pack handed to a rider (R2): the possession it opens carries the hold its offer placed, or
a hold placed now for a pack the rider took without an offer. Shared by BatteryOut and by
issuing a pack outside a swap (services/issue.py)."""

from __future__ import annotations

from datetime import datetime

from swapd.domain.lifecycle import Offer, PackOutcomeKind, PossessionOpened, Swap
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.riders import Rider
from swapd.domain.stations import Station
from swapd.services.money import rider_accounts
from swapd.services.ports import UnitOfWork
from swapd.services.swaps.lookups import plan_of
from swapd.services.swaps.offline import cover_shortfall
from swapd.services.swaps.postings import hold
from swapd.services.swaps.records import BatteryReading, EventType, PackOutcome


def hand_over(
    uow: UnitOfWork,
    station: Station,
    swap: Swap | None,
    rider: Rider | None,
    request_id: str,
    battery: BatteryReading,
    pack: Pack | None,
    offer: Offer | None,
    *,
    offline_at: datetime | None = None,
) -> PackOutcome:
    """``battery`` left its slot with ``rider`` (None when no one was authorized) in ``swap``
    (None without one), taking ``offer`` (the swap's offer of that pack, if any). A pack the
    server does not have in that station, or that left with no rider, raises an alert.
    ``offline_at``: an offline station handed it over then (a replay, services/swaps/offline.py);
    what the allowance lacks for it is bought on credit."""
    serial, slot_no = battery.serial, battery.slot_no
    at = uow.now if offline_at is None else offline_at
    if pack is None or pack.status is not PackStatus.IN_SLOT or pack.station_id != station.id:
        return _misplaced(uow, station, battery, pack)
    if rider is None:
        return _without_rider(uow, station, request_id, battery, pack, at)
    plan = plan_of(uow, rider)
    if offer is not None and offer.is_open:
        taken = offer.take()
        hold_units, hold_id = taken.hold_units, taken.hold_transfer_id
        uow.repo.set_offer_state(taken.swap_id, serial, taken.state)
    else:
        hold_units, hold_id = _hold_unoffered(
            uow, station, swap, rider, plan, request_id, pack, offer, offline_at=offline_at
        )
    _alert_if_too_many(uow, station, rider, serial)
    _open_possession(uow, station, swap, rider, plan, battery, pack, hold_units, hold_id, at)
    return PackOutcome(
        serial, pack.slot_no or slot_no, PackOutcomeKind.HANDED_OVER, rider.id, hold_units=hold_units
    )


def _misplaced(
    uow: UnitOfWork, station: Station, battery: BatteryReading, pack: Pack | None
) -> PackOutcome:
    serial, slot_no = battery.serial, battery.slot_no
    if pack is None:
        kind = PackOutcomeKind.FOREIGN_PACK
        text = f"unknown pack {serial} taken from slot {slot_no}"
    else:
        kind = PackOutcomeKind.PACK_TWO_PLACES
        text = f"pack {serial} ({pack.place()}) reported taken from slot {slot_no}"
    uow.repo.alert(kind, text, uow.now, station_id=station.id, pack_serial=serial)
    return PackOutcome(serial, slot_no, kind)


def _without_rider(
    uow: UnitOfWork,
    station: Station,
    request_id: str,
    battery: BatteryReading,
    pack: Pack,
    at: datetime,
) -> PackOutcome:
    """The pack left the station and we cannot tell with whom: take it out of service."""
    serial, slot_no = battery.serial, battery.slot_no
    uow.repo.alert(
        "handover_without_rider",
        f"pack {serial} taken from slot {slot_no} without an authorized rider (request {request_id})",
        uow.now,
        station_id=station.id,
        pack_serial=serial,
    )
    uow.repo.move_pack(pack.to_quarantine(), at)
    return PackOutcome(serial, slot_no, PackOutcomeKind.HANDOVER_WITHOUT_RIDER)


def _hold_unoffered(
    uow: UnitOfWork,
    station: Station,
    swap: Swap | None,
    rider: Rider,
    plan: Plan,
    request_id: str,
    pack: Pack,
    offer: Offer | None,
    *,
    offline_at: datetime | None,
) -> tuple[int, int | None]:
    """Not offered by us, but physically gone with the rider: hold what the allowance covers.
    Returns the units held and the hold's transfer (None when nothing is held). An offline
    hand-over has no offer by nature; what the allowance lacks for it is bought on credit
    first (offline.cover_shortfall), so that its hold covers the pack as an offer's would."""
    serial = pack.serial
    if pack.reserved_swap_id is not None and (swap is None or pack.reserved_swap_id != swap.id):
        uow.repo.alert(
            "pack_reserved_elsewhere",
            f"pack {serial} was offered in swap "
            f"{pack.reserved_swap_id} but taken in request {request_id}",
            uow.now,
            station_id=station.id,
            pack_serial=serial,
            rider_id=rider.id,
        )
    accounts = rider_accounts(uow.book, rider.id, plan)
    need = plan.requirement_for(pack)
    key = f"{station.id}:{request_id}:{serial}:{EventType.BATTERY_OUT}"
    if offline_at is not None:
        accounts = cover_shortfall(uow, key, station, rider, plan, serial, need, accounts, offline_at)
    hold_units = min(need, accounts.allowance.available)
    hold_id = hold(uow, key, rider.id, plan, hold_units)
    if offline_at is None and (hold_units < need or swap is None or offer is None):
        uow.repo.alert(
            "unoffered_handover",
            f"pack {serial} handed to {rider.id} without an "
            f"offer; held {hold_units} of {need} {plan.unit}",
            uow.now,
            station_id=station.id,
            pack_serial=serial,
            rider_id=rider.id,
        )
    return hold_units, hold_id


def _alert_if_too_many(uow: UnitOfWork, station: Station, rider: Rider, serial: str) -> None:
    held_now = len(uow.repo.packs_of_rider(rider.id))
    if held_now + 1 > rider.vehicle_packs:
        uow.repo.alert(
            "too_many_packs",
            f"rider {rider.id} now holds {held_now + 1} packs; the vehicle takes {rider.vehicle_packs}",
            uow.now,
            station_id=station.id,
            pack_serial=serial,
            rider_id=rider.id,
        )


def _open_possession(
    uow: UnitOfWork,
    station: Station,
    swap: Swap | None,
    rider: Rider,
    plan: Plan,
    battery: BatteryReading,
    pack: Pack,
    hold_units: int,
    hold_id: int | None,
    at: datetime,
) -> None:
    """R2: the possession, the slot emptied, and the pack recorded as with the rider, at ``at``
    (the transaction's time, or an offline hand-over's own)."""
    uow.repo.insert_possession(
        PossessionOpened(
            rider_id=rider.id,
            pack_serial=pack.serial,
            plan_id=plan.id,
            swap_out_id=None if swap is None else swap.id,
            station_out=station.id,
            slot_out=pack.slot_no,
            at_out=at,
            soc_out_bp=battery.soc_bp,
            soh_out_bp=battery.soh_bp,
            hold_units=hold_units,
            hold_transfer_id=hold_id,
        )
    )
    uow.repo.move_pack(pack.to_rider(rider.id, battery.soc_bp, battery.soh_bp), at)
