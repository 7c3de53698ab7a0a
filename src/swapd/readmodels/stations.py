"""Station reads: the operator's station lines (fill, charge, place, boot info), one station's slots,
and the stations near a rider."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.decision import is_charged
from swapd.domain.errors import NotFound
from swapd.domain.packs import Pack
from swapd.domain.stations import Slot, SlotState, Station
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.repository import policy_from_row

EARTH_RADIUS_M = 6_371_008  # IUGG mean radius
MICRODEG = 1_000_000
METRES_PER_DEG_LAT = 111_195  # 2 * pi * EARTH_RADIUS_M / 360, rounded

# -- slots and packs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StationView:
    station: Station
    slots: tuple[Slot, ...]
    packs: dict[str, Pack]


def station_view(db: Database, station_id: str) -> StationView:
    def work(tx: Tx) -> StationView:
        station = tx.repo.station(station_id)
        if station is None:
            raise NotFound(f"unknown station {station_id}")
        packs = {p.serial: p for p in tx.repo.packs_at(station_id)}
        return StationView(station, tuple(tx.repo.slots(station_id)), packs)

    return db.read(work)


@dataclass(frozen=True, slots=True)
class SlotLine:
    slot_no: int
    state: SlotState
    pack_serial: str | None
    soc_bp: int | None
    soh_bp: int | None
    charged: bool
    reserved_swap_id: int | None


@dataclass(frozen=True, slots=True)
class SlotView:
    station: Station
    last_seen_at: datetime | None
    slots: tuple[SlotLine, ...]


def slot_view(db: Database, station_id: str) -> SlotView:
    view = station_view(db, station_id)
    last_seen = db.read(
        lambda tx: tx.repo.execute(
            sa.select(t.stations.c.last_seen_at).where(t.stations.c.id == station_id)
        ).scalar()
    )
    out = db.read(lambda tx: tx.repo.slots_out_of_service(station_id))
    lines = []
    for slot in view.slots:
        pack = view.packs.get(slot.pack_serial) if slot.pack_serial else None
        in_service = slot.slot_no not in out
        lines.append(
            SlotLine(
                slot_no=slot.slot_no,
                state=slot.state if in_service else SlotState.UNAVAILABLE,
                pack_serial=slot.pack_serial,
                soc_bp=None if pack is None else pack.soc_bp,
                soh_bp=None if pack is None else pack.soh_bp,
                charged=in_service and pack is not None and is_charged(pack, view.station),
                reserved_swap_id=None if pack is None else pack.reserved_swap_id,
            )
        )
    return SlotView(view.station, last_seen, tuple(lines))


# -- station lines --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StationLine:
    station: Station
    packs: int  # packs in its slots
    charged: int  # of those, ready to hand out (charged, healthy, not reserved)
    reserved: int  # offered to a rider right now
    unavailable_slots: int
    password_set: bool
    vendor: str | None
    model: str | None
    firmware: str | None
    booted_at: datetime | None
    last_seen_at: datetime | None


def _station_line(tx: Tx, row: sa.Row[tuple[object, ...]]) -> StationLine:
    m = row._mapping
    station = Station(
        m["id"],
        m["slot_count"],
        m["enabled"],
        m["charged_soc_bp"],
        m["min_soh_bp"],
        m["right_size_floor_bp"],
        policy_from_row(row),
    )
    packs = tx.repo.packs_at(station.id)
    # Out of service: reported so by the station, or taken out by the operator; a pack in such
    # a slot is not ready to hand out, whatever its charge.
    out = tx.repo.slots_out_of_service(station.id)
    return StationLine(
        station=station,
        packs=len(packs),
        charged=sum(1 for p in packs if is_charged(p, station) and p.slot_no not in out),
        reserved=sum(1 for p in packs if p.reserved_swap_id is not None),
        unavailable_slots=len(out),
        password_set=m["password_hash"] is not None,
        vendor=m["vendor"],
        model=m["model"],
        firmware=m["firmware"],
        booted_at=m["booted_at"],
        last_seen_at=m["last_seen_at"],
    )


def station_lines(db: Database) -> list[StationLine]:
    def work(tx: Tx) -> list[StationLine]:
        rows = tx.repo.execute(sa.select(t.stations).order_by(t.stations.c.id)).all()
        return [_station_line(tx, row) for row in rows]

    return db.read(work)


def station_line(db: Database, station_id: str) -> StationLine:
    def work(tx: Tx) -> StationLine:
        row = tx.repo.execute(sa.select(t.stations).where(t.stations.c.id == station_id)).first()
        if row is None:
            raise NotFound(f"unknown station {station_id}")
        return _station_line(tx, row)

    return db.read(work)


@dataclass(frozen=True, slots=True)
class StationInfo:
    line: StationLine
    name: str | None
    lat_microdeg: int | None
    lon_microdeg: int | None


def _places(tx: Tx, station_id: str | None = None) -> dict[str, tuple[Any, Any, Any]]:
    s = t.stations.c
    query = sa.select(s.id, s.name, s.lat_microdeg, s.lon_microdeg)
    if station_id is not None:
        query = query.where(s.id == station_id)
    return {r.id: (r.name, r.lat_microdeg, r.lon_microdeg) for r in tx.repo.execute(query)}


_NOWHERE = (None, None, None)


def station_line_view(info: StationInfo) -> dict[str, Any]:
    """A station's line as ``swapd station list --json`` prints it and ``/api/v1/ops/stations``
    returns it; the API adds ``connected``, which only the server process serving it knows."""
    line, station = info.line, info.line.station
    return {
        "id": station.id,
        "name": info.name,
        "lat_microdeg": info.lat_microdeg,
        "lon_microdeg": info.lon_microdeg,
        "slot_count": station.slot_count,
        "enabled": station.enabled,
        "charged_soc_bp": station.charged_soc_bp,
        "min_soh_bp": station.min_soh_bp,
        "packs": line.packs,
        "charged_packs": line.charged,
        "reserved_packs": line.reserved,
        "unavailable_slots": line.unavailable_slots,
        "password_set": line.password_set,
        "vendor": line.vendor,
        "model": line.model,
        "firmware": line.firmware,
        "booted_at": None if line.booted_at is None else line.booted_at.isoformat(),
        "last_seen_at": None if line.last_seen_at is None else line.last_seen_at.isoformat(),
    }


def stations(db: Database) -> list[StationInfo]:
    lines = station_lines(db)
    # A second read: a station added in between has no line and is skipped; one deleted in
    # between (never done today) would show without a place rather than fail.
    places = db.read(_places)
    return [StationInfo(line, *places.get(line.station.id, _NOWHERE)) for line in lines]


def station(db: Database, station_id: str) -> StationInfo:
    line = station_line(db, station_id)
    places = db.read(lambda tx: _places(tx, station_id))
    return StationInfo(line, *places.get(station_id, _NOWHERE))


# -- nearby ---------------------------------------------------------------------------------------


def distance_m(lat1_microdeg: int, lon1_microdeg: int, lat2_microdeg: int, lon2_microdeg: int) -> int:
    """Great-circle distance (haversine on a sphere of the mean Earth radius), rounded to metres."""
    lat1, lon1, lat2, lon2 = (
        math.radians(v / MICRODEG) for v in (lat1_microdeg, lon1_microdeg, lat2_microdeg, lon2_microdeg)
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return round(2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))))


@dataclass(frozen=True, slots=True)
class NearbyStation:
    id: str
    name: str | None
    lat_microdeg: int
    lon_microdeg: int
    distance_m: int
    charged_packs: int
    empty_slots: int


def nearby(
    db: Database, lat_microdeg: int, lon_microdeg: int, radius_m: int, *, limit: int
) -> list[NearbyStation]:
    """Enabled stations within ``radius_m``, nearest first (ties by id)."""
    # A latitude band cut in SQL keeps the scan small; longitude is left to the exact distance
    # (its degrees shrink towards the poles and wrap at the antimeridian).
    band_microdeg = radius_m * MICRODEG // METRES_PER_DEG_LAT + 1

    def work(tx: Tx) -> list[NearbyStation]:
        s = t.stations.c
        rows = tx.repo.execute(
            sa.select(
                s.id,
                s.name,
                s.lat_microdeg,
                s.lon_microdeg,
                s.slot_count,
                s.charged_soc_bp,
                s.min_soh_bp,
            )
            .where(
                s.enabled.is_(True),
                s.lat_microdeg.is_not(None),
                s.lon_microdeg.is_not(None),
                s.lat_microdeg.between(lat_microdeg - band_microdeg, lat_microdeg + band_microdeg),
            )
            .order_by(s.id)
        ).all()
        near = sorted(
            (
                (distance_m(lat_microdeg, lon_microdeg, r.lat_microdeg, r.lon_microdeg), r.id, r)
                for r in rows
            ),
            key=lambda item: (item[0], item[1]),
        )
        found: list[NearbyStation] = []
        for distance, station_id, row in near:
            if distance > radius_m or len(found) >= limit:
                break
            station = Station(station_id, row.slot_count, True, row.charged_soc_bp, row.min_soh_bp)
            packs = tx.repo.packs_at(station_id)
            out = tx.repo.slots_out_of_service(station_id)
            empty = tx.repo.execute(
                sa.select(sa.func.count())
                .select_from(t.slots)
                .where(
                    t.slots.c.station_id == station_id,
                    t.slots.c.state == SlotState.AVAILABLE.value,
                )
            ).scalar_one()
            found.append(
                NearbyStation(
                    id=station_id,
                    name=row.name,
                    lat_microdeg=row.lat_microdeg,
                    lon_microdeg=row.lon_microdeg,
                    distance_m=distance,
                    charged_packs=sum(
                        1 for p in packs if is_charged(p, station) and p.slot_no not in out
                    ),
                    empty_slots=int(empty),
                )
            )
        return found

    return db.read(work)


@dataclass(frozen=True, slots=True)
class FirmwareStatus:
    status: str
    at: datetime


def firmware_status(db: Database, station_id: str) -> FirmwareStatus | None:
    """The station's last FirmwareStatusNotification, if it sent one."""
    c = t.stations.c
    row = db.read(
        lambda tx: tx.repo.execute(
            sa.select(c.firmware_status, c.firmware_status_at).where(c.id == station_id)
        ).first()
    )
    if row is None or row.firmware_status is None:
        return None
    return FirmwareStatus(row.firmware_status, row.firmware_status_at)
