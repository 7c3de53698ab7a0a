"""Read-only views for the operator command line, beyond what ``queries`` offers.

Nothing here writes: every function runs in one read transaction and creates no accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from swapd.domain.decision import is_charged
from swapd.domain.errors import NotFound
from swapd.domain.packs import PackModel
from swapd.domain.plans import Plan
from swapd.domain.riders import Rider
from swapd.domain.stations import Station
from swapd.ledger.model import AccountCode, TransferCode, TransferFlags
from swapd.services.money import weighted_value
from swapd.store import schema as t
from swapd.store.database import Database, Tx

# -- pack models and plans ----------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class PlanLine:
    plan: Plan
    riders: int


def plans(db: Database) -> list[PlanLine]:
    def work(tx: Tx) -> list[PlanLine]:
        counts = dict(
            tx.repo.execute(sa.select(t.riders.c.plan_id, sa.func.count()).group_by(t.riders.c.plan_id))
            .tuples()
            .all()
        )
        return [PlanLine(p, int(counts.get(p.id, 0))) for p in tx.repo.plans()]

    return db.read(work)


def plan(db: Database, plan_id: str) -> Plan:
    def work(tx: Tx) -> Plan:
        found = tx.repo.plan(plan_id)
        if found is None:
            raise NotFound(f"unknown plan {plan_id}")
        return found

    return db.read(work)


# -- stations -----------------------------------------------------------------------------------


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
    station = Station(m["id"], m["slot_count"], m["enabled"], m["charged_soc_bp"], m["min_soh_bp"])
    packs = tx.repo.packs_at(station.id)
    unavailable = tx.repo.execute(
        sa.select(sa.func.count())
        .select_from(t.slots)
        .where(t.slots.c.station_id == station.id, t.slots.c.state == "unavailable")
    ).scalar_one()
    return StationLine(
        station=station,
        packs=len(packs),
        charged=sum(1 for p in packs if is_charged(p, station)),
        reserved=sum(1 for p in packs if p.reserved_swap_id is not None),
        unavailable_slots=int(unavailable),
        password_set=m["password_hash"] is not None,
        vendor=m["vendor"],
        model=m["model"],
        firmware=m["firmware"],
        booted_at=m["booted_at"],
        last_seen_at=m["last_seen_at"],
    )


def stations(db: Database) -> list[StationLine]:
    def work(tx: Tx) -> list[StationLine]:
        rows = tx.repo.execute(sa.select(t.stations).order_by(t.stations.c.id)).all()
        return [_station_line(tx, row) for row in rows]

    return db.read(work)


def station(db: Database, station_id: str) -> StationLine:
    def work(tx: Tx) -> StationLine:
        row = tx.repo.execute(sa.select(t.stations).where(t.stations.c.id == station_id)).first()
        if row is None:
            raise NotFound(f"unknown station {station_id}")
        return _station_line(tx, row)

    return db.read(work)


# -- riders -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiderLine:
    rider: Rider
    unit: str
    posted_units: int
    held_units: int
    available_units: int
    packs_held: int


def riders(db: Database) -> list[RiderLine]:
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
        for rider in tx.repo.riders():
            unit = units[rider.plan_id]
            posted, pending = balances.get((rider.id, unit), (0, 0))
            lines.append(
                RiderLine(rider, unit, posted, pending, posted - pending, int(held.get(rider.id, 0)))
            )
        return lines

    return db.read(work)


@dataclass(frozen=True, slots=True)
class SubscriptionLine:
    cycle_no: int
    cycle_start: datetime
    cycle_end: datetime
    carried_in_units: int
    consumed_units: int


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


def held_value_minor(prepaid_minor: int, posted_units: int, held_units: int) -> int:
    """The prepaid money that the units held by packs out stand for (same rule as revenue)."""
    return weighted_value(prepaid_minor, posted_units, held_units)


# -- transfers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransferLine:
    id: int
    created_at: datetime
    key: str
    ledger: str
    amount: int
    code: TransferCode
    flags: TransferFlags
    pending_id: int | None
    debit: str  # account as "code" (operator) or "code:owner" (rider)
    credit: str
    actor: str
    memo: str

    @property
    def kind(self) -> str:
        if self.flags & TransferFlags.PENDING:
            return "pending"
        if self.flags & TransferFlags.POST_PENDING:
            return "post"
        if self.flags & TransferFlags.VOID_PENDING:
            return "void"
        return "posted"


def recent_transfers(db: Database, rider_id: str, *, limit: int = 10) -> list[TransferLine]:
    """The rider's newest transfers first, with the accounts they moved between."""

    def work(tx: Tx) -> list[TransferLine]:
        debit = t.accounts.alias("debit")
        credit = t.accounts.alias("credit")
        x = t.transfers.c
        rows = tx.repo.execute(
            sa.select(
                t.transfers,
                debit.c.code.label("debit_code"),
                debit.c.owner.label("debit_owner"),
                credit.c.code.label("credit_code"),
                credit.c.owner.label("credit_owner"),
            )
            .join(debit, debit.c.id == x.debit_account_id)
            .join(credit, credit.c.id == x.credit_account_id)
            .where(x.rider_id == rider_id)
            .order_by(x.id.desc())
            .limit(limit)
        )
        return [
            TransferLine(
                id=r.id,
                created_at=r.created_at,
                key=r.key,
                ledger=r.ledger,
                amount=r.amount,
                code=TransferCode(r.code),
                flags=TransferFlags(r.flags),
                pending_id=r.pending_id,
                debit=_account_name(r.debit_code, r.debit_owner),
                credit=_account_name(r.credit_code, r.credit_owner),
                actor=r.actor,
                memo=r.memo,
            )
            for r in rows
        ]

    return db.read(work)


def _account_name(code: str, owner: str) -> str:
    return f"{code}:{owner}" if owner else code
