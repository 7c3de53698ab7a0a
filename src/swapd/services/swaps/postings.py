"""The ledger transfers of the swap path: the pending hold an offer places, its release, and the
R5 charge of a return (post the hold, take the rest from the free allowance, bill or owe what is
beyond). Every transfer's key derives from the station event, so a repeat posts nothing twice."""

from __future__ import annotations

from swapd.domain.charge import ChargeSplit
from swapd.domain.plans import Plan
from swapd.ledger.model import Account, AccountCode, TransferCode, TransferFlags, TransferRequest
from swapd.services.money import RiderAccounts, move, recognise, rider_accounts
from swapd.services.ports import UnitOfWork


def hold(uow: UnitOfWork, key: str, rider_id: str, plan: Plan, units: int) -> int | None:
    if units <= 0:
        return None
    accounts = rider_accounts(uow.book, rider_id, plan)
    consumed = uow.book.account(plan.unit.value, AccountCode.ALLOWANCE_CONSUMED)
    transfer = uow.book.transfer(
        TransferRequest(
            key=f"{key}:hold",
            ledger=plan.unit.value,
            debit_account_id=accounts.allowance.id,
            credit_account_id=consumed.id,
            amount=units,
            code=TransferCode.HOLD,
            flags=TransferFlags.PENDING,
            rider_id=rider_id,
        )
    )
    return transfer.id


def release(uow: UnitOfWork, key: str, hold_transfer_id: int | None, rider_id: str | None) -> None:
    if hold_transfer_id is None or uow.book.is_resolved(hold_transfer_id):
        return
    pending = uow.book.transfer_by_id(hold_transfer_id)
    assert pending is not None, "a hold names a transfer that exists"
    uow.book.transfer(
        TransferRequest(
            key=f"{key}:release",
            ledger=pending.ledger,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount,
            code=TransferCode.RELEASE,
            flags=TransferFlags.VOID_PENDING,
            pending_id=hold_transfer_id,
            rider_id=rider_id,
        )
    )


def post_charge(
    uow: UnitOfWork,
    key: str,
    rider_id: str,
    plan: Plan,
    accounts: RiderAccounts,
    split: ChargeSplit,
    hold_transfer_id: int | None,
) -> int:
    """R5: post a return's ``split``: the usage against the possession's pending hold
    ``hold_transfer_id`` (None without one; voided when nothing is taken from it), the rest from the
    free allowance, and what is beyond it as overage (billed) or overdrawn (owed, settled by a
    top-up). ``accounts`` are the rider's. Returns the prepaid money recognised as revenue."""
    # The prepaid money is earned before its units leave the allowance (money.recognise).
    revenue_minor = recognise(uow.book, f"{key}:revenue", rider_id, plan, split.charged_units)
    consumed = uow.book.account(plan.unit.value, AccountCode.ALLOWANCE_CONSUMED)
    if hold_transfer_id is not None:
        _resolve_hold(uow, key, rider_id, plan, hold_transfer_id, split.from_hold_units)
    move(
        uow.book,
        f"{key}:usage",
        accounts.allowance,
        consumed,
        split.from_free_units,
        TransferCode.USAGE,
        rider_id=rider_id,
    )
    if split.beyond_units > 0:
        _post_beyond(uow, key, rider_id, plan, accounts, consumed, split)
    return revenue_minor


def _resolve_hold(
    uow: UnitOfWork, key: str, rider_id: str, plan: Plan, hold_transfer_id: int, from_hold_units: int
) -> None:
    """Post ``from_hold_units`` of the pending hold, or void all of it when that is 0."""
    pending = uow.book.transfer_by_id(hold_transfer_id)
    assert pending is not None, "a hold names a transfer that exists"
    posting = from_hold_units > 0
    uow.book.transfer(
        TransferRequest(
            key=f"{key}:post",
            ledger=plan.unit.value,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=from_hold_units if posting else pending.amount,
            code=TransferCode.USAGE if posting else TransferCode.RELEASE,
            flags=TransferFlags.POST_PENDING if posting else TransferFlags.VOID_PENDING,
            pending_id=hold_transfer_id,
            rider_id=rider_id,
        )
    )


def _post_beyond(
    uow: UnitOfWork,
    key: str,
    rider_id: str,
    plan: Plan,
    accounts: RiderAccounts,
    consumed: Account,
    split: ChargeSplit,
) -> None:
    """The units used beyond the allowance: billed as overage at the plan's price, or owed."""
    beyond = split.beyond_units
    if not split.overage_billed:
        move(
            uow.book,
            f"{key}:overdrawn",
            accounts.overdrawn,
            consumed,
            beyond,
            TransferCode.OVERDRAWN,
            rider_id=rider_id,
        )
        return
    issued = uow.book.account(plan.unit.value, AccountCode.ALLOWANCE_ISSUED)
    move(uow.book, f"{key}:overage", issued, consumed, beyond, TransferCode.OVERAGE, rider_id=rider_id)
    revenue_account = uow.book.account(plan.currency, AccountCode.REVENUE)
    move(
        uow.book,
        f"{key}:overage:money",
        accounts.receivable,
        revenue_account,
        split.overage_minor,
        TransferCode.OVERAGE,
        rider_id=rider_id,
    )
