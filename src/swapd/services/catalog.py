"""Setting up the network: pack models, stations, plans, riders, tokens, and operator pack moves."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa

from swapd.domain.errors import Conflict, InvalidInput, NotFound
from swapd.domain.packs import Pack, PackModel, PackStatus, validate_code, validate_serial
from swapd.domain.plans import Plan
from swapd.domain.quantities import percent_to_bp, require_non_negative_int
from swapd.domain.riders import CARD_TOKEN_TYPES, Rider, RiderStatus, TokenType
from swapd.domain.stations import SlotState, Station, validate_slot_count
from swapd.store import schema as t
from swapd.store.database import Database, Transactional, Tx


def add_pack_model(db: Database, code: str, nominal_wh: int) -> PackModel:
    model = PackModel(code, nominal_wh)

    def work(tx: Tx) -> PackModel:
        if tx.repo.pack_model(code) is not None:
            raise Conflict(f"pack model {code} exists already")
        tx.repo.execute(sa.insert(t.pack_models).values(code=code, nominal_wh=nominal_wh))
        return model

    return db.write(work)


def add_station(
    db: Transactional,
    station_id: str,
    slot_count: int,
    *,
    charged_soc: object = 90,
    min_soh: object = 70,
) -> Station:
    station = Station(
        validate_code(station_id, "station"),
        validate_slot_count(slot_count),
        True,
        percent_to_bp(charged_soc, "charged_soc"),
        percent_to_bp(min_soh, "min_soh"),
    )

    def work(tx: Tx) -> Station:
        if tx.repo.station(station_id) is not None:
            raise Conflict(f"station {station_id} exists already")
        tx.repo.execute(
            sa.insert(t.stations).values(
                id=station.id,
                slot_count=station.slot_count,
                enabled=True,
                charged_soc_bp=station.charged_soc_bp,
                min_soh_bp=station.min_soh_bp,
                created_at=tx.now,
            )
        )
        tx.repo.conn.execute(
            sa.insert(t.slots),
            [
                {"station_id": station.id, "slot_no": n, "state": SlotState.AVAILABLE.value}
                for n in range(1, slot_count + 1)
            ],
        )
        return station

    return db.write(work)


def add_plan(db: Transactional, plan: Plan) -> Plan:
    def work(tx: Tx) -> Plan:
        if tx.repo.plan(plan.id) is not None:
            raise Conflict(f"plan {plan.id} exists already")
        tx.repo.execute(
            sa.insert(t.plans).values(
                id=plan.id,
                kind=plan.kind.value,
                unit=plan.unit.value,
                currency=plan.currency,
                price_minor=plan.price_minor,
                price_units=plan.price_units,
                granularity_s=plan.granularity_s,
                time_hold_s=plan.time_hold_s,
                fee_minor=plan.fee_minor,
                included_units=plan.included_units,
                carry_over=plan.carry_over,
                prorate_first_cycle=plan.prorate_first_cycle,
                listed=plan.listed,
                offline_swaps_max=plan.offline_swaps_max,
            )
        )
        return plan

    return db.write(work)


def add_rider(db: Database, rider_id: str, plan_id: str, *, vehicle_packs: int = 1) -> Rider:
    rider = Rider(validate_code(rider_id, "rider"), plan_id, RiderStatus.ACTIVE, vehicle_packs)

    def work(tx: Tx) -> Rider:
        if tx.repo.plan(plan_id) is None:
            raise NotFound(f"unknown plan {plan_id}")
        if tx.repo.rider(rider_id) is not None:
            raise Conflict(f"rider {rider_id} exists already")
        tx.repo.execute(
            sa.insert(t.riders).values(
                id=rider.id,
                plan_id=plan_id,
                status=rider.status.value,
                vehicle_packs=vehicle_packs,
                created_at=tx.now,
            )
        )
        return rider

    return db.write(work)


def set_rider_status(db: Transactional, rider_id: str, status: RiderStatus) -> Rider:
    def work(tx: Tx) -> Rider:
        rider = tx.repo.rider(rider_id, lock=True)
        if rider is None:
            raise NotFound(f"unknown rider {rider_id}")
        tx.repo.execute(sa.update(t.riders).where(t.riders.c.id == rider_id).values(status=status.value))
        tx.repo.note_list_change(tx.now)  # the rider's entries in the stations' lists follow
        return replace(rider, status=status)

    return db.write(work)


def add_token(
    db: Database, token_type: TokenType, value: str, *, rider_id: str | None, operator: bool = False
) -> None:
    """Register an RFID card (or another token) for a rider, or as an operator's staff card."""
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not value.isprintable():
        raise InvalidInput(f"token value must be 1-255 printable characters, got {value!r}")
    if token_type not in CARD_TOKEN_TYPES:
        # A pack names its holder and an app token names its rider: only cards are registered,
        # which lets a swap skip the card table for the other kinds.
        raise InvalidInput(f"only RFID cards are registered, not {token_type.value} tokens")
    if (rider_id is None) == (not operator):
        raise InvalidInput("a token belongs to a rider or is an operator token, not both")

    def work(tx: Tx) -> None:
        if rider_id is not None and tx.repo.rider(rider_id) is None:
            raise NotFound(f"unknown rider {rider_id}")
        if tx.repo.token_owner(token_type.value, value) is not None:
            raise Conflict(f"token {token_type.value} {value} is registered already")
        tx.repo.execute(
            sa.insert(t.id_tokens).values(
                type=token_type.value, value=value, rider_id=rider_id, operator=operator
            )
        )
        tx.repo.note_list_change(tx.now)

    db.write(work)


def register_pack(
    db: Transactional,
    serial: str,
    model_code: str,
    *,
    soh: object = 100,
    soc: object = 0,
    cycle_count: int = 0,
    station_id: str | None = None,
    slot_no: int | None = None,
) -> Pack:
    """A new pack enters the fleet: into the depot, or straight into an empty slot."""
    validate_serial(serial)
    soh_bp = percent_to_bp(soh, "soh")
    soc_bp = percent_to_bp(soc, "soc")
    require_non_negative_int(cycle_count, "cycle_count")
    if (station_id is None) != (slot_no is None):
        raise InvalidInput("give both a station and a slot, or neither")

    def work(tx: Tx) -> Pack:
        model = tx.repo.pack_model(model_code)
        if model is None:
            raise NotFound(f"unknown pack model {model_code}")
        if tx.repo.pack(serial) is not None:
            raise Conflict(f"pack {serial} is registered already")
        status = PackStatus.IN_STOCK
        if station_id is not None and slot_no is not None:
            _check_empty_slot(tx, station_id, slot_no)
            status = PackStatus.IN_SLOT
        tx.repo.execute(
            sa.insert(t.packs).values(
                serial=serial,
                model_code=model_code,
                soh_bp=soh_bp,
                soc_bp=soc_bp,
                cycle_count=cycle_count,
                status=status.value,
                station_id=station_id,
                slot_no=slot_no,
                rider_id=None,
                reserved_swap_id=None,
                updated_at=tx.now,
                placed_at=tx.now,
            )
        )
        if station_id is not None and slot_no is not None:
            tx.repo.set_slot(station_id, slot_no, serial)
        tx.repo.note_list_change(tx.now)  # a new pack: Blocked in the lists until someone holds it
        pack = tx.repo.pack(serial)
        assert pack is not None
        return pack

    return db.write(work)


def _check_empty_slot(tx: Tx, station_id: str, slot_no: int) -> Station:
    station = tx.repo.station(station_id, lock=True)
    if station is None:
        raise NotFound(f"unknown station {station_id}")
    station.check_slot(slot_no)
    slot = tx.repo.slot(station_id, slot_no)
    assert slot is not None
    if slot.pack_serial is not None:
        raise Conflict(f"slot {slot_no} of station {station_id} holds pack {slot.pack_serial}")
    return station


def restock(
    db: Database,
    station_id: str,
    slot_no: int,
    serial: str,
    *,
    soc: object,
    soh: object | None = None,
) -> Pack:
    """Operator move: a pack from the depot (or quarantine) into an empty slot. No billing."""
    soc_bp = percent_to_bp(soc, "soc")
    soh_bp = None if soh is None else percent_to_bp(soh, "soh")

    def work(tx: Tx) -> Pack:
        pack = tx.repo.pack(serial, lock=True)
        if pack is None:
            raise NotFound(f"unknown pack {serial}")
        if pack.status not in (PackStatus.IN_STOCK, PackStatus.QUARANTINED):
            raise Conflict(f"pack {serial} is {pack.place()}; withdraw it first")
        _check_empty_slot(tx, station_id, slot_no)
        into = pack.into_slot(station_id, slot_no, soc_bp, pack.soh_bp if soh_bp is None else soh_bp)
        tx.repo.move_pack(into, tx.now)
        moved = tx.repo.pack(serial)
        assert moved is not None
        return moved

    return db.write(work)


def move_out_of_slot(db: Transactional, serial: str, status: PackStatus) -> Pack:
    """Operator move: withdraw to the depot, quarantine or retire a pack that is not with a rider."""
    if status not in (PackStatus.IN_STOCK, PackStatus.QUARANTINED, PackStatus.RETIRED):
        raise InvalidInput(f"cannot move a pack to {status}")

    def work(tx: Tx) -> Pack:
        pack = tx.repo.pack(serial, lock=True)
        if pack is None:
            raise NotFound(f"unknown pack {serial}")
        if pack.status is PackStatus.WITH_RIDER:
            raise Conflict(f"pack {serial} is with rider {pack.rider_id}; it must be returned first")
        if pack.reserved_swap_id is not None:
            raise Conflict(f"pack {serial} is offered to a rider in swap {pack.reserved_swap_id}")
        if pack.status is PackStatus.RETIRED:
            raise Conflict(f"pack {serial} is retired")
        if status is PackStatus.IN_STOCK:
            out = pack.to_stock()
        elif status is PackStatus.QUARANTINED:
            out = pack.to_quarantine()
        else:
            out = pack.to_retired()
        tx.repo.move_pack(out, tx.now)
        moved = tx.repo.pack(serial)
        assert moved is not None
        return moved

    return db.write(work)


def report_soc(
    db: Database, station_id: str, slot_no: int, soc: object, *, measured_at: datetime | None = None
) -> Pack:
    """A charging update for the pack in a slot (S04 meter values). A reading measured before
    the last one applied (a station replaying its offline queue) changes nothing."""
    soc_bp = percent_to_bp(soc, "soc")
    if measured_at is not None and measured_at.tzinfo is None:
        raise InvalidInput("measured_at must carry a time zone")

    def work(tx: Tx) -> Pack:
        station = tx.repo.station(station_id)
        if station is None:
            raise NotFound(f"unknown station {station_id}")
        station.check_slot(slot_no)
        slot = tx.repo.slot(station_id, slot_no)
        if slot is None or slot.pack_serial is None:
            raise Conflict(f"slot {slot_no} of station {station_id} is empty")
        if measured_at is not None:
            last = tx.repo.execute(
                sa.select(t.packs.c.soc_measured_at).where(t.packs.c.serial == slot.pack_serial)
            ).scalar_one()
            if last is not None and measured_at < last:
                pack = tx.repo.pack(slot.pack_serial)
                assert pack is not None
                return pack
        measured = {} if measured_at is None else {"soc_measured_at": measured_at}
        tx.repo.update_pack(slot.pack_serial, tx.now, soc_bp=soc_bp, **measured)
        pack = tx.repo.pack(slot.pack_serial)
        assert pack is not None
        return pack

    return db.write(work)
