"""Read-only queries for the operator side of the HTTP API: filtered, paged lists, a swap with
everything it moved, a pack's history, and row streams for CSV exports.

Lists are newest first (or by id) and paged by a cursor (the last id seen), so that a page does
not shift when rows are added meanwhile. Exports stream from one query in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.decision import is_charged
from swapd.domain.errors import NotFound
from swapd.domain.packs import Pack
from swapd.domain.quantities import Unit
from swapd.domain.stations import SlotState, Station
from swapd.ledger.model import AccountCode, TransferFlags
from swapd.services import queries, views
from swapd.store import schema as t
from swapd.store.database import Database, Tx

MAX_PAGE = 500
EXPORT_BATCH_ROWS = 2_000  # rows fetched per round trip while streaming an export
_UNITS = frozenset(u.value for u in Unit)


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


# -- stations -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StationInfo:
    line: views.StationLine
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


def stations(db: Database) -> list[StationInfo]:
    lines = views.stations(db)
    # A second read: a station added in between has no line and is skipped; one deleted in
    # between (never done today) would show without a place rather than fail.
    places = db.read(_places)
    return [StationInfo(line, *places.get(line.station.id, _NOWHERE)) for line in lines]


def station(db: Database, station_id: str) -> StationInfo:
    line = views.station(db, station_id)
    places = db.read(lambda tx: _places(tx, station_id))
    return StationInfo(line, *places.get(station_id, _NOWHERE))


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
    view = queries.station_view(db, station_id)
    last_seen = db.read(
        lambda tx: tx.repo.execute(
            sa.select(t.stations.c.last_seen_at).where(t.stations.c.id == station_id)
        ).scalar()
    )
    lines = []
    for slot in view.slots:
        pack = view.packs.get(slot.pack_serial) if slot.pack_serial else None
        lines.append(
            SlotLine(
                slot_no=slot.slot_no,
                state=slot.state,
                pack_serial=slot.pack_serial,
                soc_bp=None if pack is None else pack.soc_bp,
                soh_bp=None if pack is None else pack.soh_bp,
                charged=pack is not None and is_charged(pack, view.station),
                reserved_swap_id=None if pack is None else pack.reserved_swap_id,
            )
        )
    return SlotView(view.station, last_seen, tuple(lines))


# -- packs ----------------------------------------------------------------------------------------


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
        query = sa.select(t.packs.c.serial).order_by(t.packs.c.serial).limit(_limit(limit))
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


def _possession(row: sa.Row[Any]) -> Possession:
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
            .limit(_limit(limit))
        ).all()
        return PackHistory(found, tuple(_possession(r) for r in reversed(rows)))

    return db.read(work)


# -- riders ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiderRow:
    id: str
    plan_id: str
    status: str
    vehicle_packs: int
    created_at: datetime
    email: str | None


def _riders_query() -> sa.Select[Any]:
    r, u = t.riders.c, t.users.c
    return sa.select(r.id, r.plan_id, r.status, r.vehicle_packs, r.created_at, u.email).select_from(
        t.riders.outerjoin(t.users, u.rider_id == r.id)
    )


def riders(
    db: Database,
    *,
    rider_id: str | None = None,
    email: str | None = None,
    plan_id: str | None = None,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[RiderRow]:
    """Riders in id order: ``rider_id`` matches a prefix, ``email`` a part (any case)."""

    def work(tx: Tx) -> list[RiderRow]:
        r, u = t.riders.c, t.users.c
        query = _riders_query().order_by(r.id).limit(_limit(limit))
        if rider_id:
            query = query.where(r.id.startswith(rider_id, autoescape=True))
        if email:
            query = query.where(sa.func.lower(u.email).contains(email.lower(), autoescape=True))
        if plan_id is not None:
            query = query.where(r.plan_id == plan_id)
        if status is not None:
            query = query.where(r.status == status)
        if after is not None:
            query = query.where(r.id > after)
        return [RiderRow(*row) for row in tx.repo.execute(query)]

    return db.read(work)


def rider(db: Database, rider_id: str) -> RiderRow:
    row = db.read(lambda tx: tx.repo.execute(_riders_query().where(t.riders.c.id == rider_id)).first())
    if row is None:
        raise NotFound(f"unknown rider {rider_id}")
    return RiderRow(*row)


# -- swaps ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwapRow:
    id: int
    station_id: str
    request_id: str | None
    rider_id: str | None
    token_type: str
    token_value: str
    state: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


def _swap_row(row: sa.Row[Any]) -> SwapRow:
    return SwapRow(
        row.id,
        row.station_id,
        row.request_id,
        row.rider_id,
        row.token_type,
        row.token_value,
        row.state,
        row.reason,
        row.created_at,
        row.updated_at,
    )


def _swap_filters(
    query: sa.Select[Any],
    *,
    station_id: str | None,
    rider_id: str | None,
    pack_serial: str | None,
    since: datetime | None,
    until: datetime | None,
    state: str | None,
) -> sa.Select[Any]:
    s = t.swaps.c
    if station_id is not None:
        query = query.where(s.station_id == station_id)
    if rider_id is not None:
        query = query.where(s.rider_id == rider_id)
    if state is not None:
        query = query.where(s.state == state)
    if since is not None:
        query = query.where(s.created_at >= since)
    if until is not None:
        query = query.where(s.created_at < until)
    if pack_serial is not None:
        p, o = t.possessions.c, t.swap_offers.c
        # A pack takes part in a swap as an offer, as a pack handed out or returned, or as the
        # key (battery-as-key swaps name it in the token).
        offered = sa.select(o.swap_id).where(o.pack_serial == pack_serial)
        out = sa.select(p.swap_out_id).where(p.pack_serial == pack_serial, p.swap_out_id.is_not(None))
        back = sa.select(p.swap_in_id).where(p.pack_serial == pack_serial, p.swap_in_id.is_not(None))
        query = query.where(
            sa.or_(
                s.id.in_(offered),
                s.id.in_(out),
                s.id.in_(back),
                sa.and_(s.token_type == "BatterySerial", s.token_value == pack_serial),
            )
        )
    return query


def swaps(
    db: Database,
    *,
    station_id: str | None = None,
    rider_id: str | None = None,
    pack_serial: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    state: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[SwapRow]:
    """Newest first; page with ``before_id`` (the last id seen)."""

    def work(tx: Tx) -> list[SwapRow]:
        query = sa.select(t.swaps).order_by(t.swaps.c.id.desc()).limit(_limit(limit))
        query = _swap_filters(
            query,
            station_id=station_id,
            rider_id=rider_id,
            pack_serial=pack_serial,
            since=since,
            until=until,
            state=state,
        )
        if before_id is not None:
            query = query.where(t.swaps.c.id < before_id)
        return [_swap_row(r) for r in tx.repo.execute(query)]

    return db.read(work)


@dataclass(frozen=True, slots=True)
class OfferLine:
    pack_serial: str
    slot_no: int
    hold_units: int
    state: str


@dataclass(frozen=True, slots=True)
class PackCharge:
    """What returning one pack cost, as the BatteryIn event recorded it."""

    pack_serial: str
    outcome: str
    usage_units: int
    charged_units: int
    beyond_units: int
    revenue_minor: int
    overage_minor: int


@dataclass(frozen=True, slots=True)
class TransferRow:
    id: int
    created_at: datetime
    ledger: str
    amount: int
    code: str
    kind: str
    debit: str
    credit: str
    rider_id: str | None
    key: str


@dataclass(frozen=True, slots=True)
class SwapDetail:
    swap: SwapRow
    unit: str | None
    currency: str | None
    offers: tuple[OfferLine, ...]
    returned: tuple[Possession, ...]  # meter readings of the packs that came back
    handed_out: tuple[Possession, ...]
    charges: tuple[PackCharge, ...]
    transfers: tuple[TransferRow, ...]


def _kind(flags: int) -> str:
    if flags & TransferFlags.PENDING:
        return "pending"
    if flags & TransferFlags.POST_PENDING:
        return "post"
    if flags & TransferFlags.VOID_PENDING:
        return "void"
    return "posted"


def _account(code: str, owner: str) -> str:
    return f"{code}:{owner}" if owner else code


def _transfers_query() -> sa.Select[Any]:
    debit, credit, x = t.accounts.alias("debit"), t.accounts.alias("credit"), t.transfers.c
    return (
        sa.select(
            x.id,
            x.created_at,
            x.ledger,
            x.amount,
            x.code,
            x.flags,
            debit.c.code.label("debit_code"),
            debit.c.owner.label("debit_owner"),
            credit.c.code.label("credit_code"),
            credit.c.owner.label("credit_owner"),
            x.rider_id,
            x.actor,
            x.memo,
            x.key,
        )
        .join(debit, debit.c.id == x.debit_account_id)
        .join(credit, credit.c.id == x.credit_account_id)
    )


def _transfer_row(r: sa.Row[Any]) -> TransferRow:
    return TransferRow(
        r.id,
        r.created_at,
        r.ledger,
        r.amount,
        r.code,
        _kind(r.flags),
        _account(r.debit_code, r.debit_owner),
        _account(r.credit_code, r.credit_owner),
        r.rider_id,
        r.key,
    )


def _charges(result: Any) -> list[PackCharge]:
    if not isinstance(result, dict):
        return []
    return [
        PackCharge(
            p["serial"],
            p["outcome"],
            int(p.get("usage_units", 0)),
            int(p.get("charged_units", 0)),
            int(p.get("beyond_units", 0)),
            int(p.get("revenue_minor", 0)),
            int(p.get("overage_minor", 0)),
        )
        for p in result.get("packs", [])
        if p.get("outcome") == "returned"
    ]


def swap_detail(db: Database, swap_id: int) -> SwapDetail:
    def work(tx: Tx) -> SwapDetail:
        row = tx.repo.swap(swap_id)
        if row is None:
            raise NotFound(f"unknown swap {swap_id}")
        swap = _swap_row(row)
        unit = currency = None
        if swap.rider_id is not None:
            plan = tx.repo.execute(
                sa.select(t.plans.c.unit, t.plans.c.currency)
                .join(t.riders, t.riders.c.plan_id == t.plans.c.id)
                .where(t.riders.c.id == swap.rider_id)
            ).first()
            if plan is not None:
                unit, currency = plan.unit, plan.currency
        offers = [
            OfferLine(o.pack_serial, o.slot_no, o.hold_units, o.state) for o in tx.repo.offers(swap_id)
        ]
        p = t.possessions.c
        returned = tx.repo.execute(
            sa.select(t.possessions).where(p.swap_in_id == swap_id).order_by(p.id)
        ).all()
        handed = tx.repo.execute(
            sa.select(t.possessions).where(p.swap_out_id == swap_id).order_by(p.id)
        ).all()
        charges: list[PackCharge] = []
        prefixes = [f"offer:{swap_id}:"]
        if swap.request_id is not None:
            event = tx.repo.station_event(swap.station_id, swap.request_id, "BatteryIn")
            if event is not None:
                charges = _charges(event.result)
            prefixes.append(f"{swap.station_id}:{swap.request_id}:")
        x = t.transfers.c
        moved = tx.repo.execute(
            _transfers_query()
            .where(sa.or_(*(x.key.startswith(prefix, autoescape=True) for prefix in prefixes)))
            .order_by(x.id)
        ).all()
        return SwapDetail(
            swap,
            unit,
            currency,
            tuple(offers),
            tuple(_possession(r) for r in returned),
            tuple(_possession(r) for r in handed),
            tuple(charges),
            tuple(_transfer_row(r) for r in moved),
        )

    return db.read(work)


# -- alerts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    kind: str
    station_id: str | None
    pack_serial: str | None
    rider_id: str | None
    detail: str
    created_at: datetime


def alerts(
    db: Database,
    *,
    kind: str | None = None,
    station_id: str | None = None,
    pack_serial: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AlertRow]:
    def work(tx: Tx) -> list[AlertRow]:
        a = t.alerts.c
        query = sa.select(t.alerts).order_by(a.id.desc()).limit(_limit(limit))
        if kind is not None:
            query = query.where(a.kind == kind)
        if station_id is not None:
            query = query.where(a.station_id == station_id)
        if pack_serial is not None:
            query = query.where(a.pack_serial == pack_serial)
        if since is not None:
            query = query.where(a.created_at >= since)
        if before_id is not None:
            query = query.where(a.id < before_id)
        return [
            AlertRow(r.id, r.kind, r.station_id, r.pack_serial, r.rider_id, r.detail, r.created_at)
            for r in tx.repo.execute(query)
        ]

    return db.read(work)


# -- exports --------------------------------------------------------------------------------------


def _stream(db: Database, query: sa.Select[Any]) -> Iterator[sa.Row[Any]]:
    """Rows of one query from one snapshot, fetched in batches: memory stays bounded."""
    with db.engine.connect() as connection, connection.begin():
        result = connection.execution_options(yield_per=EXPORT_BATCH_ROWS).execute(query)
        yield from result


SWAP_COLUMNS = (
    "swap_id",
    "created_at",
    "station_id",
    "rider_id",
    "state",
    "reason",
    "token_type",
    "request_id",
    "packs_returned",
    "usage_units",
    "charged_units",
    "unit",
    "revenue_minor",
    "overage_minor",
    "currency",
)


def export_swaps(
    db: Database, *, since: datetime | None = None, until: datetime | None = None
) -> Iterator[tuple[object, ...]]:
    s, e = t.swaps.c, t.station_events.c
    query = (
        sa.select(t.swaps, e.result, t.plans.c.unit, t.plans.c.currency)
        .select_from(
            t.swaps.outerjoin(
                t.station_events,
                sa.and_(
                    e.station_id == s.station_id,
                    e.request_id == s.request_id,
                    e.event_type == "BatteryIn",
                ),
            )
            .outerjoin(t.riders, t.riders.c.id == s.rider_id)
            .outerjoin(t.plans, t.plans.c.id == t.riders.c.plan_id)
        )
        .order_by(s.id)
    )
    query = _swap_filters(
        query, station_id=None, rider_id=None, pack_serial=None, since=since, until=until, state=None
    )
    for r in _stream(db, query):
        charges = _charges(r.result)
        yield (
            r.id,
            r.created_at.isoformat(),
            r.station_id,
            r.rider_id or "",
            r.state,
            r.reason or "",
            r.token_type,
            r.request_id or "",
            len(charges),
            sum(c.usage_units for c in charges),
            sum(c.charged_units for c in charges),
            r.unit or "",
            sum(c.revenue_minor for c in charges),
            sum(c.overage_minor for c in charges),
            r.currency or "",
        )


RIDER_COLUMNS = (
    "rider_id",
    "email",
    "plan_id",
    "status",
    "vehicle_packs",
    "created_at",
    "unit",
    "allowance_posted_units",
    "allowance_held_units",
    "allowance_available_units",
    "prepaid_minor",
    "receivable_minor",
    "currency",
    "packs_held",
)


def export_riders(db: Database) -> Iterator[tuple[object, ...]]:
    r, p = t.riders.c, t.plans.c
    allowance, prepaid, receivable = (t.accounts.alias(n) for n in ("al", "pp", "rc"))

    def owned(account: Any, ledger: sa.ColumnElement[Any], code: AccountCode) -> Any:
        return sa.and_(account.c.owner == r.id, account.c.ledger == ledger, account.c.code == code.value)

    held = (
        sa.select(sa.func.count())
        .where(t.packs.c.rider_id == r.id)
        .correlate(t.riders)
        .scalar_subquery()
    )
    query = (
        sa.select(
            r.id,
            t.users.c.email,
            r.plan_id,
            r.status,
            r.vehicle_packs,
            r.created_at,
            p.unit,
            allowance.c.credits_posted,
            allowance.c.debits_posted,
            allowance.c.debits_pending,
            prepaid.c.credits_posted.label("pp_credits"),
            prepaid.c.debits_posted.label("pp_debits"),
            receivable.c.credits_posted.label("rc_credits"),
            receivable.c.debits_posted.label("rc_debits"),
            p.currency,
            held.label("packs_held"),
        )
        .select_from(
            t.riders.join(t.plans, p.id == r.plan_id)
            .outerjoin(t.users, t.users.c.rider_id == r.id)
            .outerjoin(allowance, owned(allowance, p.unit, AccountCode.ALLOWANCE))
            .outerjoin(prepaid, owned(prepaid, p.currency, AccountCode.PREPAID))
            .outerjoin(receivable, owned(receivable, p.currency, AccountCode.RECEIVABLE))
        )
        .order_by(r.id)
    )
    for row in _stream(db, query):
        posted = (row.credits_posted or 0) - (row.debits_posted or 0)
        held_units = row.debits_pending or 0
        yield (
            row.id,
            row.email or "",
            row.plan_id,
            row.status,
            row.vehicle_packs,
            row.created_at.isoformat(),
            row.unit,
            posted,
            held_units,
            posted - held_units,
            (row.pp_credits or 0) - (row.pp_debits or 0),
            (row.rc_debits or 0) - (row.rc_credits or 0),
            row.currency,
            row.packs_held,
        )


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
    for r in _stream(db, query):
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


TRANSFER_COLUMNS = (
    "transfer_id",
    "created_at",
    "ledger",
    "amount",
    "currency",
    "unit",
    "code",
    "kind",
    "debit_account",
    "credit_account",
    "rider_id",
    "actor",
    "memo",
    "key",
)


def export_transfers(
    db: Database, *, since: datetime | None = None, until: datetime | None = None
) -> Iterator[tuple[object, ...]]:
    """Ledger transfers in the order written. A money ledger's amount is in minor units of the
    currency column; an allowance ledger's in the unit column (Wh, s, count)."""
    x = t.transfers.c
    query = _transfers_query().order_by(x.id)
    if since is not None:
        query = query.where(x.created_at >= since)
    if until is not None:
        query = query.where(x.created_at < until)
    for r in _stream(db, query):
        is_unit = r.ledger in _UNITS
        yield (
            r.id,
            r.created_at.isoformat(),
            r.ledger,
            r.amount,
            "" if is_unit else r.ledger,
            r.ledger if is_unit else "",
            r.code,
            _kind(r.flags),
            _account(r.debit_code, r.debit_owner),
            _account(r.credit_code, r.credit_owner),
            r.rider_id or "",
            r.actor,
            r.memo,
            r.key,
        )
