"""Reconciliation: recompute every balance from the transfers and compare with the cached ones.

Runs as a handful of aggregate queries, so its cost grows with the number of transfers but not
with round trips. Everything it finds is reported; nothing is repaired. A balance is what the
transfers still stored add up to plus the account's checkpoint (``ledger_checkpoints``: what
``swapd archive`` took out with the months it archived).

It reads what is stored, not what should be: a column that is not an integer, or is outside its
bound (a float or a text that SQLite kept in an integer column, a database written before the
schema's CHECK constraints), is a problem in the report, not a reason to fail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa

from swapd.domain.quantities import MAX_ACCOUNT_COLUMN_AMOUNT, MAX_TRANSFER_AMOUNT
from swapd.ledger.model import AccountFlags, TransferFlags
from swapd.store.schema import accounts, ledger_checkpoints, transfer_keys, transfers

COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@dataclass
class LedgerTotals:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def balanced(self) -> bool:
        return self.debits_posted == self.credits_posted and self.debits_pending == self.credits_pending


@dataclass
class CheckReport:
    accounts: int = 0
    transfers: int = 0
    ledgers: dict[str, LedgerTotals] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def out_of_bounds(value: object, low: int, high: int) -> str | None:
    """What is wrong with a stored amount that should be an integer in ``low..high``, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{value!r} is not an integer"
    if not low <= value <= high:
        return f"{value:,} is outside {low:,}..{high:,}"
    return None


def _integer(connection: sa.Connection, column: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """The rows whose ``column`` holds an integer: SQLite keeps whatever it is given in an integer
    column that cannot take it (a float past 64 bits, a text); PostgreSQL's bigint cannot."""
    if connection.dialect.name == "sqlite":
        return sa.func.typeof(column) == "integer"
    return sa.true()


def _sum_by(
    connection: sa.Connection, column: sa.ColumnElement[int], where: sa.ColumnElement[bool]
) -> dict[int, int]:
    where = sa.and_(where, _integer(connection, transfers.c.amount))
    query = sa.select(column, sa.func.sum(transfers.c.amount)).where(where).group_by(column)
    try:
        return {int(account_id): int(total) for account_id, total in connection.execute(query)}
    except sa.exc.OperationalError as error:
        # SQLite's SUM fails rather than leave 64 bits; only a ledger past its bounds gets here,
        # so add its amounts up here instead (slower, exact) and let the comparisons report it.
        if "integer overflow" not in str(error.orig):
            raise
    totals: dict[int, int] = defaultdict(int)
    for account_id, amount in connection.execute(sa.select(column, transfers.c.amount).where(where)):
        totals[int(account_id)] += int(amount)
    return dict(totals)


def check_ledger(connection: sa.Connection) -> CheckReport:
    report = CheckReport()
    flags = transfers.c.flags
    posted = sa.or_(flags == int(TransferFlags.NONE), flags == int(TransferFlags.POST_PENDING))
    # A database from before the key tables (revision 0013) is checked as it is: ledger check
    # reads a database it does not migrate.
    keyed = sa.inspect(connection).has_table(transfer_keys.name)
    # Resolved or not is read from transfer_keys: a resolution whose month was archived still
    # resolves (archived months hold no open hold: swapd archive refuses them).
    resolutions = transfers.alias("resolution")
    resolved = (
        sa.exists().where(transfer_keys.c.resolves_id == transfers.c.id)
        if keyed
        else sa.exists().where(resolutions.c.pending_id == transfers.c.id)
    )
    open_pending = sa.and_(flags == int(TransferFlags.PENDING), ~resolved)
    recomputed: dict[str, dict[int, int]] = {
        "debits_posted": _sum_by(connection, transfers.c.debit_account_id, posted),
        "credits_posted": _sum_by(connection, transfers.c.credit_account_id, posted),
        "debits_pending": _sum_by(connection, transfers.c.debit_account_id, open_pending),
        "credits_pending": _sum_by(connection, transfers.c.credit_account_id, open_pending),
    }
    # What swapd archive took out of transfers, per account (posted only).
    checkpoints = connection.execute(sa.select(ledger_checkpoints)).all() if keyed else []
    for row in checkpoints:
        for column in ("debits_posted", "credits_posted"):
            sums = recomputed[column]
            sums[row.account_id] = sums.get(row.account_id, 0) + int(getattr(row, column))
    report.transfers = int(
        connection.execute(sa.select(sa.func.count()).select_from(transfers)).scalar_one()
    )
    totals: dict[str, LedgerTotals] = defaultdict(LedgerTotals)
    for row in connection.execute(sa.select(accounts).order_by(accounts.c.id)):
        report.accounts += 1
        name = f"account {row.id} ({row.code} {row.owner or 'operator'} {row.ledger})"
        values = {column: recomputed[column].get(row.id, 0) for column in COLUMNS}
        for column in COLUMNS:
            cached = getattr(row, column)
            wrong = out_of_bounds(cached, 0, MAX_ACCOUNT_COLUMN_AMOUNT)
            if wrong is not None:
                report.problems.append(f"{name}: {column} {wrong}")
            elif (wrong := out_of_bounds(values[column], 0, MAX_ACCOUNT_COLUMN_AMOUNT)) is not None:
                report.problems.append(f"{name}: {column} from transfers {wrong}")
            if cached != values[column]:
                report.problems.append(
                    f"{name}: cached {column} {cached} != {values[column]} from transfers"
                )
        ledger = totals[row.ledger]
        for column in COLUMNS:
            setattr(ledger, column, getattr(ledger, column) + values[column])
        account_flags = AccountFlags(row.flags)
        if (
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS in account_flags
            and values["debits_posted"] + values["debits_pending"] > values["credits_posted"]
        ):
            report.problems.append(f"{name}: debits exceed credits (balance below zero)")
        if (
            AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS in account_flags
            and values["credits_posted"] + values["credits_pending"] > values["debits_posted"]
        ):
            report.problems.append(f"{name}: credits exceed debits (balance below zero)")
    report.ledgers = dict(sorted(totals.items()))
    for ledger_name, ledger in report.ledgers.items():
        if not ledger.balanced:
            report.problems.append(f"ledger {ledger_name} does not sum to zero: {ledger}")
    report.problems.extend(_transfer_problems(connection, keyed=keyed))
    return report


def _transfer_problems(connection: sa.Connection, *, keyed: bool) -> list[str]:
    """Structural rules each transfer must keep (the ledger enforces them; this proves it)."""
    amount = transfers.c.amount
    bad_amounts = connection.execute(
        sa.select(transfers.c.id, amount)
        .where(sa.or_(sa.not_(_integer(connection, amount)), amount < 1, amount > MAX_TRANSFER_AMOUNT))
        .order_by(transfers.c.id)
    )
    problems = [
        f"transfer {i}: amount {out_of_bounds(value, 1, MAX_TRANSFER_AMOUNT)}"
        for i, value in bad_amounts
    ]
    debit, credit = accounts.alias("debit"), accounts.alias("credit")
    wrong_ledger = connection.execute(
        sa.select(transfers.c.id)
        .join(debit, debit.c.id == transfers.c.debit_account_id)
        .join(credit, credit.c.id == transfers.c.credit_account_id)
        .where(sa.or_(debit.c.ledger != transfers.c.ledger, credit.c.ledger != transfers.c.ledger))
    ).scalars()
    problems += [f"transfer {i}: accounts are on another ledger" for i in wrong_ledger]
    pending = transfers.alias("pending")
    bad_resolution = connection.execute(
        sa.select(
            transfers.c.id, transfers.c.flags, transfers.c.amount, pending.c.amount, pending.c.flags
        )
        .join(pending, pending.c.id == transfers.c.pending_id)
        .where(
            sa.or_(
                pending.c.flags != int(TransferFlags.PENDING),
                pending.c.debit_account_id != transfers.c.debit_account_id,
                pending.c.credit_account_id != transfers.c.credit_account_id,
                transfers.c.amount > pending.c.amount,
                sa.and_(
                    transfers.c.flags == int(TransferFlags.VOID_PENDING),
                    transfers.c.amount != pending.c.amount,
                ),
            )
        )
    )
    problems += [
        f"transfer {r[0]}: does not match the pending transfer it resolves" for r in bad_resolution
    ]
    unresolvable = connection.execute(
        sa.select(transfers.c.id).where(
            transfers.c.flags.in_([int(TransferFlags.POST_PENDING), int(TransferFlags.VOID_PENDING)]),
            transfers.c.pending_id.is_(None),
        )
    ).scalars()
    problems += [f"transfer {i}: post or void without a pending transfer" for i in unresolvable]
    if not keyed:
        return problems
    k = transfer_keys.c
    unkeyed = connection.execute(
        sa.select(transfers.c.id)
        .outerjoin(transfer_keys, k.id == transfers.c.id)
        .where(
            sa.or_(
                k.id.is_(None),
                k.key != transfers.c.key,
                k.created_at != transfers.c.created_at,
                sa.func.coalesce(k.resolves_id, 0) != sa.func.coalesce(transfers.c.pending_id, 0),
            )
        )
        .order_by(transfers.c.id)
        .limit(100)
    ).scalars()
    problems += [f"transfer {i}: does not match its row in transfer_keys" for i in unkeyed]
    return problems
