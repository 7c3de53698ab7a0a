"""Swap reads for the operator: the filtered, paged list, a rider's recent swaps, the one JSON
shape of a swap line that the CLI and the API both give, a swap with everything it moved, and the
swaps export.

Lists are newest first and paged by a cursor (the last id seen), so that a page does not shift when
rows are added meanwhile. Exports stream from one query in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.domain.pack_choice import RULE_TEXT, ChoiceRecord
from swapd.readmodels.money import TransferRow, transfer_row, transfers_query
from swapd.readmodels.packs import Possession, possession_of
from swapd.readmodels.paging import clamp_limit, stream
from swapd.store import schema as t
from swapd.store.database import Database, Tx

# -- operator lists -------------------------------------------------------------------------------


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


def swap_view(row: SwapRow) -> dict[str, Any]:
    """A swap as ``swapd rider show --json`` lists it and ``/api/v1/ops/swaps`` returns it."""
    return {
        "id": row.id,
        "station_id": row.station_id,
        "request_id": row.request_id,
        "rider_id": row.rider_id,
        "token_type": row.token_type,
        "token_value": row.token_value,
        "state": row.state,
        "reason": row.reason,  # why it was refused
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def recent_swaps(db: Database, rider_id: str | None = None, *, limit: int = 20) -> list[SwapRow]:
    """Newest first, of one rider or all; ``limit`` may be 0 (and is not clamped)."""

    def work(tx: Tx) -> list[SwapRow]:
        query = sa.select(t.swaps).order_by(t.swaps.c.id.desc()).limit(limit)
        if rider_id is not None:
            query = query.where(t.swaps.c.rider_id == rider_id)
        return [_swap_row(r) for r in tx.repo.execute(query)]

    return db.read(work)


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
        query = sa.select(t.swaps).order_by(t.swaps.c.id.desc()).limit(clamp_limit(limit))
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
class SwapDetail:
    swap: SwapRow
    unit: str | None
    currency: str | None
    offers: tuple[OfferLine, ...]
    returned: tuple[Possession, ...]  # meter readings of the packs that came back
    handed_out: tuple[Possession, ...]
    charges: tuple[PackCharge, ...]
    transfers: tuple[TransferRow, ...]
    # How the offer's packs were chosen (the fleet policy's rule) and, right-sized, the consent;
    # None for swaps no Authorize offered (refusals, returns) or offered before 0012.
    choice: ChoiceRecord | None = None


def choice_view(choice: ChoiceRecord | None) -> dict[str, Any] | None:
    """The choice of a swap as the API returns it and the console shows it."""
    if choice is None:
        return None
    return {
        "rule": choice.rule.value,
        "rule_text": RULE_TEXT[choice.rule],
        "detail": choice.detail,
        "right_sized": choice.right_sized,
        "consent": choice.consent,
        "required_units": choice.required_units,
        "full_required_units": choice.full_required_units,
        "confirmed_at": choice.confirmed_at,
    }


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
        row = tx.repo.execute(sa.select(t.swaps).where(t.swaps.c.id == swap_id)).first()
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
                charges = _charges(dict(event))
            prefixes.append(f"{swap.station_id}:{swap.request_id}:")
        x = t.transfers.c
        moved = tx.repo.execute(
            transfers_query()
            .where(sa.or_(*(x.key.startswith(prefix, autoescape=True) for prefix in prefixes)))
            .order_by(x.id)
        ).all()
        return SwapDetail(
            swap,
            unit,
            currency,
            tuple(offers),
            tuple(possession_of(r) for r in returned),
            tuple(possession_of(r) for r in handed),
            tuple(charges),
            tuple(transfer_row(r) for r in moved),
            tx.repo.choice(swap_id),
        )

    return db.read(work)


# -- export ---------------------------------------------------------------------------------------

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
    for r in stream(db, query):
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
