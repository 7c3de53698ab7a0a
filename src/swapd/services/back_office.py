"""Back-office changes made by staff through the HTTP API: each one and its audit row commit in
the same transaction, so a change never exists without the record of who made it and why.

The existing services (catalog, stations, payments) each open their own transaction. Here they
run inside one outer transaction through ``joined``, so that the audit row joins theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput, NotFound
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.quantities import percent_to_bp
from swapd.domain.riders import Rider, RiderStatus
from swapd.services import audit, catalog, pack_import, payments, stations
from swapd.store import schema as t
from swapd.store.database import Database, Tx

T = TypeVar("T")

MAX_IMPORT_ROWS = 10_000  # one request; larger fleets import in several files
MAX_LAT_MICRODEG = 90_000_000
MAX_LON_MICRODEG = 180_000_000


# -- stations -------------------------------------------------------------------------------------


def _check_coordinates(lat_microdeg: int | None, lon_microdeg: int | None) -> None:
    if (lat_microdeg is None) != (lon_microdeg is None):
        raise InvalidInput("give both lat_microdeg and lon_microdeg, or neither")
    if lat_microdeg is not None and not -MAX_LAT_MICRODEG <= lat_microdeg <= MAX_LAT_MICRODEG:
        raise InvalidInput(f"lat_microdeg must be within +-{MAX_LAT_MICRODEG}, got {lat_microdeg}")
    if lon_microdeg is not None and not -MAX_LON_MICRODEG <= lon_microdeg <= MAX_LON_MICRODEG:
        raise InvalidInput(f"lon_microdeg must be within +-{MAX_LON_MICRODEG}, got {lon_microdeg}")


def create_station(
    db: Database,
    actor: str,
    station_id: str,
    slot_count: int,
    *,
    charged_soc: object,
    min_soh: object,
    name: str | None,
    lat_microdeg: int | None,
    lon_microdeg: int | None,
) -> str:
    """Add a station with its slots and a generated OCPP password; returns the password (once)."""
    _check_coordinates(lat_microdeg, lon_microdeg)

    def work(tx: Tx) -> str:
        catalog.add_station(tx, station_id, slot_count, charged_soc=charged_soc, min_soh=min_soh)
        tx.repo.execute(
            sa.update(t.stations)
            .where(t.stations.c.id == station_id)
            .values(name=name, lat_microdeg=lat_microdeg, lon_microdeg=lon_microdeg)
        )
        password = stations.set_password(tx, station_id)
        audit.record(
            tx,
            actor,
            "station.create",
            station_id,
            "new station",
            {"slot_count": slot_count, "name": name},
        )
        return password

    return db.write(work)


@dataclass(frozen=True, slots=True)
class StationEdit:
    """Fields to change; None leaves a field as it is."""

    name: str | None = None
    lat_microdeg: int | None = None
    lon_microdeg: int | None = None
    charged_soc: object = None
    min_soh: object = None


def edit_station(db: Database, actor: str, station_id: str, edit: StationEdit, reason: str) -> None:
    reason = audit.check_reason(reason)
    values: dict[str, Any] = {}
    if edit.name is not None:
        values["name"] = edit.name
    if edit.lat_microdeg is not None or edit.lon_microdeg is not None:
        _check_coordinates(edit.lat_microdeg, edit.lon_microdeg)
        values["lat_microdeg"] = edit.lat_microdeg
        values["lon_microdeg"] = edit.lon_microdeg
    if edit.charged_soc is not None:
        values["charged_soc_bp"] = percent_to_bp(edit.charged_soc, "charged_soc")
    if edit.min_soh is not None:
        values["min_soh_bp"] = percent_to_bp(edit.min_soh, "min_soh")
    if not values:
        raise InvalidInput("nothing to change: give name, coordinates, charged_soc or min_soh")

    def work(tx: Tx) -> None:
        result = tx.repo.execute(
            sa.update(t.stations).where(t.stations.c.id == station_id).values(**values)
        )
        if result.rowcount != 1:
            raise NotFound(f"unknown station {station_id}")
        audit.record(tx, actor, "station.edit", station_id, reason, values)

    db.write(work)


def set_station_enabled(db: Database, actor: str, station_id: str, enabled: bool, reason: str) -> None:
    reason = audit.check_reason(reason)
    action = "station.enable" if enabled else "station.disable"

    def work(tx: Tx) -> None:
        stations.set_enabled(tx, station_id, enabled)
        audit.record(tx, actor, action, station_id, reason)

    db.write(work)


def reset_station_password(db: Database, actor: str, station_id: str, reason: str) -> str:
    reason = audit.check_reason(reason)

    def work(tx: Tx) -> str:
        password = stations.set_password(tx, station_id)
        audit.record(tx, actor, "station.password", station_id, reason)
        return password

    return db.write(work)


# -- riders ---------------------------------------------------------------------------------------


def set_rider_status(db: Database, actor: str, rider_id: str, status: RiderStatus, reason: str) -> Rider:
    reason = audit.check_reason(reason)
    action = "rider.block" if status is RiderStatus.BLOCKED else "rider.unblock"

    def work(tx: Tx) -> Rider:
        rider = catalog.set_rider_status(tx, rider_id, status)
        audit.record(tx, actor, action, rider_id, reason)
        return rider

    return db.write(work)


# -- packs ----------------------------------------------------------------------------------------


def take_out_of_service(db: Database, actor: str, serial: str, status: PackStatus, reason: str) -> Pack:
    """Quarantine or retire a pack that is in a slot or the depot, with the reason audited."""
    reason = audit.check_reason(reason)
    if status not in (PackStatus.QUARANTINED, PackStatus.RETIRED):
        raise InvalidInput(f"a pack is taken out of service as quarantined or retired, not {status}")

    def work(tx: Tx) -> Pack:
        before = tx.repo.pack(serial)
        pack = catalog.move_out_of_slot(tx, serial, status)
        place = None if before is None else before.place()
        audit.record(tx, actor, f"pack.{status.value}", serial, reason, {"was": place})
        return pack

    return db.write(work)


def create_plan(db: Database, actor: str, plan: Plan) -> Plan:
    def work(tx: Tx) -> Plan:
        created = catalog.add_plan(tx, plan)
        audit.record(tx, actor, "plan.create", plan.id, "new plan", {"kind": plan.kind.value})
        return created

    return db.write(work)


def import_packs(db: Database, actor: str, text: str) -> pack_import.ImportReport:
    """An uploaded CSV of packs, all or none (swapd.services.pack_import), at most
    ``MAX_IMPORT_ROWS`` rows."""
    return pack_import.import_rows(db, actor, pack_import.parse(text, max_rows=MAX_IMPORT_ROWS))


# -- money ----------------------------------------------------------------------------------------


def refund(
    db: Database, actor: str, rider_id: str, amount_minor: int, *, reason: str, key: str
) -> payments.Refund:
    """payments.refund with its audit row in the same transaction (a repeat audits nothing)."""
    reason = audit.check_reason(reason)

    def work(tx: Tx) -> payments.Refund:
        done = payments.refund(tx, rider_id, amount_minor, reason=reason, actor=actor, key=key)
        if not done.repeated:
            detail = {"amount_minor": done.amount_minor, "units": done.units, "key": key}
            audit.record(tx, actor, "rider.refund", rider_id, reason, detail)
        return done

    return db.write(work)


def pay_receivable(
    db: Database, actor: str, rider_id: str, amount_minor: int, payment_ref: str
) -> payments.ReceivablePayment:
    """payments.pay_receivable with its audit row in the same transaction (a repeat audits
    nothing)."""

    def work(tx: Tx) -> payments.ReceivablePayment:
        done = payments.pay_receivable(tx, rider_id, amount_minor, payment_ref, actor=actor)
        if not done.repeated:
            detail = {"amount_minor": done.amount_minor, "payment_ref": payment_ref}
            audit.record(tx, actor, "rider.receivable_payment", rider_id, "payment received", detail)
        return done

    return db.write(work)


def adjust(
    db: Database, actor: str, rider_id: str, units: int, *, reason: str, key: str
) -> payments.Adjustment:
    reason = audit.check_reason(reason)

    def work(tx: Tx) -> payments.Adjustment:
        done = payments.adjust(tx, rider_id, units, reason=reason, actor=actor, key=key)
        if not done.repeated:
            detail = {"units": done.units, "unit": done.unit, "key": key}
            audit.record(tx, actor, "rider.adjust", rider_id, reason, detail)
        return done

    return db.write(work)
