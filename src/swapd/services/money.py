"""The rider's accounts and the moves every money use case shares.

Revenue is recognised at the rider's weighted average price: consuming ``u`` of the ``U`` units on
the allowance earns ``u/U`` of the ``L`` prepaid money still held for the rider. So when the
allowance reaches zero the prepaid liability reaches exactly zero too, whatever rounding happened
on the way, and a unit granted for free (an adjustment) lowers the price of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from swapd.domain.plans import Plan
from swapd.domain.revenue import weighted_value
from swapd.ledger.model import OPERATOR, Account, AccountCode, Transfer, TransferCode, TransferRequest
from swapd.services.ports import LedgerBook


@dataclass(frozen=True, slots=True)
class RiderAccounts:
    allowance: Account
    overdrawn: Account
    prepaid: Account
    receivable: Account


def rider_accounts(book: LedgerBook, rider_id: str, plan: Plan) -> RiderAccounts:
    unit, currency = plan.unit.value, plan.currency
    names = (
        (unit, AccountCode.ALLOWANCE),
        (unit, AccountCode.OVERDRAWN),
        (currency, AccountCode.PREPAID),
        (currency, AccountCode.RECEIVABLE),
    )
    # One statement for the four, and for the two operator accounts a swap moves units and
    # money to (the hold's and the charge's other side).
    book.load(
        [
            *((ledger, code, rider_id) for ledger, code in names),
            (unit, AccountCode.ALLOWANCE_CONSUMED, OPERATOR),
            (currency, AccountCode.REVENUE, OPERATOR),
        ]
    )
    allowance, overdrawn, prepaid, receivable = (book.account(*name, rider_id) for name in names)
    return RiderAccounts(allowance, overdrawn, prepaid, receivable)


def move(
    book: LedgerBook,
    key: str,
    debit: Account,
    credit: Account,
    amount: int,
    code: TransferCode,
    *,
    rider_id: str | None,
    actor: str = "system",
    memo: str = "",
) -> Transfer | None:
    """A posted transfer; nothing for a zero amount (the ledger holds no empty transfers)."""
    if amount == 0:
        return None
    return book.transfer(
        TransferRequest(
            key=key,
            ledger=debit.ledger,
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=amount,
            code=code,
            rider_id=rider_id,
            actor=actor,
            memo=memo,
        )
    )


def value_of_units(book: LedgerBook, rider_id: str, plan: Plan, units: int) -> int:
    """The prepaid money that ``units`` of the rider's posted allowance stand for."""
    accounts = rider_accounts(book, rider_id, plan)
    return weighted_value(accounts.prepaid.credit_balance, accounts.allowance.credit_balance, units)


def recognise(
    book: LedgerBook,
    key: str,
    rider_id: str,
    plan: Plan,
    units: int,
    code: TransferCode = TransferCode.REVENUE,
    *,
    actor: str = "system",
    memo: str = "",
) -> int:
    """Earn the prepaid money of ``units`` about to leave the allowance. Call before they leave."""
    amount = value_of_units(book, rider_id, plan, units)
    prepaid = book.account(plan.currency, AccountCode.PREPAID, rider_id)
    revenue = book.account(plan.currency, AccountCode.REVENUE)
    move(book, key, prepaid, revenue, amount, code, rider_id=rider_id, actor=actor, memo=memo)
    return amount


def issue(
    book: LedgerBook,
    key: str,
    rider_id: str,
    plan: Plan,
    amount_minor: int,
    units: int,
    code: TransferCode,
    *,
    actor: str,
    memo: str = "",
) -> None:
    """Money in from a payment provider, and the allowance it buys (R1)."""
    accounts = rider_accounts(book, rider_id, plan)
    cash = book.account(plan.currency, AccountCode.CASH)
    issued = book.account(plan.unit.value, AccountCode.ALLOWANCE_ISSUED)
    move(
        book,
        f"{key}:money",
        cash,
        accounts.prepaid,
        amount_minor,
        code,
        rider_id=rider_id,
        actor=actor,
        memo=memo,
    )
    move(
        book,
        f"{key}:units",
        issued,
        accounts.allowance,
        units,
        code,
        rider_id=rider_id,
        actor=actor,
        memo=memo,
    )
    settle_overdrawn(book, key, rider_id, plan, actor=actor)


def settle_overdrawn(book: LedgerBook, key: str, rider_id: str, plan: Plan, *, actor: str) -> int:
    """Pay off units used beyond the allowance out of newly available allowance."""
    accounts = rider_accounts(book, rider_id, plan)
    owed = accounts.overdrawn.debit_balance
    amount = min(owed, accounts.allowance.available)
    if amount <= 0:
        return 0
    recognise(book, f"{key}:settle:revenue", rider_id, plan, amount, actor=actor)
    move(
        book,
        f"{key}:settle",
        accounts.allowance,
        accounts.overdrawn,
        amount,
        TransferCode.SETTLE,
        rider_id=rider_id,
        actor=actor,
    )
    return amount
