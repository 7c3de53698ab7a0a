"""Money and allowance reads: a rider's balances (and the one JSON shape of a balance that the CLI
and the API both give), ledger transfers, and the transfers export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.domain.quantities import Unit
from swapd.domain.revenue import weighted_value
from swapd.ledger.model import Account, AccountCode, AccountFlags, Transfer, TransferCode, TransferFlags
from swapd.readmodels.paging import stream
from swapd.readmodels.plans import quantity_name
from swapd.readmodels.riders import SubscriptionLine, subscription, subscription_view
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.ledger_book import transfer_of

_UNITS = frozenset(u.value for u in Unit)

# -- balances -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiderBalance:
    rider_id: str
    plan_id: str
    status: str
    unit: str
    currency: str
    posted_units: int  # allowance after all posted transfers
    held_units: int  # reserved by packs out and open offers
    available_units: int  # posted less held: what decides the next swap
    overdrawn_units: int
    prepaid_minor: int  # money paid and not yet earned
    available_value_minor: int  # prepaid money the available allowance stands for
    receivable_minor: int
    packs_held: tuple[str, ...]


def _balance(tx: Tx, rider_id: str) -> RiderBalance:
    rider = tx.repo.rider(rider_id)
    if rider is None:
        raise NotFound(f"unknown rider {rider_id}")
    plan = tx.repo.plan(rider.plan_id)
    assert plan is not None
    unit, currency = plan.unit.value, plan.currency

    def account(ledger: str, code: AccountCode) -> Account:
        # A rider who never paid has no accounts yet: read them as zero, create nothing.
        found = tx.book.existing(ledger, code, rider_id)
        return found or Account(0, ledger, code, rider_id, AccountFlags.NONE)

    allowance = account(unit, AccountCode.ALLOWANCE)
    prepaid = account(currency, AccountCode.PREPAID)
    available = allowance.available
    return RiderBalance(
        rider_id=rider_id,
        plan_id=plan.id,
        status=rider.status.value,
        unit=unit,
        currency=currency,
        posted_units=allowance.credit_balance,
        held_units=allowance.held,
        available_units=available,
        overdrawn_units=account(unit, AccountCode.OVERDRAWN).debit_balance,
        prepaid_minor=prepaid.credit_balance,
        available_value_minor=weighted_value(
            prepaid.credit_balance, allowance.credit_balance, available
        ),
        receivable_minor=account(currency, AccountCode.RECEIVABLE).debit_balance,
        packs_held=tuple(p.serial for p in tx.repo.packs_of_rider(rider_id)),
    )


def rider_balance(db: Database, rider_id: str) -> RiderBalance:
    return db.read(lambda tx: _balance(tx, rider_id))


def held_value_minor(prepaid_minor: int, posted_units: int, held_units: int) -> int:
    """The prepaid money that the units held by packs out stand for (same rule as revenue)."""
    return weighted_value(prepaid_minor, posted_units, held_units)


@dataclass(frozen=True, slots=True)
class BalanceView:
    """What a rider's app shows of their own account."""

    balance: RiderBalance
    held_value_minor: int
    subscription: SubscriptionLine | None


def balance_view(db: Database, rider_id: str) -> BalanceView:
    found = rider_balance(db, rider_id)
    return BalanceView(
        found,
        held_value_minor(found.prepaid_minor, found.posted_units, found.held_units),
        subscription(db, rider_id),
    )


def balance_fields(view: BalanceView) -> dict[str, Any]:
    """A rider's balance as ``swapd rider show --json`` (and the money commands' "balance") print
    it and ``/api/v1/me/balance`` returns it; the operator's rider view takes its allowance and
    money fields from it too."""
    b = view.balance
    return {
        "rider_id": b.rider_id,
        "plan_id": b.plan_id,
        "status": b.status,
        "unit": b.unit,
        "quantity": quantity_name(b.unit),
        "available_units": b.available_units,
        "held_units": b.held_units,
        "posted_units": b.posted_units,
        "overdrawn_units": b.overdrawn_units,
        "currency": b.currency,
        "available_value_minor": b.available_value_minor,
        "held_value_minor": view.held_value_minor,
        "prepaid_minor": b.prepaid_minor,
        "receivable_minor": b.receivable_minor,
        "packs_held": list(b.packs_held),
        "subscription": subscription_view(view.subscription),
    }


# -- transfers ------------------------------------------------------------------------------------


def transfers_of(db: Database, rider_id: str | None = None, *, limit: int = 10_000) -> list[Transfer]:
    """Transfers in the order they were written; of one rider, or all."""

    def work(tx: Tx) -> list[Transfer]:
        query = sa.select(t.transfers).order_by(t.transfers.c.id).limit(limit)
        if rider_id is not None:
            query = query.where(t.transfers.c.rider_id == rider_id)
        return [transfer_of(row) for row in tx.repo.execute(query)]

    return db.read(work)


def transfer_kind(flags: int) -> str:
    if flags & TransferFlags.PENDING:
        return "pending"
    if flags & TransferFlags.POST_PENDING:
        return "post"
    if flags & TransferFlags.VOID_PENDING:
        return "void"
    return "posted"


def account_name(code: str, owner: str) -> str:
    """An account as "code" (operator) or "code:owner" (rider)."""
    return f"{code}:{owner}" if owner else code


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
        return transfer_kind(self.flags)


def transfers_query() -> sa.Select[Any]:
    """Transfers with the names of the accounts they moved between."""
    debit, credit, x = t.accounts.alias("debit"), t.accounts.alias("credit"), t.transfers.c
    return (
        sa.select(
            x.id,
            x.created_at,
            x.ledger,
            x.amount,
            x.code,
            x.flags,
            x.pending_id,
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


def recent_transfers(db: Database, rider_id: str, *, limit: int = 10) -> list[TransferLine]:
    """The rider's newest transfers first, with the accounts they moved between."""

    def work(tx: Tx) -> list[TransferLine]:
        x = t.transfers.c
        rows = tx.repo.execute(
            transfers_query().where(x.rider_id == rider_id).order_by(x.id.desc()).limit(limit)
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
                debit=account_name(r.debit_code, r.debit_owner),
                credit=account_name(r.credit_code, r.credit_owner),
                actor=r.actor,
                memo=r.memo,
            )
            for r in rows
        ]

    return db.read(work)


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


def transfer_row(r: sa.Row[Any]) -> TransferRow:
    return TransferRow(
        r.id,
        r.created_at,
        r.ledger,
        r.amount,
        r.code,
        transfer_kind(r.flags),
        account_name(r.debit_code, r.debit_owner),
        account_name(r.credit_code, r.credit_owner),
        r.rider_id,
        r.key,
    )


# -- export ---------------------------------------------------------------------------------------

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
    query = transfers_query().order_by(x.id)
    if since is not None:
        query = query.where(x.created_at >= since)
    if until is not None:
        query = query.where(x.created_at < until)
    for r in stream(db, query):
        is_unit = r.ledger in _UNITS
        yield (
            r.id,
            r.created_at.isoformat(),
            r.ledger,
            r.amount,
            "" if is_unit else r.ledger,
            r.ledger if is_unit else "",
            r.code,
            transfer_kind(r.flags),
            account_name(r.debit_code, r.debit_owner),
            account_name(r.credit_code, r.credit_owner),
            r.rider_id or "",
            r.actor,
            r.memo,
            r.key,
        )
