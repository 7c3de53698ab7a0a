"""The ledger transfers of the swap path: the pending hold an offer places, its release, and the
R5 charge of a return (post the hold, take the rest from the free allowance, bill or owe what is
beyond). Every transfer's key derives from the station event, so a repeat posts nothing twice."""

from __future__ import annotations

from dataclasses import dataclass

from swapd.domain.charge import split_for_plan
from swapd.domain.plans import Plan
from swapd.ledger.model import AccountCode, TransferCode, TransferFlags, TransferRequest
from swapd.services.money import move, recognise, rider_accounts
from swapd.store.database import Tx


def hold(tx: Tx, key: str, rider_id: str, plan: Plan, units: int) -> int | None:
    if units <= 0:
        return None
    accounts = rider_accounts(tx.book, rider_id, plan)
    consumed = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_CONSUMED)
    transfer = tx.book.transfer(
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


def release(tx: Tx, key: str, hold_transfer_id: int | None, rider_id: str) -> None:
    if hold_transfer_id is None or tx.book.is_resolved(hold_transfer_id):
        return
    pending = tx.book.transfer_by_id(hold_transfer_id)
    assert pending is not None, "a hold names a transfer that exists"
    tx.book.transfer(
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


@dataclass(frozen=True, slots=True)
class Charge:
    usage_units: int
    charged_units: int
    beyond_units: int
    revenue_minor: int
    overage_minor: int


def post_charge(
    tx: Tx,
    key: str,
    rider_id: str,
    plan: Plan,
    held_units: int,
    hold_transfer_id: int | None,
    usage_units: int,
) -> Charge:
    """R5: post the usage against the hold, take any rest from the free allowance, and bill
    what is beyond it as overage (subscriptions) or owe it (overdrawn, settled by a top-up).
    ``held_units`` is what the pending hold ``hold_transfer_id`` covers (0 without one)."""
    accounts = rider_accounts(tx.book, rider_id, plan)
    split = split_for_plan(
        plan, usage_units, held_units=held_units, available_units=accounts.allowance.available
    )
    from_hold, beyond = split.from_hold_units, split.beyond_units
    revenue = recognise(tx.book, f"{key}:revenue", rider_id, plan, split.charged_units)
    consumed = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_CONSUMED)
    if hold_transfer_id is not None:
        pending = tx.book.transfer_by_id(hold_transfer_id)
        assert pending is not None, "a hold names a transfer that exists"
        flags = TransferFlags.POST_PENDING if from_hold > 0 else TransferFlags.VOID_PENDING
        tx.book.transfer(
            TransferRequest(
                key=f"{key}:post",
                ledger=plan.unit.value,
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                amount=from_hold if from_hold > 0 else pending.amount,
                code=TransferCode.USAGE if from_hold > 0 else TransferCode.RELEASE,
                flags=flags,
                pending_id=hold_transfer_id,
                rider_id=rider_id,
            )
        )
    move(
        tx.book,
        f"{key}:usage",
        accounts.allowance,
        consumed,
        split.from_free_units,
        TransferCode.USAGE,
        rider_id=rider_id,
    )
    if beyond > 0:
        if split.overage_billed:
            issued = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_ISSUED)
            move(
                tx.book,
                f"{key}:overage",
                issued,
                consumed,
                beyond,
                TransferCode.OVERAGE,
                rider_id=rider_id,
            )
            revenue_account = tx.book.account(plan.currency, AccountCode.REVENUE)
            move(
                tx.book,
                f"{key}:overage:money",
                accounts.receivable,
                revenue_account,
                split.overage_minor,
                TransferCode.OVERAGE,
                rider_id=rider_id,
            )
        else:
            move(
                tx.book,
                f"{key}:overdrawn",
                accounts.overdrawn,
                consumed,
                beyond,
                TransferCode.OVERDRAWN,
                rider_id=rider_id,
            )
    return Charge(usage_units, split.charged_units, beyond, revenue, split.overage_minor)
