"""Issuing a pack to a rider outside a station's swap: a rider who buys a vehicle with its packs.

An issue is a station hand-over started by staff: the same checks as an Authorize for that one
pack (``decide``: rider active, vehicle size, allowance covering the hold, pack charged and
healthy), an offer with its pending hold (``swaps.offers.place_offer``, as Authorize places
it), then the station path's own hand-over (``swaps.hand_over.hand_over``), which opens the
possession (R2), moves the hold onto it, frees the slot and records the pack as with the rider.
The later return at any station is metered and charged against that hold like any other
(R3-R5).

Where the pack must be: in a station slot, not offered in a swap. It leaves that slot, and the
possession names that station and slot as where it was handed over (a possession always names
one). A pack in the depot is refused: restock it into a slot first (``swapd pack restock``).

A refusal writes nothing. Issuing a pack to the rider who already holds it returns that
possession again (one possession, one hold); to anyone else it is refused as held by another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from swapd.domain.decision import REFUSAL_TEXT, Decision, RefusalReason, decide
from swapd.domain.errors import Conflict, NotFound
from swapd.domain.lifecycle import Swap, SwapState
from swapd.domain.packs import Pack, PackStatus, validate_code, validate_serial
from swapd.domain.riders import IdToken, TokenType
from swapd.services import audit
from swapd.services.money import rider_accounts
from swapd.services.swaps import BatteryReading
from swapd.services.swaps.hand_over import hand_over
from swapd.services.swaps.lookups import plan_of
from swapd.services.swaps.offers import place_offer
from swapd.store.database import Database, Tx


class IssueRefused(Conflict):
    """The pack may not be issued to the rider; ``reason`` is the one a station would give."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{REFUSAL_TEXT[reason]} ({reason.value}): {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Issued:
    serial: str
    rider_id: str
    station_id: str  # where it was handed over from
    slot_no: int
    soc_bp: int
    soh_bp: int
    hold_units: int
    unit: str
    available_units: int  # the rider's allowance after holds, now
    swap_id: int | None
    repeated: bool = False


def issue_pack(db: Database, actor: str, serial: str, rider_id: str) -> Issued:
    """Hand ``serial`` to ``rider_id`` from the slot it sits in, as a station would."""
    validate_serial(serial)
    validate_code(rider_id, "rider")

    def work(tx: Tx) -> Issued:
        rider = tx.repo.lock_riders([rider_id]).get(rider_id)  # riders first, then packs
        if rider is None:
            raise NotFound(f"unknown rider {rider_id}")
        pack = tx.repo.pack(serial, lock=True)
        if pack is None:
            raise NotFound(f"unknown pack {serial}")
        if pack.status is PackStatus.WITH_RIDER:
            if pack.rider_id == rider_id:
                return _issued_already(tx, serial, rider_id)
            raise IssueRefused(RefusalReason.PACK_HELD_BY_OTHER, f"pack {serial} is {pack.place()}")
        if pack.status in (PackStatus.QUARANTINED, PackStatus.RETIRED):
            raise IssueRefused(RefusalReason.PACK_DAMAGED, f"pack {serial} is {pack.place()}")
        if pack.status is PackStatus.IN_STOCK or pack.station_id is None or pack.slot_no is None:
            raise Conflict(
                f"pack {serial} is in the depot: restock it into a station slot first "
                "(a pack is issued from the slot it sits in)"
            )
        if pack.reserved_swap_id is not None:
            raise Conflict(f"pack {serial} is offered in swap {pack.reserved_swap_id}; try again later")
        station = tx.repo.station(pack.station_id)
        assert station is not None, "a pack in a slot names a station that exists"
        if pack.soh_bp < station.min_soh_bp:
            raise IssueRefused(
                RefusalReason.PACK_SOH_LOW,
                f"pack {serial} has SoH {pack.soh_bp / 100:.2f} %; "
                f"{station.id} hands out from {station.min_soh_bp / 100:.2f} %",
            )
        plan = plan_of(tx, rider)
        held = tx.repo.packs_of_rider(rider_id)
        available = rider_accounts(tx.book, rider_id, plan).allowance.available
        decision = decide(
            station=station,
            rider=rider,
            plan=plan,
            available_units=available,
            held_count=len(held),
            returning=(),
            stock=[pack],
            wanted=1,
        )
        if not decision.accepted:
            assert decision.reason is not None
            raise IssueRefused(
                decision.reason,
                _refusal_detail(decision.reason, serial, rider_id, plan.unit.value, decision, held),
            )
        (choice,) = decision.offers
        # The offer authorize() would place for this one pack, then the station's hand-over.
        token = IdToken(TokenType.APP, rider_id)
        swap_id = tx.repo.insert_swap(station.id, token, SwapState.OFFERED, tx.now, rider_id=rider_id)
        offer = place_offer(tx, swap_id, rider_id, plan, serial, pack.slot_no, choice.hold_units)
        swap = Swap(swap_id, station.id, rider_id, SwapState.OFFERED, token=token)
        reading = BatteryReading(pack.slot_no, serial, pack.soc_bp, pack.soh_bp)
        # ``pack`` as read before its reservation: the hand-over of an open offer reads only
        # where the pack is (status, station, slot), which the reservation does not change.
        outcome = hand_over(tx, station, swap, rider, f"issue:{swap_id}", reading, pack, offer)
        assert outcome.outcome == "handed_over", outcome
        tx.repo.set_swap_state(swap_id, swap.complete().state, tx.now)
        audit.record(
            tx,
            actor,
            "pack.issue",
            serial,
            "pack issued outside a swap",
            {"rider": rider_id, "station": station.id, "slot": pack.slot_no},
        )
        return Issued(
            serial,
            rider_id,
            station.id,
            pack.slot_no,
            pack.soc_bp,
            pack.soh_bp,
            outcome.hold_units,
            plan.unit.value,
            rider_accounts(tx.book, rider_id, plan).allowance.available,
            swap_id,
        )

    return db.write(work)


def _refusal_detail(
    reason: RefusalReason,
    serial: str,
    rider_id: str,
    unit: str,
    decision: Decision,
    held: Sequence[Pack],
) -> str:
    if reason is RefusalReason.NO_CREDIT:
        return (
            f"rider {rider_id} has {decision.available_units:,} {unit} available; "
            f"pack {serial} needs {decision.required_units:,} {unit}"
        )
    if reason is RefusalReason.VEHICLE_FULL:
        return f"rider {rider_id} holds {', '.join(p.serial for p in held)}"
    if reason is RefusalReason.NO_CHARGED_PACK:
        return f"pack {serial} is not charged enough to be handed out"
    return f"pack {serial} to rider {rider_id}"


def _issued_already(tx: Tx, serial: str, rider_id: str) -> Issued:
    """The repeat of an issue (or of a hand-over at a station): the open possession, unchanged."""
    possession = tx.repo.open_possession(serial)
    assert possession is not None, "a pack with a rider has an open possession"
    assert possession.station_out is not None, "a possession records where it began"
    assert possession.slot_out is not None, "issued packs leave from a slot"
    rider = tx.repo.rider(rider_id)
    assert rider is not None
    plan = plan_of(tx, rider)
    return Issued(
        serial,
        rider_id,
        possession.station_out,
        possession.slot_out,
        possession.soc_out_bp,
        possession.soh_out_bp,
        possession.hold_units,
        plan.unit.value,
        rider_accounts(tx.book, rider_id, plan).allowance.available,
        possession.swap_out_id,
        repeated=True,
    )
