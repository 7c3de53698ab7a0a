"""Reading and writing domain objects, inside the caller's transaction.

``lock=True`` takes a row lock on PostgreSQL (SELECT ... FOR UPDATE). On SQLite every write
transaction already holds the database's single write lock (BEGIN IMMEDIATE), so no row lock is
needed there. Services lock in one order: riders, then packs, then accounts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import Retry
from swapd.domain.event_reads import ReturnAtStation, RiderAtStation
from swapd.domain.lifecycle import (
    Offer,
    OfferState,
    Possession,
    PossessionClosed,
    PossessionOpened,
    Swap,
    SwapState,
)
from swapd.domain.pack_choice import ChoiceRecord, PackPolicy
from swapd.domain.packs import Pack, PackModel, PackMoved, PackStatus
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, Rider, RiderStatus, TokenOwner
from swapd.domain.right_sizing import Consent
from swapd.domain.stations import Slot, SlotState, Station
from swapd.store import pack_moves, swap_rows
from swapd.store import schema as t
from swapd.store.offline_records import OfflineRecords
from swapd.store.prepared import Prepared, PreparedResult, run_together, update_statement

# A result row: ``sqlalchemy.Row`` or, for the prepared statements of the swap path,
# ``PreparedRow``; both give columns as attributes (``row.id``) and as ``row._mapping``.
Row = Any


# Only the columns the domain objects are made of: a timestamp read costs a parse, and the swap
# path reads a station three times and a pack four (profiled on the writer's one thread).
_PACK_COLUMNS = [
    *(
        t.packs.c[name]
        for name in (
            "serial",
            "model_code",
            "soh_bp",
            "soc_bp",
            "cycle_count",
            "status",
            "station_id",
            "slot_no",
            "rider_id",
            "reserved_swap_id",
        )
    ),
    t.pack_models.c.nominal_wh,
]
_STATION_COLUMNS = swap_rows.STATION_COLUMNS
_RIDER_COLUMNS = [
    t.riders.c[name] for name in ("id", "plan_id", "status", "vehicle_packs", "right_size_consent")
]

# The statements of the swap path, built once. SQLAlchemy then finds each one's compiled SQL by a
# cache key memoised on the statement object; building the statement anew on every call cost
# more CPU than executing it (profiled: ~30 % of a swap in construction and cache-key hashing).
_B = sa.bindparam
_PACKS = sa.select(*_PACK_COLUMNS).join(t.pack_models, t.pack_models.c.code == t.packs.c.model_code)
_PACK_Q = _PACKS.where(t.packs.c.serial == _B("serial"))
_PACK = Prepared(_PACK_Q)
_PACK_LOCKED = Prepared(_PACK_Q.with_for_update(of=t.packs))
_PACKS_BY_SERIAL = _PACKS.where(t.packs.c.serial.in_(_B("serials", expanding=True))).order_by(
    t.packs.c.serial
)
_PACKS_BY_SERIAL_LOCKED = _PACKS_BY_SERIAL.with_for_update(of=t.packs)
# A station's stock also reads when each pack was put in (the fleet policy's "rested" rule).
_PACKS_AT = Prepared(
    sa.select(*_PACK_COLUMNS, t.packs.c.placed_at)
    .join(t.pack_models, t.pack_models.c.code == t.packs.c.model_code)
    .where(t.packs.c.station_id == _B("station_id"))
    .order_by(t.packs.c.slot_no)
)
_SLOTS_OUT_OF_SERVICE = Prepared(
    sa.select(t.slots.c.slot_no).where(
        t.slots.c.station_id == _B("station_id"),
        sa.or_(t.slots.c.operative.is_(False), t.slots.c.state == SlotState.UNAVAILABLE.value),
    )
)
_PACKS_OF_RIDER = Prepared(_PACKS.where(t.packs.c.rider_id == _B("rider_id")).order_by(t.packs.c.serial))
_RESERVE_PACK = Prepared(
    sa.update(t.packs)
    .where(
        t.packs.c.serial == _B("p_serial"),
        t.packs.c.status == PackStatus.IN_SLOT.value,
        t.packs.c.reserved_swap_id.is_(None),
    )
    .values(reserved_swap_id=_B("swap_id"), updated_at=_B("now"))
)
_STATION_Q = sa.select(*_STATION_COLUMNS).where(t.stations.c.id == _B("station_id"))
_STATION = Prepared(_STATION_Q)
_STATION_LOCKED = Prepared(_STATION_Q.with_for_update())
_SLOT = Prepared(
    sa.select(t.slots).where(
        t.slots.c.station_id == _B("station_id"), t.slots.c.slot_no == _B("slot_no")
    )
)
_EMPTY_SLOT = Prepared(pack_moves.empty_slot("p_station", "p_slot"))
_FILL_SLOT = Prepared(pack_moves.fill_slot("p_station", "p_slot"))
_PLAN = Prepared(sa.select(t.plans).where(t.plans.c.id == _B("plan_id")))
_RIDER_Q = sa.select(*_RIDER_COLUMNS).where(t.riders.c.id == _B("rider_id"))
_RIDER = Prepared(_RIDER_Q)
_RIDER_LOCKED = Prepared(_RIDER_Q.with_for_update())
_RIDERS = (
    sa.select(*_RIDER_COLUMNS)
    .where(t.riders.c.id.in_(_B("rider_ids", expanding=True)))
    .order_by(t.riders.c.id)
)
_RIDERS_LOCKED = _RIDERS.with_for_update()
_TOKEN = Prepared(
    sa.select(t.id_tokens).where(
        t.id_tokens.c.type == _B("token_type"), t.id_tokens.c.value == _B("value")
    )
)
_ALERT = Prepared(sa.insert(t.alerts))
_LIST_CHANGE = Prepared(sa.insert(t.local_list_changes))
_PLACED_AT = Prepared(sa.select(t.packs.c.placed_at).where(t.packs.c.serial == _B("serial")))


def _slot(row: Any) -> Slot:
    return Slot(row.station_id, row.slot_no, SlotState(row.state), row.pack_serial)


def _pack(row: Row, placed_at: datetime | None = None) -> Pack:
    return Pack(
        serial=row.serial,
        model_code=row.model_code,
        nominal_wh=row.nominal_wh,
        soh_bp=row.soh_bp,
        soc_bp=row.soc_bp,
        cycle_count=row.cycle_count,
        status=PackStatus(row.status),
        station_id=row.station_id,
        slot_no=row.slot_no,
        rider_id=row.rider_id,
        reserved_swap_id=row.reserved_swap_id,
        placed_at=placed_at,
    )


def _station(row: Row) -> Station:
    return Station(
        row.id,
        row.slot_count,
        bool(row.enabled),
        row.charged_soc_bp,
        row.min_soh_bp,
        row.right_size_floor_bp,
        policy_from_row(row),
    )


def policy_from_row(row: Row) -> PackPolicy:
    return PackPolicy(
        row.pick_soc_band_bp,
        row.pick_rest_weight,
        row.pick_cycles_weight,
        row.pick_soh_weight,
        row.pick_retirement_margin_bp,
    )


def _rider(row: Row) -> Rider:
    return Rider(
        row.id,
        row.plan_id,
        RiderStatus(row.status),
        row.vehicle_packs,
        Consent(row.right_size_consent),
    )


def plan_from_row(row: Row) -> Plan:
    return Plan(
        id=row.id,
        kind=PlanKind(row.kind),
        unit=Unit(row.unit),
        currency=row.currency,
        price_minor=row.price_minor,
        price_units=row.price_units,
        granularity_s=row.granularity_s,
        time_hold_s=row.time_hold_s,
        fee_minor=row.fee_minor,
        included_units=row.included_units,
        carry_over=row.carry_over,
        prorate_first_cycle=row.prorate_first_cycle,
        listed=bool(row.listed),  # SQLite's driver gives 0 or 1 on the prepared path
        offline_swaps_max=row.offline_swaps_max,
    )


class Repository(OfflineRecords):
    def __init__(self, connection: sa.Connection, plans: Mapping[str, Plan] | None = None) -> None:
        self.conn = connection
        self._lockable = connection.dialect.name == "postgresql"
        # Plans are written once and never changed or deleted, so a plan read by a transaction
        # that committed stays true: ``plans`` holds those (the Database's), and ``plans_read``
        # what this transaction read, for the Database to keep once it has committed.
        self._plans = plans
        self.plans_read: dict[str, Plan] = {}

    @property
    def locks_rows(self) -> bool:
        """Whether ``lock=True`` takes row locks (PostgreSQL). On SQLite a write transaction
        holds the whole database, so what it read cannot change under it."""
        return self._lockable

    def _lock(self, query: sa.Select[Any], lock: bool) -> sa.Select[Any]:
        return query.with_for_update() if lock and self._lockable else query

    def execute(
        self, statement: sa.Executable, parameters: dict[str, Any] | None = None
    ) -> sa.CursorResult[Any]:
        return self.conn.execute(statement, parameters)

    def run(self, statement: Prepared, parameters: dict[str, Any] | None = None) -> PreparedResult:
        """A statement of the swap path, on the driver's cursor (see ``store.prepared``)."""
        return statement.run(self.conn, parameters)

    def defer(
        self,
        statement: Prepared,
        parameters: dict[str, Any] | None = None,
        check: Callable[[PreparedResult], None] | None = None,
    ) -> None:
        """A write of the swap path whose result nobody reads: on PostgreSQL it goes with the
        transaction's next round trip (``Prepared.defer``), and ``check`` then sees it."""
        statement.defer(self.conn, parameters, check)

    def update(self, table: sa.Table, key: str, key_value: Any, values: dict[str, Any]) -> None:
        """``UPDATE table SET values WHERE key = key_value``, one prepared statement per set of
        columns; deferred (``defer``): nobody reads what it returns."""
        statement = update_statement(table, key, tuple(sorted(values)))
        self.defer(statement, {f"p_{key}": key_value, **{f"v_{k}": v for k, v in values.items()}})

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
        query = _PACK_LOCKED if lock and self._lockable else _PACK
        row = self.run(query, {"serial": serial}).first()
        return None if row is None else _pack(row)

    def packs(self, serials: Sequence[str], *, lock: bool = False) -> dict[str, Pack]:
        """Packs by serial, locked in serial order so that two transactions never cross."""
        if not serials:
            return {}
        if len(set(serials)) == 1:  # the usual swap: one pack, a prepared statement
            pack = self.pack(serials[0], lock=lock)
            return {} if pack is None else {pack.serial: pack}
        query = _PACKS_BY_SERIAL_LOCKED if lock and self._lockable else _PACKS_BY_SERIAL
        rows = self.conn.execute(query, {"serials": sorted(set(serials))})
        return {p.serial: p for p in map(_pack, rows)}

    def packs_at(self, station_id: str) -> list[Pack]:
        rows = self.run(_PACKS_AT, {"station_id": station_id})
        return [_pack(r, r.placed_at) for r in rows]

    def slots_out_of_service(self, station_id: str) -> frozenset[int]:
        """Slots the operator took out of use, or the station reports out of use."""
        return frozenset(r.slot_no for r in self.run(_SLOTS_OUT_OF_SERVICE, {"station_id": station_id}))

    def packs_of_rider(self, rider_id: str) -> list[Pack]:
        return [_pack(r) for r in self.run(_PACKS_OF_RIDER, {"rider_id": rider_id})]

    def all_packs(self) -> list[Pack]:
        return [_pack(r) for r in self.conn.execute(self._packs_query().order_by(t.packs.c.serial))]

    def update_pack(self, serial: str, now: datetime, **values: Any) -> None:
        self.update(t.packs, "serial", serial, {**values, "updated_at": now})

    def move_pack(self, moved: PackMoved, now: datetime) -> None:
        """The one way a pack changes place: its record, the slot it left emptied, the slot it
        went to filled (or Retry, when another transaction filled that slot first)."""
        values: dict[str, Any] = {
            "status": moved.status.value,
            "station_id": moved.station_id,
            "slot_no": moved.slot_no,
            "rider_id": moved.rider_id,
            "reserved_swap_id": None,
        }
        if moved.soc_bp is not None:
            values["soc_bp"] = moved.soc_bp
        if moved.soh_bp is not None:
            values["soh_bp"] = moved.soh_bp
        if moved.cycle_count is not None:
            values["cycle_count"] = moved.cycle_count
        # ``now`` is the time of the reading that moved it: a replayed offline event's own time.
        values.update(updated_at=now, placed_at=now)
        leaves = moved.left is not None and moved.left != (moved.station_id, moved.slot_no)
        fills = moved.station_id is not None and moved.slot_no is not None
        if self._lockable:  # PostgreSQL: the four writes in one statement
            pack_moves.move(self.conn, moved, values, leaves=leaves, fills=fills, now=now)
            return
        if leaves:
            assert moved.left is not None
            self.set_slot(*moved.left, None)
        self.update(t.packs, "serial", moved.serial, values)
        if fills:
            assert moved.station_id is not None and moved.slot_no is not None
            self.set_slot(moved.station_id, moved.slot_no, moved.serial)
        self.note_list_change(now)  # a pack changed hands or place: the stations' lists follow

    def pack_placed_at(self, serial: str) -> datetime | None:
        """When the reading that put the pack where it is was taken (None: not since 0011)."""
        row = self.run(_PLACED_AT, {"serial": serial}).first()
        return None if row is None else row.placed_at

    def note_list_change(self, now: datetime) -> None:
        """Something a local list is made of changed (swapd.services.local_lists)."""
        self.defer(_LIST_CHANGE, {"at": now})

    def unreserve_pack(self, serial: str, swap_id: int, now: datetime) -> None:
        """End the pack's reservation for that swap (none other)."""
        self.run(swap_rows.UNRESERVE_PACK, {"p_serial": serial, "p_swap_id": swap_id, "now": now})

    def reserve_pack(self, serial: str, swap_id: int, now: datetime) -> None:
        """Reserve a charged pack for a swap offer; Retry if another swap took it first."""

        def reserved(result: PreparedResult) -> None:
            if result.rowcount != 1:
                raise Retry(f"pack {serial} was reserved by another swap meanwhile")

        self.defer(_RESERVE_PACK, {"p_serial": serial, "swap_id": swap_id, "now": now}, reserved)

    # -- stations and slots ----------------------------------------------------------------

    def station(self, station_id: str, *, lock: bool = False) -> Station | None:
        query = _STATION_LOCKED if lock and self._lockable else _STATION
        row = self.run(query, {"station_id": station_id}).first()
        if row is None:
            return None
        return _station(row)

    def slots(self, station_id: str) -> list[Slot]:
        rows = self.conn.execute(
            sa.select(t.slots).where(t.slots.c.station_id == station_id).order_by(t.slots.c.slot_no)
        )
        return [Slot(r.station_id, r.slot_no, SlotState(r.state), r.pack_serial) for r in rows]

    def slot(self, station_id: str, slot_no: int) -> Slot | None:
        row = self.run(_SLOT, {"station_id": station_id, "slot_no": slot_no}).first()
        return None if row is None else _slot(row)

    def set_slot(self, station_id: str, slot_no: int, pack_serial: str | None) -> None:
        """Empty a slot, or put a pack into it: only into a slot that is empty or holds it
        already, else Retry (the condition and why it sits in the UPDATE: ``pack_moves.fill_slot``)."""
        where = {"p_station": station_id, "p_slot": slot_no}
        if pack_serial is None:
            self.run(_EMPTY_SLOT, where)
            return
        result = self.run(_FILL_SLOT, {**where, "p_serial": pack_serial})
        if result.rowcount != 1:
            raise pack_moves.slot_taken(station_id, slot_no)

    # -- plans, riders, tokens -------------------------------------------------------------

    def plan(self, plan_id: str) -> Plan | None:
        if self._plans is not None:
            kept = self._plans.get(plan_id)
            if kept is not None:
                return kept
        row = self.run(_PLAN, {"plan_id": plan_id}).first()
        if row is None:
            return None
        plan = self.plans_read[plan_id] = plan_from_row(row)
        return plan

    def plans(self, *, listed_only: bool = False) -> list[Plan]:
        query = sa.select(t.plans).order_by(t.plans.c.id)
        if listed_only:
            query = query.where(t.plans.c.listed.is_(True))
        return [plan_from_row(r) for r in self.conn.execute(query)]

    def rider(self, rider_id: str, *, lock: bool = False) -> Rider | None:
        query = _RIDER_LOCKED if lock and self._lockable else _RIDER
        row = self.run(query, {"rider_id": rider_id}).first()
        if row is None:
            return None
        return _rider(row)

    def lock_riders(self, rider_ids: Sequence[str]) -> dict[str, Rider]:
        """Lock riders in id order (the first step of every write that touches a rider)."""
        if not rider_ids:
            return {}
        if len(set(rider_ids)) == 1:  # the swap path: one rider, a prepared statement
            rider = self.rider(rider_ids[0], lock=True)
            return {} if rider is None else {rider.id: rider}
        query = _RIDERS_LOCKED if self._lockable else _RIDERS
        rows = self.conn.execute(query, {"rider_ids": sorted(set(rider_ids))})
        return {r.id: _rider(r) for r in rows}

    def riders(self) -> list[Rider]:
        rows = self.conn.execute(sa.select(*_RIDER_COLUMNS).order_by(t.riders.c.id))
        return [_rider(r) for r in rows]

    def rider_at_station(self, rider_id: str, station_id: str, key_serial: str | None) -> RiderAtStation:
        lock = self._lockable
        runs: list[tuple[Prepared, Mapping[str, Any]]] = [
            (_RIDER_LOCKED if lock else _RIDER, {"rider_id": rider_id}),
            (swap_rows.OFFERED_TO_RIDER, {"rider_id": rider_id}),
            (_PACKS_OF_RIDER, {"rider_id": rider_id}),
            (_PACKS_AT, {"station_id": station_id}),
            (_SLOTS_OUT_OF_SERVICE, {"station_id": station_id}),
        ]
        if key_serial is not None:  # locked after the rider, as every write locks them
            runs.insert(1, (_PACK_LOCKED if lock else _PACK, {"serial": key_serial}))
        results = iter(run_together(self.conn, runs))
        rider = next(results).first()
        key = next(results).first() if key_serial is not None else None
        offered, held, stock, out_of_service = results
        return RiderAtStation(
            rider=None if rider is None else _rider(rider),
            offered=[swap_rows.swap_of(r) for r in offered],
            key_pack=None if key is None else _pack(key),
            held=[_pack(r) for r in held],
            stock=[_pack(r, r.placed_at) for r in stock],
            out_of_service=frozenset(r.slot_no for r in out_of_service),
        )

    def return_at_station(
        self,
        station_id: str,
        request_id: str,
        serials: Sequence[str],
        *,
        holders: Sequence[str],
        slot_nos: Sequence[int],
        offer_rider: str | None,
    ) -> ReturnAtStation:
        if len(set(serials)) != 1 or len(set(holders)) > 1:  # several packs: one by one
            self.lock_riders(holders)
            packs = self.packs(serials, lock=True)
            slots = {n: self.slot(station_id, n) for n in slot_nos}
            possessions = {s: self.open_possession(s) for s in sorted(set(serials))}
            return ReturnAtStation(
                packs=packs,
                slots=slots,
                possessions={s: p for s, p in possessions.items() if p is not None},
                by_request=self.swap_by_request(station_id, request_id),
                offer=None if offer_rider is None else self.open_offer(station_id, offer_rider),
            )
        serial, lock = serials[0], self._lockable
        runs: list[tuple[Prepared, Mapping[str, Any]]] = []
        if holders and lock:  # nothing to lock where the transaction holds the whole database
            runs.append((_RIDER_LOCKED, {"rider_id": holders[0]}))
        runs.append((_PACK_LOCKED if lock else _PACK, {"serial": serial}))
        runs += [(_SLOT, {"station_id": station_id, "slot_no": n}) for n in slot_nos]
        runs.append((swap_rows.OPEN_POSSESSION, {"serial": serial}))
        runs.append((swap_rows.SWAP_BY_REQUEST, {"station_id": station_id, "request_id": request_id}))
        if offer_rider is not None:
            runs.append((swap_rows.OPEN_OFFER, {"station_id": station_id, "rider_id": offer_rider}))
        results = run_together(self.conn, runs)[1 if holders and lock else 0 :]
        pack = results[0].first()
        slots = {}
        for n, result in zip(slot_nos, results[1 : 1 + len(slot_nos)], strict=True):
            row = result.first()
            slots[n] = None if row is None else _slot(row)
        possession, by_request, *offer = (r.first() for r in results[1 + len(slot_nos) :])
        return ReturnAtStation(
            packs={} if pack is None else {serial: _pack(pack)},
            slots=slots,
            possessions={} if possession is None else {serial: swap_rows.possession_of(possession)},
            by_request=None if by_request is None else swap_rows.swap_of(by_request),
            offer=swap_rows.swap_of(offer[0]) if offer and offer[0] is not None else None,
        )

    def token_owner(self, token_type: str, value: str) -> TokenOwner | None:
        row = self.run(_TOKEN, {"token_type": token_type, "value": value}).first()
        return None if row is None else TokenOwner(row.rider_id, bool(row.operator))

    def add_consumed(self, rider_id: str, units: int) -> None:
        """A subscription's consumption this period grows by ``units``."""
        self.run(swap_rows.ADD_CONSUMED, {"p_rider_id": rider_id, "units": units})

    # -- swaps and offers ------------------------------------------------------------------

    def swap(self, swap_id: int) -> Swap | None:
        row = self.run(swap_rows.SWAP, {"swap_id": swap_id}).first()
        return None if row is None else swap_rows.swap_of(row)

    def swap_by_request(self, station_id: str, request_id: str) -> Swap | None:
        where = {"station_id": station_id, "request_id": request_id}
        row = self.run(swap_rows.SWAP_BY_REQUEST, where).first()
        return None if row is None else swap_rows.swap_of(row)

    def station_and_request(
        self, station_id: str, request_id: str
    ) -> tuple[Station | None, Swap | None]:
        """``station(station_id)`` and ``swap_by_request(...)`` in one statement."""
        where = {"station_id": station_id, "request_id": request_id}
        row = self.run(swap_rows.STATION_WITH_REQUEST, where).first()
        if row is None:
            return None, None
        swap = None if row.swap_id is None else swap_rows.swap_of(row, "swap_")
        return _station(row), swap

    def open_offer(self, station_id: str, rider_id: str) -> Swap | None:
        """The rider's newest swap still offered at this station."""
        where = {"station_id": station_id, "rider_id": rider_id}
        row = self.run(swap_rows.OPEN_OFFER, where).first()
        return None if row is None else swap_rows.swap_of(row)

    def offered_to_rider(self, rider_id: str) -> list[Swap]:
        """Every swap still offered to the rider, newest first."""
        rows = self.run(swap_rows.OFFERED_TO_RIDER, {"rider_id": rider_id})
        return [swap_rows.swap_of(r) for r in rows]

    def stale_offers(self, updated_before: datetime, limit: int) -> list[int]:
        """Swaps offered and untouched since ``updated_before``, oldest first, at most ``limit``."""
        parameters = {"updated_before": updated_before, "limit": limit}
        return [int(r.id) for r in self.conn.execute(swap_rows.STALE_OFFERS, parameters)]

    def insert_choice(self, record: ChoiceRecord) -> None:
        # Shallow: dataclasses.asdict deep-copies every value (50 us here, _fields 4 us).
        self.defer(swap_rows.INSERT_CHOICE, {**_fields(record), "rule": record.rule.value})

    def choice(self, swap_id: int) -> ChoiceRecord | None:
        row = self.run(swap_rows.CHOICE, {"swap_id": swap_id}).first()
        return None if row is None else swap_rows.choice_of(row)

    def confirm_choice(self, swap_id: int, now: datetime) -> None:
        """The rider said yes to the right-sized offer of that swap."""
        self.run(swap_rows.CONFIRM_CHOICE, {"p_swap_id": swap_id, "now": now})

    def insert_swap(
        self,
        station_id: str,
        token: IdToken,
        state: SwapState,
        now: datetime,
        *,
        rider_id: str | None,
        request_id: str | None = None,
        reason: str | None = None,
    ) -> int:
        values = {
            "station_id": station_id,
            "request_id": request_id,
            "rider_id": rider_id,
            "token_type": token.type.value,
            "token_value": token.value,
            "state": state.value,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
        }
        return int(self.run(swap_rows.INSERT_SWAP, values).scalar_one())

    def set_swap_state(self, swap_id: int, state: SwapState, now: datetime) -> None:
        self.update(t.swaps, "id", swap_id, {"state": state.value, "updated_at": now})

    def set_swap_request(self, swap_id: int, request_id: str, now: datetime) -> None:
        self.update(t.swaps, "id", swap_id, {"request_id": request_id, "updated_at": now})

    def offers(self, swap_id: int) -> list[Offer]:
        """A swap's offers in slot order."""
        return [swap_rows.offer_of(r) for r in self.run(swap_rows.OFFERS, {"swap_id": swap_id})]

    def insert_offer(self, offer: Offer) -> None:
        values = {
            "swap_id": offer.swap_id,
            "pack_serial": offer.pack_serial,
            "slot_no": offer.slot_no,
            "hold_units": offer.hold_units,
            "hold_transfer_id": offer.hold_transfer_id,
            "state": offer.state.value,
        }
        self.defer(swap_rows.INSERT_OFFER, values)

    def set_offer_state(self, swap_id: int, serial: str, state: OfferState) -> None:
        values = {"p_swap_id": swap_id, "p_serial": serial, "v_state": state.value}
        self.defer(swap_rows.SET_OFFER_STATE, values)

    # -- possessions -----------------------------------------------------------------------

    def open_possession(self, serial: str) -> Possession | None:
        row = self.run(swap_rows.OPEN_POSSESSION, {"serial": serial}).first()
        return None if row is None else swap_rows.possession_of(row)

    def insert_possession(self, opened: PossessionOpened) -> None:
        self.defer(swap_rows.INSERT_POSSESSION, _fields(opened))

    def close_possession(self, closed: PossessionClosed) -> None:
        values = _fields(closed)
        del values["possession_id"]
        self.update(t.possessions, "id", closed.possession_id, values)

    # -- station events and alerts (the offline replays' records: OfflineRecords) ----------

    def station_event(
        self, station_id: str, request_id: str, event_type: str
    ) -> Mapping[str, Any] | None:
        """The recorded result of a station event, if it was applied already."""
        where = {"station_id": station_id, "request_id": request_id, "event_type": event_type}
        row = self.run(swap_rows.STATION_EVENT, where).one()
        return swap_rows.recorded_result(row.received_at, row.result, where)

    def station_and_event(
        self, station_id: str, request_id: str, event_type: str
    ) -> tuple[Station | None, Mapping[str, Any] | None]:
        """``station(station_id)`` and ``station_event(...)``: one statement for a new event,
        a second for a repeat."""
        where = {"station_id": station_id, "request_id": request_id, "event_type": event_type}
        row = self.run(swap_rows.STATION_WITH_EVENT, where).first()
        if row is None:
            return None, None
        if row.event_received_at is None:  # the common case: a new event
            return _station(row), None
        return _station(row), self.station_event(station_id, request_id, event_type)

    def insert_station_event(
        self,
        station_id: str,
        request_id: str,
        event_type: str,
        now: datetime,
        result: Mapping[str, Any],
    ) -> None:
        values = {
            "station_id": station_id,
            "request_id": request_id,
            "event_type": event_type,
            "received_at": now,
        }
        if self._lockable:  # PostgreSQL: one statement, one round trip
            keyed = {f"v_{name}": value for name, value in values.items()}
            # A repeat racing this one fails it with a unique violation: the retry answers
            # from the winner's record.
            self.defer(swap_rows.INSERT_EVENT_KEYED, {**keyed, "v_result": result})
            return
        self.run(swap_rows.INSERT_EVENT_KEY, values)
        self.run(swap_rows.INSERT_EVENT, {**values, "result": result})

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
        self.run(
            _ALERT,
            {
                "kind": kind,
                "detail": detail[:500],
                "station_id": station_id,
                "pack_serial": pack_serial,
                "rider_id": rider_id,
                "created_at": now,
            },
        )


def _fields(event: Any) -> dict[str, Any]:
    """An event's fields by name (shallow: they hold plain values); its names are the columns."""
    return {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
