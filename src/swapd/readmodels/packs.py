"""Pack reads: the fleet and its models, a pack's stays with riders, the packs a rider holds, the
packs export, and the one JSON shape of a pack that the CLI and the API both give."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.domain.packs import Pack, PackModel
from swapd.readmodels.paging import clamp_limit, stream
from swapd.store import schema as t
from swapd.store.database import Database, Tx

# -- the pack view --------------------------------------------------------------------------------


def pack_view(pack: Pack) -> dict[str, Any]:
    """A pack as ``swapd pack ... --json`` prints it and ``/api/v1/ops/packs`` returns it."""
    return {
        "serial": pack.serial,
        "model": pack.model_code,
        "nominal_wh": pack.nominal_wh,
        "status": pack.status.value,
        "place": pack.place(),  # for people: "slot 3 of station ST1", "with rider R1", ...
        "station_id": pack.station_id,
        "slot_no": pack.slot_no,
        "rider_id": pack.rider_id,
        "reserved_swap_id": pack.reserved_swap_id,
        "soc_bp": pack.soc_bp,
        "soh_bp": pack.soh_bp,
        "deliverable_wh": pack.deliverable_wh,
        "cycle_count": pack.cycle_count,
    }


# -- the fleet ------------------------------------------------------------------------------------


def all_packs(db: Database) -> list[Pack]:
    return db.read(lambda tx: tx.repo.all_packs())


@dataclass(frozen=True, slots=True)
class PackModelLine:
    model: PackModel
    packs: int  # packs of this model in the fleet, retired ones included


def pack_models(db: Database) -> list[PackModelLine]:
    def work(tx: Tx) -> list[PackModelLine]:
        counts = dict(
            tx.repo.execute(
                sa.select(t.packs.c.model_code, sa.func.count()).group_by(t.packs.c.model_code)
            )
            .tuples()
            .all()
        )
        return [PackModelLine(m, int(counts.get(m.code, 0))) for m in tx.repo.pack_models()]

    return db.read(work)


def packs(
    db: Database,
    *,
    status: str | None = None,
    station_id: str | None = None,
    model_code: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[Pack]:
    """Packs in serial order; page with ``after`` (the last serial seen)."""

    def work(tx: Tx) -> list[Pack]:
        query = sa.select(t.packs.c.serial).order_by(t.packs.c.serial).limit(clamp_limit(limit))
        if status is not None:
            query = query.where(t.packs.c.status == status)
        if station_id is not None:
            query = query.where(t.packs.c.station_id == station_id)
        if model_code is not None:
            query = query.where(t.packs.c.model_code == model_code)
        if after is not None:
            query = query.where(t.packs.c.serial > after)
        serials = [row.serial for row in tx.repo.execute(query)]
        found = tx.repo.packs(serials)
        return [found[s] for s in serials]

    return db.read(work)


def pack(db: Database, serial: str) -> Pack:
    found = db.read(lambda tx: tx.repo.pack(serial))
    if found is None:
        raise NotFound(f"unknown pack {serial}")
    return found


# -- stays with riders ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Possession:
    """One stay of a pack with a rider: out of a station, and back into one (or not yet)."""

    rider_id: str
    swap_out_id: int | None
    station_out: str
    slot_out: int
    at_out: datetime
    soc_out_bp: int
    soh_out_bp: int
    swap_in_id: int | None
    station_in: str | None
    slot_in: int | None
    at_in: datetime | None
    soc_in_bp: int | None
    soh_in_bp: int | None
    usage_units: int | None
    anomaly: str | None
    pack_serial: str = ""
    hold_units: int = 0


def possession_of(row: sa.Row[Any]) -> Possession:
    return Possession(
        row.rider_id,
        row.swap_out_id,
        row.station_out,
        row.slot_out,
        row.at_out,
        row.soc_out_bp,
        row.soh_out_bp,
        row.swap_in_id,
        row.station_in,
        row.slot_in,
        row.at_in,
        row.soc_in_bp,
        row.soh_in_bp,
        row.usage_units,
        row.anomaly,
        row.pack_serial,
        int(row.hold_units),
    )


@dataclass(frozen=True, slots=True)
class PackHistory:
    pack: Pack
    possessions: tuple[Possession, ...]  # oldest first


def pack_history(db: Database, serial: str, *, limit: int = 100) -> PackHistory:
    """Where the pack is and its latest ``limit`` stays with riders."""

    def work(tx: Tx) -> PackHistory:
        found = tx.repo.pack(serial)
        if found is None:
            raise NotFound(f"unknown pack {serial}")
        rows = tx.repo.execute(
            sa.select(t.possessions)
            .where(t.possessions.c.pack_serial == serial)
            .order_by(t.possessions.c.id.desc())
            .limit(clamp_limit(limit))
        ).all()
        return PackHistory(found, tuple(possession_of(r) for r in reversed(rows)))

    return db.read(work)


@dataclass(frozen=True, slots=True)
class HeldPack:
    serial: str
    model_code: str
    nominal_wh: int
    since: datetime
    station_id: str
    station_name: str | None
    slot_no: int
    soc_out_bp: int
    soh_out_bp: int
    hold_units: int
    unit: str


def packs_held(db: Database, rider_id: str) -> list[HeldPack]:
    """The packs the rider has out now; scoped by the authenticated rider id."""

    def work(tx: Tx) -> list[HeldPack]:
        p = t.possessions.c
        rows = tx.repo.execute(
            sa.select(
                t.possessions,
                t.packs.c.model_code,
                t.pack_models.c.nominal_wh,
                t.stations.c.name,
                t.plans.c.unit,
            )
            .join(t.packs, t.packs.c.serial == p.pack_serial)
            .join(t.pack_models, t.pack_models.c.code == t.packs.c.model_code)
            .join(t.stations, t.stations.c.id == p.station_out)
            .join(t.plans, t.plans.c.id == p.plan_id)
            .where(p.rider_id == rider_id, p.at_in.is_(None))
            .order_by(p.at_out, p.id)
        ).all()
        return [
            HeldPack(
                serial=r.pack_serial,
                model_code=r.model_code,
                nominal_wh=r.nominal_wh,
                since=r.at_out,
                station_id=r.station_out,
                station_name=r.name,
                slot_no=r.slot_out,
                soc_out_bp=r.soc_out_bp,
                soh_out_bp=r.soh_out_bp,
                hold_units=r.hold_units,
                unit=r.unit,
            )
            for r in rows
        ]

    return db.read(work)


# -- export ---------------------------------------------------------------------------------------

PACK_COLUMNS = (
    "serial",
    "model",
    "nominal_wh",
    "status",
    "station_id",
    "slot_no",
    "rider_id",
    "soc_bp",
    "soh_bp",
    "cycle_count",
    "updated_at",
)


def export_packs(db: Database) -> Iterator[tuple[object, ...]]:
    k = t.packs.c
    query = (
        sa.select(
            k.serial,
            k.model_code,
            t.pack_models.c.nominal_wh,
            k.status,
            k.station_id,
            k.slot_no,
            k.rider_id,
            k.soc_bp,
            k.soh_bp,
            k.cycle_count,
            k.updated_at,
        )
        .join(t.pack_models, t.pack_models.c.code == k.model_code)
        .order_by(k.serial)
    )
    for r in stream(db, query):
        yield (
            r.serial,
            r.model_code,
            r.nominal_wh,
            r.status,
            r.station_id or "",
            "" if r.slot_no is None else r.slot_no,
            r.rider_id or "",
            r.soc_bp,
            r.soh_bp,
            r.cycle_count,
            r.updated_at.isoformat(),
        )


# -- the fleet at a glance ------------------------------------------------------------------------

SOH_BIN_BP = 500  # the SoH distribution in 5 % steps


@dataclass(frozen=True, slots=True)
class FleetSummary:
    by_status: dict[str, int]
    soh_bins: tuple[tuple[int, int], ...]  # (lower bound in bp, packs), ascending

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def fleet_summary(db: Database) -> FleetSummary:
    """How many packs are in each status, and how their SoH is spread (retired packs left out)."""

    def work(tx: Tx) -> FleetSummary:
        p = t.packs.c
        statuses = tx.repo.execute(sa.select(p.status, sa.func.count()).group_by(p.status)).all()
        low = (p.soh_bp / SOH_BIN_BP).cast(sa.Integer) * SOH_BIN_BP
        bins = tx.repo.execute(
            sa.select(low.label("low"), sa.func.count())
            .where(p.status != "retired")
            .group_by("low")
            .order_by("low")
        ).all()
        return FleetSummary(
            {str(status): int(count) for status, count in statuses},
            tuple((int(bound), int(count)) for bound, count in bins),
        )

    return db.read(work)
