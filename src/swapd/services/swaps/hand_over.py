"""One pack handed to a rider (R2): the possession it opens carries the hold its offer placed, or
a hold placed now for a pack the rider took without an offer. Shared by BatteryOut and by
issuing a pack outside a swap (services/issue.py)."""

from __future__ import annotations

from swapd.domain.lifecycle import (
    OfferState,
    PackOutcomeKind,
)
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.riders import Rider
from swapd.domain.stations import Station
from swapd.services.money import rider_accounts
from swapd.services.swaps.lookups import (
    plan_of,
)
from swapd.services.swaps.postings import (
    hold,
)
from swapd.services.swaps.records import (
    BatteryReading,
    EventType,
    PackOutcome,
)
from swapd.services.swaps.rows import (
    INSERT_POSSESSION,
    SET_OFFER_STATE,
    offer_of,
)
from swapd.store.database import Tx
from swapd.store.repository import Row


def hand_over(
    tx: Tx,
    station: Station,
    swap: Row | None,
    rider: Rider | None,
    request_id: str,
    battery: BatteryReading,
    pack: Pack | None,
    offer: Row | None,
) -> PackOutcome:
    serial, slot_no = battery.serial, battery.slot_no
    rider_id = None if rider is None else rider.id
    if pack is None:
        tx.repo.alert(
            "foreign_pack",
            f"unknown pack {serial} taken from slot {slot_no}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.FOREIGN_PACK)
    if pack.status is not PackStatus.IN_SLOT or pack.station_id != station.id:
        tx.repo.alert(
            "pack_two_places",
            f"pack {serial} ({pack.place()}) reported taken from slot {slot_no}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.PACK_TWO_PLACES)
    if rider_id is None:
        # The pack left the station and we cannot tell with whom: take it out of service.
        tx.repo.alert(
            "handover_without_rider",
            f"pack {serial} taken from slot {slot_no} "
            f"without an authorized rider (request {request_id})",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        if pack.slot_no is not None:
            tx.repo.set_slot(station.id, pack.slot_no, None)
        tx.repo.update_pack(
            serial,
            tx.now,
            status=PackStatus.QUARANTINED.value,
            station_id=None,
            slot_no=None,
            reserved_swap_id=None,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.HANDOVER_WITHOUT_RIDER)
    assert rider is not None and rider_id is not None
    plan = plan_of(tx, rider)
    if offer is not None and offer.state == OfferState.OFFERED:
        taken = offer_of(offer).take()
        hold_units, hold_id = taken.hold_units, taken.hold_transfer_id
        tx.repo.run(
            SET_OFFER_STATE,
            {"p_swap_id": taken.swap_id, "p_serial": serial, "v_state": taken.state},
        )
    else:
        if pack.reserved_swap_id is not None and (swap is None or pack.reserved_swap_id != swap.id):
            tx.repo.alert(
                "pack_reserved_elsewhere",
                f"pack {serial} was offered in swap "
                f"{pack.reserved_swap_id} but taken in request {request_id}",
                tx.now,
                station_id=station.id,
                pack_serial=serial,
                rider_id=rider_id,
            )
        # Not offered by us, but physically gone with the rider: hold what the allowance covers.
        accounts = rider_accounts(tx.book, rider_id, plan)
        need = plan.requirement_for(pack)
        hold_units = min(need, accounts.allowance.available)
        hold_id = hold(
            tx,
            f"{station.id}:{request_id}:{serial}:{EventType.BATTERY_OUT}",
            rider_id,
            plan,
            hold_units,
        )
        if hold_units < need or swap is None or offer is None:
            tx.repo.alert(
                "unoffered_handover",
                f"pack {serial} handed to {rider_id} without an "
                f"offer; held {hold_units} of {need} {plan.unit}",
                tx.now,
                station_id=station.id,
                pack_serial=serial,
                rider_id=rider_id,
            )
    held_now = len(tx.repo.packs_of_rider(rider_id))
    if held_now + 1 > rider.vehicle_packs:
        tx.repo.alert(
            "too_many_packs",
            f"rider {rider_id} now holds {held_now + 1} packs; the vehicle takes {rider.vehicle_packs}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
            rider_id=rider_id,
        )
    tx.repo.run(
        INSERT_POSSESSION,
        {
            "rider_id": rider_id,
            "pack_serial": serial,
            "plan_id": plan.id,
            "swap_out_id": None if swap is None else swap.id,
            "station_out": station.id,
            "slot_out": pack.slot_no,
            "at_out": tx.now,
            "soc_out_bp": battery.soc_bp,
            "soh_out_bp": battery.soh_bp,
            "hold_units": hold_units,
            "hold_transfer_id": hold_id,
        },
    )
    if pack.slot_no is not None:
        tx.repo.set_slot(station.id, pack.slot_no, None)
    tx.repo.update_pack(
        serial,
        tx.now,
        status=PackStatus.WITH_RIDER.value,
        station_id=None,
        slot_no=None,
        rider_id=rider_id,
        reserved_swap_id=None,
        soc_bp=battery.soc_bp,
        soh_bp=battery.soh_bp,
    )
    return PackOutcome(
        serial, pack.slot_no or slot_no, PackOutcomeKind.HANDED_OVER, rider_id, hold_units=hold_units
    )
