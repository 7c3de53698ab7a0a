"""Rider reads: operator lists and lookups, the allowance line per rider, the subscription cycle,
a rider's own cards, the riders export, and the one JSON shape of a rider line and of a
subscription cycle that the CLI and the API both give."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.domain.riders import TokenType
from swapd.ledger.model import AccountCode
from swapd.readmodels.paging import clamp_limit, stream
from swapd.store import schema as t
from swapd.store.database import Database, Tx

# -- operator lists -------------------------------------------------------------------------------


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
        query = _riders_query().order_by(r.id).limit(clamp_limit(limit))
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


def rider_line_view(row: RiderRow) -> dict[str, Any]:
    """A rider as ``swapd rider list --json`` prints it (then its allowance) and
    ``/api/v1/ops/riders`` returns it."""
    return {
        "id": row.id,
        "email": row.email,
        "plan_id": row.plan_id,
        "status": row.status,
        "vehicle_packs": row.vehicle_packs,
        "created_at": row.created_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class RiderLine:
    rider: RiderRow
    unit: str
    posted_units: int
    held_units: int
    available_units: int
    packs_held: int


def rider_lines(db: Database) -> list[RiderLine]:
    """Every rider with the allowance of their plan's unit, in two queries plus one per plan."""

    def work(tx: Tx) -> list[RiderLine]:
        units = {p.id: p.unit.value for p in tx.repo.plans()}
        a = t.accounts.c
        balances = {
            (r.owner, r.ledger): (r.credits_posted - r.debits_posted, r.debits_pending)
            for r in tx.repo.execute(
                sa.select(a.owner, a.ledger, a.credits_posted, a.debits_posted, a.debits_pending).where(
                    a.code == AccountCode.ALLOWANCE.value
                )
            )
        }
        held = dict(
            tx.repo.execute(
                sa.select(t.packs.c.rider_id, sa.func.count())
                .where(t.packs.c.rider_id.is_not(None))
                .group_by(t.packs.c.rider_id)
            )
            .tuples()
            .all()
        )
        lines = []
        for row in tx.repo.execute(_riders_query().order_by(t.riders.c.id)):
            rider = RiderRow(*row)
            unit = units[rider.plan_id]
            posted, pending = balances.get((rider.id, unit), (0, 0))
            lines.append(
                RiderLine(rider, unit, posted, pending, posted - pending, int(held.get(rider.id, 0)))
            )
        return lines

    return db.read(work)


# -- subscription and cards -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionLine:
    cycle_no: int
    cycle_start: datetime
    cycle_end: datetime
    carried_in_units: int
    consumed_units: int


def subscription_view(sub: SubscriptionLine | None) -> dict[str, Any] | None:
    """The subscription cycle in a rider's balance, as the CLI's JSON and the API give it."""
    if sub is None:
        return None
    return {
        "cycle_no": sub.cycle_no,
        "cycle_start": sub.cycle_start.isoformat(),
        "cycle_end": sub.cycle_end.isoformat(),
        "carried_in_units": sub.carried_in_units,
        "consumed_units": sub.consumed_units,
    }


def subscription(db: Database, rider_id: str) -> SubscriptionLine | None:
    def work(tx: Tx) -> SubscriptionLine | None:
        row = tx.repo.execute(
            sa.select(t.subscriptions).where(t.subscriptions.c.rider_id == rider_id)
        ).first()
        if row is None:
            return None
        return SubscriptionLine(
            row.cycle_no, row.cycle_start, row.cycle_end, row.carried_in_units, row.consumed_units
        )

    return db.read(work)


def cards(db: Database, rider_id: str) -> list[str]:
    """The rider's RFID card UIDs; scoped by the authenticated rider id in the WHERE clause."""

    def work(tx: Tx) -> list[str]:
        c = t.id_tokens.c
        return list(
            tx.repo.execute(
                sa.select(c.value)
                .where(c.rider_id == rider_id, c.type == TokenType.RFID.value)
                .order_by(c.value)
            ).scalars()
        )

    return db.read(work)


# -- export ---------------------------------------------------------------------------------------

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
    for row in stream(db, query):
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
