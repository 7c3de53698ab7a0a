"""BatteryIn: packs inserted into empty slots. Each pack names its rider (R3); its possession is
closed, metered (R4) and charged (R5)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from swapd.domain.decision import (
    is_token_pack_mismatch,
)
from swapd.domain.errors import Conflict
from swapd.domain.lifecycle import (
    PackOutcomeKind,
    PossessionClosed,
    SwapState,
)
from swapd.domain.metering import meter
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.stations import Station
from swapd.services.swaps.checks import (
    check_batteries,
    check_request_id,
    check_token,
)
from swapd.services.swaps.lookups import (
    is_operator,
    known_station,
    token_rider,
)
from swapd.services.swaps.offers import (
    abandon,
)
from swapd.services.swaps.postings import (
    post_charge,
)
from swapd.services.swaps.records import (
    BatteryReading,
    EventResult,
    EventType,
    PackOutcome,
)
from swapd.services.swaps.rows import (
    already,
    insert_swap,
    open_offer,
    possession_of,
    record,
    set_swap,
)
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.repository import Retry


def battery_in(
    db: Database,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading],
    *,
    token: IdToken | None = None,
) -> EventResult:
    """Packs inserted into empty slots. Each pack names its rider (R3); its possession is closed,
    metered (R4) and charged (R5). Packs that nobody holds raise an alert and change nothing."""
    request_id = check_request_id(request_id)
    if token is not None:
        check_token(token)

    def work(tx: Tx) -> EventResult:
        station = known_station(tx, station_id)
        check_batteries(station, batteries)
        repeated = already(tx, station_id, request_id, EventType.BATTERY_IN)
        if repeated is not None:
            return repeated
        serials = [b.serial for b in batteries]
        packs = tx.repo.packs(serials)
        holders = {s: p.rider_id for s, p in packs.items() if p.rider_id}
        if tx.repo.locks_rows:  # riders first, then packs; the holders may have changed since
            # (SQLite's write transaction holds the whole database: nothing to lock or re-read.)
            tx.repo.lock_riders(sorted(set(holders.values())))
            packs = tx.repo.packs(serials, lock=True)
            if {s: p.rider_id for s, p in packs.items() if p.rider_id} != holders:
                raise Retry()
        for battery in batteries:
            slot = tx.repo.slot(station_id, battery.slot_no)
            assert slot is not None
            if slot.pack_serial is not None and slot.pack_serial != battery.serial:
                raise Conflict(
                    f"slot {battery.slot_no} of station {station_id} already holds pack "
                    f"{slot.pack_serial}; {battery.serial} cannot be inserted there"
                )
        operator = is_operator(tx, token)
        swap_id = _swap_for_return(tx, station_id, request_id, token, holders, serials)
        outcomes = []
        for battery in batteries:
            pack = packs.get(battery.serial)
            outcomes.append(_return_one(tx, station, swap_id, request_id, battery, pack, operator))
        return record(
            tx, station_id, request_id, EventResult(swap_id, EventType.BATTERY_IN, tuple(outcomes))
        )

    return db.write(work)


def _swap_for_return(
    tx: Tx,
    station_id: str,
    request_id: str,
    token: IdToken | None,
    holders: dict[str, str],
    serials: Sequence[str],
) -> int:
    existing = tx.repo.swap_by_request(station_id, request_id)
    if existing is not None:
        return int(existing.id)
    rider_id = next((holders[s] for s in serials if s in holders), None)
    if rider_id is not None:
        offer = open_offer(tx, station_id, rider_id)
        if offer is not None and offer.request_id is None:
            set_swap(tx, offer.id, request_id=request_id)
            return int(offer.id)
    used = token or IdToken(TokenType.BATTERY_SERIAL, serials[0])
    swap_id = insert_swap(
        tx, station_id, used, SwapState.RETURNED, rider_id=rider_id, request_id=request_id
    )
    # Rare: the packs' holder has no offer here, yet a card or app token names someone.
    if rider_id is not None and token is not None and token.type is not TokenType.BATTERY_SERIAL:
        _check_token_against_packs(tx, station_id, request_id, swap_id, token, holders, serials)
    return swap_id


def _check_token_against_packs(
    tx: Tx,
    station_id: str,
    request_id: str,
    swap_id: int,
    token: IdToken,
    holders: dict[str, str],
    serials: Sequence[str],
) -> None:
    """The packs decide who is billed (R3); a token naming someone else is an alert, and the
    offer that token was given here is abandoned now instead of at its timeout. Runs once per
    BatteryIn: a repeated event is answered from its record before getting here."""
    token_rider_id = token_rider(tx, token)
    if not is_token_pack_mismatch(token_rider_id, set(holders.values())):
        return
    assert token_rider_id is not None
    offer = open_offer(tx, station_id, token_rider_id)
    released = ""
    if offer is not None and offer.request_id is None:  # unbound: it was given for this token
        outcomes = abandon(tx, offer)
        released = f"; offer {offer.id} to {token_rider_id} released ({len(outcomes)} packs)"
    held = [s for s in serials if s in holders]
    tx.repo.alert(
        "token_pack_mismatch",
        f"{token.type.value} token of rider {token_rider_id} returned {', '.join(held)} held by "
        f"{', '.join(sorted(set(holders.values())))} at {station_id} "
        f"(request {request_id}, swap {swap_id}); the pack's holder is billed{released}",
        tx.now,
        station_id=station_id,
        pack_serial=held[0],
        rider_id=token_rider_id,
    )


def _return_one(
    tx: Tx,
    station: Station,
    swap_id: int,
    request_id: str,
    battery: BatteryReading,
    pack: Pack | None,
    operator: bool,
) -> PackOutcome:
    serial, slot_no = battery.serial, battery.slot_no
    if pack is None:
        tx.repo.alert(
            "foreign_pack",
            f"unknown pack {serial} inserted into slot {slot_no}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.FOREIGN_PACK)
    if pack.status is PackStatus.WITH_RIDER:
        return _close_possession(tx, station, swap_id, request_id, battery, pack)
    if pack.status is PackStatus.IN_SLOT and (pack.station_id, pack.slot_no) == (
        station.id,
        slot_no,
    ):
        return PackOutcome(serial, slot_no, PackOutcomeKind.ALREADY_IN_SLOT)
    if operator and pack.status in (PackStatus.IN_STOCK, PackStatus.QUARANTINED):
        _place(tx, pack.serial, station.id, slot_no, battery)
        return PackOutcome(serial, slot_no, PackOutcomeKind.RESTOCKED)
    kind = (
        PackOutcomeKind.PACK_TWO_PLACES
        if pack.status is PackStatus.IN_SLOT
        else PackOutcomeKind.PACK_NOT_ASSIGNED
    )
    tx.repo.alert(
        kind,
        f"pack {serial} ({pack.place()}) reported in slot {slot_no}",
        tx.now,
        station_id=station.id,
        pack_serial=serial,
    )
    return PackOutcome(serial, slot_no, kind)


def _place(tx: Tx, serial: str, station_id: str, slot_no: int, battery: BatteryReading) -> None:
    tx.repo.update_pack(
        serial,
        tx.now,
        status=PackStatus.IN_SLOT.value,
        station_id=station_id,
        slot_no=slot_no,
        rider_id=None,
        reserved_swap_id=None,
        soc_bp=battery.soc_bp,
        soh_bp=battery.soh_bp,
    )
    tx.repo.set_slot(station_id, slot_no, serial)


def _close_possession(
    tx: Tx, station: Station, swap_id: int, request_id: str, battery: BatteryReading, pack: Pack
) -> PackOutcome:
    row = tx.repo.open_possession(pack.serial)
    assert row is not None, "a pack with a rider has an open possession"
    possession = possession_of(row)
    plan = tx.repo.plan(possession.plan_id)
    assert plan is not None
    usage = meter(
        plan,
        nominal_wh=pack.nominal_wh,
        soh_out_bp=possession.soh_out_bp,
        soc_out_bp=possession.soc_out_bp,
        soc_in_bp=battery.soc_bp,
        handed_over_at=possession.at_out,
        returned_at=tx.now,
    )
    rider_id = possession.rider_id
    key = f"{station.id}:{request_id}:{pack.serial}:{EventType.BATTERY_IN}"
    charge = post_charge(
        tx, key, rider_id, plan, possession.held_units, possession.hold_transfer_id, usage.units
    )
    if usage.anomaly:
        tx.repo.alert(
            "soc_anomaly",
            f"pack {pack.serial}: {usage.anomaly}",
            tx.now,
            station_id=station.id,
            pack_serial=pack.serial,
            rider_id=rider_id,
        )
    closed = possession.close(
        swap_in_id=swap_id,
        station_in=station.id,
        slot_in=battery.slot_no,
        at_in=tx.now,
        soc_in_bp=battery.soc_bp,
        soh_in_bp=battery.soh_bp,
        usage_units=usage.units,
        anomaly=usage.anomaly,
    )
    tx.repo.update(t.possessions, "id", closed.possession_id, _closed_columns(closed))
    _place(tx, pack.serial, station.id, battery.slot_no, battery)
    if plan.is_subscription:
        tx.repo.execute(
            sa.update(t.subscriptions)
            .where(t.subscriptions.c.rider_id == rider_id)
            .values(consumed_units=t.subscriptions.c.consumed_units + charge.charged_units)
        )
    return PackOutcome(
        pack.serial,
        battery.slot_no,
        PackOutcomeKind.RETURNED,
        rider_id,
        usage.units,
        charge.charged_units,
        charge.beyond_units,
        charge.revenue_minor,
        charge.overage_minor,
        possession.hold_units,
        usage.anomaly,
    )


def _closed_columns(closed: PossessionClosed) -> dict[str, Any]:
    """The possession's columns a return sets: the event's fields are named after them."""
    return {
        field.name: getattr(closed, field.name)
        for field in dataclasses.fields(closed)
        if field.name != "possession_id"
    }
