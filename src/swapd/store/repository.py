"""Reading and writing domain objects, inside the caller's transaction.

``lock=True`` takes a row lock on PostgreSQL (SELECT ... FOR UPDATE). On SQLite every write
transaction already holds the database's single write lock (BEGIN IMMEDIATE), so no row lock is
needed there. Services lock in one order: riders, then packs, then accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.packs import Pack, PackModel, PackStatus
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import Rider, RiderStatus
from swapd.domain.stations import Slot, SlotState, Station
from swapd.store import schema as t

Row = sa.Row[tuple[Any, ...]]


class Retry(Exception):
    """A transaction lost a race it can only win by starting over (Database.write retries)."""


_PACK_COLUMNS = [*t.packs.c, t.pack_models.c.nominal_wh]


def _pack(row: Row) -> Pack:
    m = row._mapping
    return Pack(
        serial=m["serial"],
        model_code=m["model_code"],
        nominal_wh=m["nominal_wh"],
        soh_bp=m["soh_bp"],
        soc_bp=m["soc_bp"],
        cycle_count=m["cycle_count"],
        status=PackStatus(m["status"]),
        station_id=m["station_id"],
        slot_no=m["slot_no"],
        rider_id=m["rider_id"],
        reserved_swap_id=m["reserved_swap_id"],
    )


def plan_from_row(row: Row) -> Plan:
    m = row._mapping
    return Plan(
        id=m["id"],
        kind=PlanKind(m["kind"]),
        unit=Unit(m["unit"]),
        currency=m["currency"],
        price_minor=m["price_minor"],
        price_units=m["price_units"],
        granularity_s=m["granularity_s"],
        time_hold_s=m["time_hold_s"],
        fee_minor=m["fee_minor"],
        included_units=m["included_units"],
        carry_over=m["carry_over"],
        prorate_first_cycle=m["prorate_first_cycle"],
    )


class Repository:
    def __init__(self, connection: sa.Connection) -> None:
        self.conn = connection
        self._lockable = connection.dialect.name == "postgresql"

    def _lock(self, query: sa.Select[Any], lock: bool) -> sa.Select[Any]:
        return query.with_for_update() if lock and self._lockable else query

    def execute(self, statement: sa.Executable) -> sa.CursorResult[Any]:
        return self.conn.execute(statement)

    # -- pack models, packs ----------------------------------------------------------------

    def pack_model(self, code: str) -> PackModel | None:
        row = self.conn.execute(sa.select(t.pack_models).where(t.pack_models.c.code == code)).first()
        return None if row is None else PackModel(row.code, row.nominal_wh)

    def pack_models(self) -> list[PackModel]:
        rows = self.conn.execute(sa.select(t.pack_models).order_by(t.pack_models.c.code))
        return [PackModel(r.code, r.nominal_wh) for r in rows]

    def _packs_query(self) -> sa.Select[Any]:
        return sa.select(*_PACK_COLUMNS).join(
            t.pack_models, t.pack_models.c.code == t.packs.c.model_code
        )

    def pack(self, serial: str, *, lock: bool = False) -> Pack | None:
        query = self._packs_query().where(t.packs.c.serial == serial)
        if lock and self._lockable:
            query = query.with_for_update(of=t.packs)
        row = self.conn.execute(query).first()
        return None if row is None else _pack(row)

    def packs(self, serials: Sequence[str], *, lock: bool = False) -> dict[str, Pack]:
        """Packs by serial, locked in serial order so that two transactions never cross."""
        if not serials:
            return {}
        query = (
            self._packs_query()
            .where(t.packs.c.serial.in_(sorted(set(serials))))
            .order_by(t.packs.c.serial)
        )
        if lock and self._lockable:
            query = query.with_for_update(of=t.packs)
        return {p.serial: p for p in map(_pack, self.conn.execute(query))}

    def packs_at(self, station_id: str) -> list[Pack]:
        query = self._packs_query().where(t.packs.c.station_id == station_id)
        return [_pack(r) for r in self.conn.execute(query.order_by(t.packs.c.slot_no))]

    def packs_of_rider(self, rider_id: str) -> list[Pack]:
        query = self._packs_query().where(t.packs.c.rider_id == rider_id)
        return [_pack(r) for r in self.conn.execute(query.order_by(t.packs.c.serial))]

    def all_packs(self) -> list[Pack]:
        return [_pack(r) for r in self.conn.execute(self._packs_query().order_by(t.packs.c.serial))]

    def update_pack(self, serial: str, now: datetime, **values: Any) -> None:
        self.conn.execute(
            sa.update(t.packs).where(t.packs.c.serial == serial).values(updated_at=now, **values)
        )

    def reserve_pack(self, serial: str, swap_id: int, now: datetime) -> bool:
        """Reserve a charged pack for a swap offer; False if another swap took it first."""
        result = self.conn.execute(
            sa.update(t.packs)
            .where(
                t.packs.c.serial == serial,
                t.packs.c.status == PackStatus.IN_SLOT.value,
                t.packs.c.reserved_swap_id.is_(None),
            )
            .values(reserved_swap_id=swap_id, updated_at=now)
        )
        return result.rowcount == 1

    # -- stations and slots ----------------------------------------------------------------

    def station(self, station_id: str, *, lock: bool = False) -> Station | None:
        query = self._lock(sa.select(t.stations).where(t.stations.c.id == station_id), lock)
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return Station(row.id, row.slot_count, row.enabled, row.charged_soc_bp, row.min_soh_bp)

    def stations(self) -> list[Station]:
        rows = self.conn.execute(sa.select(t.stations).order_by(t.stations.c.id))
        return [Station(r.id, r.slot_count, r.enabled, r.charged_soc_bp, r.min_soh_bp) for r in rows]

    def slots(self, station_id: str) -> list[Slot]:
        rows = self.conn.execute(
            sa.select(t.slots).where(t.slots.c.station_id == station_id).order_by(t.slots.c.slot_no)
        )
        return [Slot(r.station_id, r.slot_no, SlotState(r.state), r.pack_serial) for r in rows]

    def slot(self, station_id: str, slot_no: int) -> Slot | None:
        row = self.conn.execute(
            sa.select(t.slots).where(t.slots.c.station_id == station_id, t.slots.c.slot_no == slot_no)
        ).first()
        return (
            None
            if row is None
            else Slot(row.station_id, row.slot_no, SlotState(row.state), row.pack_serial)
        )

    def set_slot(self, station_id: str, slot_no: int, pack_serial: str | None) -> None:
        """Empty a slot, or put a pack into it. A pack only goes into a slot that is empty (or
        already holds it): the condition sits in the UPDATE itself because two transactions can
        both have read the slot as empty; on PostgreSQL the second one re-checks the condition
        against the first one's committed row, matches nothing, and retries from the start."""
        state = SlotState.AVAILABLE if pack_serial is None else SlotState.OCCUPIED
        query = sa.update(t.slots).where(
            t.slots.c.station_id == station_id, t.slots.c.slot_no == slot_no
        )
        if pack_serial is not None:
            query = query.where(
                sa.or_(t.slots.c.pack_serial.is_(None), t.slots.c.pack_serial == pack_serial)
            )
        result = self.conn.execute(query.values(pack_serial=pack_serial, state=state.value))
        if pack_serial is not None and result.rowcount != 1:
            raise Retry(f"slot {slot_no} of station {station_id} was taken meanwhile")

    # -- plans, riders, tokens -------------------------------------------------------------

    def plan(self, plan_id: str) -> Plan | None:
        row = self.conn.execute(sa.select(t.plans).where(t.plans.c.id == plan_id)).first()
        return None if row is None else plan_from_row(row)

    def plans(self) -> list[Plan]:
        return [plan_from_row(r) for r in self.conn.execute(sa.select(t.plans).order_by(t.plans.c.id))]

    def rider(self, rider_id: str, *, lock: bool = False) -> Rider | None:
        query = self._lock(sa.select(t.riders).where(t.riders.c.id == rider_id), lock)
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return Rider(row.id, row.plan_id, RiderStatus(row.status), row.vehicle_packs)

    def lock_riders(self, rider_ids: Sequence[str]) -> dict[str, Rider]:
        """Lock riders in id order (the first step of every write that touches a rider)."""
        query = self._lock(
            sa.select(t.riders).where(t.riders.c.id.in_(sorted(set(rider_ids)))).order_by(t.riders.c.id),
            True,
        )
        return {
            r.id: Rider(r.id, r.plan_id, RiderStatus(r.status), r.vehicle_packs)
            for r in self.conn.execute(query)
        }

    def riders(self) -> list[Rider]:
        rows = self.conn.execute(sa.select(t.riders).order_by(t.riders.c.id))
        return [Rider(r.id, r.plan_id, RiderStatus(r.status), r.vehicle_packs) for r in rows]

    def token_owner(self, token_type: str, value: str) -> Row | None:
        return self.conn.execute(
            sa.select(t.id_tokens).where(t.id_tokens.c.type == token_type, t.id_tokens.c.value == value)
        ).first()

    # -- possessions -----------------------------------------------------------------------

    def open_possession(self, serial: str) -> Row | None:
        return self.conn.execute(
            sa.select(t.possessions).where(
                t.possessions.c.pack_serial == serial, t.possessions.c.at_in.is_(None)
            )
        ).first()

    def open_possessions_of(self, rider_id: str) -> list[Row]:
        return list(
            self.conn.execute(
                sa.select(t.possessions)
                .where(t.possessions.c.rider_id == rider_id, t.possessions.c.at_in.is_(None))
                .order_by(t.possessions.c.id)
            )
        )

    # -- swaps -----------------------------------------------------------------------------

    def swap(self, swap_id: int) -> Row | None:
        return self.conn.execute(sa.select(t.swaps).where(t.swaps.c.id == swap_id)).first()

    def swap_by_request(self, station_id: str, request_id: str) -> Row | None:
        return self.conn.execute(
            sa.select(t.swaps).where(
                t.swaps.c.station_id == station_id, t.swaps.c.request_id == request_id
            )
        ).first()

    def offers(self, swap_id: int) -> list[Row]:
        return list(
            self.conn.execute(
                sa.select(t.swap_offers)
                .where(t.swap_offers.c.swap_id == swap_id)
                .order_by(t.swap_offers.c.slot_no)
            )
        )

    def station_event(self, station_id: str, request_id: str, event_type: str) -> Row | None:
        return self.conn.execute(
            sa.select(t.station_events).where(
                t.station_events.c.station_id == station_id,
                t.station_events.c.request_id == request_id,
                t.station_events.c.event_type == event_type,
            )
        ).first()

    def alert(
        self,
        kind: str,
        detail: str,
        now: datetime,
        *,
        station_id: str | None = None,
        pack_serial: str | None = None,
        rider_id: str | None = None,
    ) -> None:
        self.conn.execute(
            sa.insert(t.alerts).values(
                kind=kind,
                detail=detail[:500],
                station_id=station_id,
                pack_serial=pack_serial,
                rider_id=rider_id,
                created_at=now,
            )
        )
