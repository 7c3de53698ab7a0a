"""Money in and out: top-ups (R1), subscriptions and their cycles, refunds, manual adjustments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from swapd.domain.errors import Conflict, InvalidInput, NotFound
from swapd.domain.plans import Plan, carry_over_units, first_cycle, following_cycle
from swapd.domain.quantities import (
    MAX_PAYMENT_MINOR,
    MAX_TRANSFER_AMOUNT,
    ceil_div,
    require_positive_int,
)
from swapd.domain.riders import Rider
from swapd.ledger.model import AccountCode, TransferCode
from swapd.services.money import issue, move, recognise, rider_accounts
from swapd.services.ports import Transactions, UnitOfWork
from swapd.store import schema as t
from swapd.store.database import Database, Transactional, Tx

MAX_AMOUNT_MINOR = MAX_PAYMENT_MINOR  # one payment, refund or receivable payment (quantities)


@dataclass(frozen=True, slots=True)
class TopUp:
    rider_id: str
    amount_minor: int
    currency: str
    units: int
    unit: str
    repeated: bool  # True when this payment reference had been applied before


def _check_reference(value: object, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 120 or not value.isprintable():
        raise InvalidInput(f"{field} must be 1-120 printable characters, got {value!r}")
    return value


def _check_actor(actor: object) -> str:
    if not isinstance(actor, str) or not 1 <= len(actor) <= 80 or not actor.isprintable():
        raise InvalidInput(f"actor must be 1-80 printable characters, got {actor!r}")
    return actor


def _rider_and_plan(uow: UnitOfWork, rider_id: str) -> tuple[Rider, Plan]:
    locked = uow.repo.lock_riders([rider_id])
    rider = locked.get(rider_id)
    if rider is None:
        raise NotFound(f"unknown rider {rider_id}")
    plan = uow.repo.plan(rider.plan_id)
    assert plan is not None, "riders reference plans by foreign key"
    return rider, plan


def _check_amount(amount_minor: object) -> int:
    amount = require_positive_int(amount_minor, "amount_minor")
    if amount > MAX_AMOUNT_MINOR:
        raise InvalidInput(f"amount_minor {amount} is above the limit of {MAX_AMOUNT_MINOR}")
    return amount


def top_up(
    db: Transactions, rider_id: str, amount_minor: int, payment_ref: str, *, actor: str = "payments"
) -> TopUp:
    """R1: a confirmed payment becomes allowance. The payment reference makes it idempotent."""
    amount = _check_amount(amount_minor)
    _check_reference(payment_ref, "payment reference")

    def work(uow: UnitOfWork) -> TopUp:
        _rider, plan = _rider_and_plan(uow, rider_id)
        units = plan.allowance_for_payment(amount)
        key = f"topup:{payment_ref}"
        previous = uow.book.find(f"{key}:money")
        if previous is not None:
            if previous.amount != amount or previous.rider_id != rider_id:
                raise Conflict(
                    f"payment {payment_ref} was applied already with a different amount or rider"
                )
            return TopUp(rider_id, amount, plan.currency, units, plan.unit.value, repeated=True)
        issue(uow.book, key, rider_id, plan, amount, units, TransferCode.TOP_UP, actor=actor)
        return TopUp(rider_id, amount, plan.currency, units, plan.unit.value, repeated=False)

    return db.write(work)


def subscribe(db: Transactional, rider_id: str, payment_ref: str, *, actor: str = "payments") -> TopUp:
    """Start a subscription: the (pro-rated) first cycle's fee buys its included allowance."""
    _check_reference(payment_ref, "payment reference")

    def work(tx: Tx) -> TopUp:
        _rider, plan = _rider_and_plan(tx, rider_id)
        if not plan.is_subscription:
            raise Conflict(f"rider {rider_id} is on plan {plan.id}, which is not a subscription")
        row = tx.repo.execute(
            sa.select(t.subscriptions).where(t.subscriptions.c.rider_id == rider_id)
        ).first()
        key = f"sub:{rider_id}:1"
        if row is not None:
            first = tx.book.find(f"{key}:money")
            if first is not None and first.memo == payment_ref:
                return TopUp(rider_id, first.amount, plan.currency, 0, plan.unit.value, True)
            raise Conflict(f"rider {rider_id} is subscribed already")
        cycle = first_cycle(plan, tx.now)
        tx.repo.execute(
            sa.insert(t.subscriptions).values(
                rider_id=rider_id,
                plan_id=plan.id,
                cycle_no=1,
                cycle_start=cycle.start,
                cycle_end=cycle.end,
                carried_in_units=0,
                consumed_units=0,
            )
        )
        issue(
            tx.book,
            key,
            rider_id,
            plan,
            cycle.fee_minor,
            cycle.included_units,
            TransferCode.SUBSCRIPTION_FEE,
            actor=actor,
            memo=payment_ref,
        )
        return TopUp(
            rider_id,
            cycle.fee_minor,
            plan.currency,
            cycle.included_units,
            plan.unit.value,
            repeated=False,
        )

    return db.write(work)


@dataclass(frozen=True, slots=True)
class CycleClose:
    rider_id: str
    closed_cycle_no: int
    expired_units: int
    carried_units: int
    next_cycle_end: datetime
    fee_minor: int
    included_units: int
    repeated: bool = False  # True when this payment reference had closed the cycle before


def _amount_of(uow: UnitOfWork, key: str) -> int:
    found = uow.book.find(key)
    return 0 if found is None else found.amount


def _cycle_paid_by(tx: Tx, rider_id: str, plan: Plan, payment_ref: str) -> int | None:
    """The cycle whose fee this payment reference paid, if any."""
    row = tx.repo.execute(
        sa.select(t.transfers.c.key).where(
            t.transfers.c.rider_id == rider_id,
            t.transfers.c.code == TransferCode.SUBSCRIPTION_FEE.value,
            t.transfers.c.ledger == plan.currency,
            t.transfers.c.memo == payment_ref,
        )
    ).first()
    # Fee keys read "sub:{rider}:{cycle}:money"; rsplit keeps rider ids out of the way.
    return None if row is None else int(row.key.rsplit(":", 2)[1])


def close_cycle(db: Database, rider_id: str, payment_ref: str, *, actor: str = "billing") -> CycleClose:
    """End a subscription cycle: unused allowance carries one cycle at most, the rest expires
    (its prepaid money becomes revenue); then the next cycle's fee buys its included allowance."""
    _check_reference(payment_ref, "payment reference")

    def work(tx: Tx) -> CycleClose:
        _rider, plan = _rider_and_plan(tx, rider_id)
        sub = tx.repo.execute(
            sa.select(t.subscriptions).where(t.subscriptions.c.rider_id == rider_id)
        ).first()
        if sub is None:
            raise Conflict(f"rider {rider_id} has no subscription")
        paid = _cycle_paid_by(tx, rider_id, plan, payment_ref)
        if paid is not None:
            # A retried close changes nothing. A payment reference pays one cycle only: if
            # later cycles were closed since, the retry is refused rather than charged again.
            if paid != sub.cycle_no or paid == 1:
                raise Conflict(f"payment {payment_ref} paid cycle {paid} of rider {rider_id} already")
            closed = paid - 1
            return CycleClose(
                rider_id,
                closed,
                _amount_of(tx, f"sub:{rider_id}:{closed}:close:expiry"),
                sub.carried_in_units,
                sub.cycle_end,
                _amount_of(tx, f"sub:{rider_id}:{paid}:money"),
                _amount_of(tx, f"sub:{rider_id}:{paid}:units"),
                repeated=True,
            )
        if tx.now < sub.cycle_end:
            raise Conflict(
                f"cycle {sub.cycle_no} of rider {rider_id} runs until {sub.cycle_end.isoformat()}"
            )
        accounts = rider_accounts(tx.book, rider_id, plan)
        unused = accounts.allowance.available
        carried_left = min(max(0, sub.carried_in_units - sub.consumed_units), unused)
        carry = carry_over_units(plan, unused - carried_left)
        expire = unused - carry
        key = f"sub:{rider_id}:{sub.cycle_no}:close"
        if expire > 0:
            recognise(tx.book, f"{key}:revenue", rider_id, plan, expire, TransferCode.EXPIRY)
            withdrawn = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_WITHDRAWN)
            move(
                tx.book,
                f"{key}:expiry",
                accounts.allowance,
                withdrawn,
                expire,
                TransferCode.EXPIRY,
                rider_id=rider_id,
                actor=actor,
            )
        cycle = following_cycle(plan, sub.cycle_end)
        next_no = sub.cycle_no + 1
        issue(
            tx.book,
            f"sub:{rider_id}:{next_no}",
            rider_id,
            plan,
            cycle.fee_minor,
            cycle.included_units,
            TransferCode.SUBSCRIPTION_FEE,
            actor=actor,
            memo=payment_ref,
        )
        tx.repo.execute(
            sa.update(t.subscriptions)
            .where(t.subscriptions.c.rider_id == rider_id)
            .values(
                cycle_no=next_no,
                cycle_start=cycle.start,
                cycle_end=cycle.end,
                carried_in_units=carry,
                consumed_units=0,
            )
        )
        return CycleClose(
            rider_id, sub.cycle_no, expire, carry, cycle.end, cycle.fee_minor, cycle.included_units
        )

    return db.write(work)


@dataclass(frozen=True, slots=True)
class Refund:
    rider_id: str
    amount_minor: int
    units: int
    repeated: bool


def refund(
    db: Transactions, rider_id: str, amount_minor: int, *, reason: str, actor: str, key: str
) -> Refund:
    """Pay prepaid money back; the allowance it bought leaves with it (rounded against the rider,
    so a refunded rider never keeps use they got their money back for)."""
    amount = _check_amount(amount_minor)
    _check_reference(reason, "reason")
    _check_actor(actor)
    _check_reference(key, "idempotency key")

    def work(uow: UnitOfWork) -> Refund:
        _rider, plan = _rider_and_plan(uow, rider_id)
        base = f"refund:{key}"
        previous = uow.book.find(f"{base}:money")
        if previous is not None:
            if previous.amount != amount or previous.rider_id != rider_id:
                raise Conflict(f"refund key {key} was used already for a different refund")
            return Refund(rider_id, amount, _amount_of(uow, f"{base}:units"), True)
        accounts = rider_accounts(uow.book, rider_id, plan)
        liability = accounts.prepaid.credit_balance
        if amount > liability:
            raise Conflict(
                f"rider {rider_id} has {liability} minor units of prepaid money, not {amount}"
            )
        total_units = accounts.allowance.credit_balance
        units = total_units if amount == liability else ceil_div(total_units * amount, liability)
        if units == total_units and amount != liability:
            # Rounding against the rider took every unit: prepaid money would be left over
            # with no allowance to spend it on. Only a refund of everything may do that.
            raise Conflict(
                f"a refund of {amount} would take all {total_units} {plan.unit} of rider "
                f"{rider_id}; refund all {liability} minor units instead"
            )
        if units > accounts.allowance.available:
            raise Conflict(
                f"{units} {plan.unit} would leave with the refund but only "
                f"{accounts.allowance.available} are free (the rest is held by packs out)"
            )
        cash = uow.book.account(plan.currency, AccountCode.CASH)
        withdrawn = uow.book.account(plan.unit.value, AccountCode.ALLOWANCE_WITHDRAWN)
        move(
            uow.book,
            f"{base}:money",
            accounts.prepaid,
            cash,
            amount,
            TransferCode.REFUND,
            rider_id=rider_id,
            actor=actor,
            memo=reason,
        )
        move(
            uow.book,
            f"{base}:units",
            accounts.allowance,
            withdrawn,
            units,
            TransferCode.REFUND,
            rider_id=rider_id,
            actor=actor,
            memo=reason,
        )
        return Refund(rider_id, amount, units, False)

    return db.write(work)


@dataclass(frozen=True, slots=True)
class Adjustment:
    rider_id: str
    units: int
    unit: str
    repeated: bool


def adjust(
    db: Transactions, rider_id: str, units: int, *, reason: str, actor: str, key: str
) -> Adjustment:
    """A manual correction of the allowance, positive (goodwill) or negative, with who and why."""
    if isinstance(units, bool) or not isinstance(units, int) or units == 0:
        raise InvalidInput(f"units must be a non-zero integer, got {units!r}")
    if abs(units) > MAX_TRANSFER_AMOUNT:
        raise InvalidInput(f"adjustment of {units} is above the limit of {MAX_TRANSFER_AMOUNT}")
    _check_reference(reason, "reason")
    _check_actor(actor)
    _check_reference(key, "idempotency key")

    def work(uow: UnitOfWork) -> Adjustment:
        _rider, plan = _rider_and_plan(uow, rider_id)
        base = f"adjust:{key}"
        previous = uow.book.find(f"{base}:units")
        if previous is not None:
            accounts = rider_accounts(uow.book, rider_id, plan)
            credited = previous.credit_account_id == accounts.allowance.id
            signed = previous.amount if credited else -previous.amount
            if signed != units or previous.rider_id != rider_id:
                raise Conflict(f"adjustment key {key} was used already for a different adjustment")
            return Adjustment(rider_id, units, plan.unit.value, True)
        accounts = rider_accounts(uow.book, rider_id, plan)
        unit = plan.unit.value
        if units > 0:
            issued = uow.book.account(unit, AccountCode.ALLOWANCE_ISSUED)
            move(
                uow.book,
                f"{base}:units",
                issued,
                accounts.allowance,
                units,
                TransferCode.ADJUSTMENT,
                rider_id=rider_id,
                actor=actor,
                memo=reason,
            )
        else:
            if -units > accounts.allowance.available:
                raise Conflict(
                    f"rider {rider_id} has {accounts.allowance.available} {unit} free, "
                    f"cannot take away {-units}"
                )
            # The prepaid money of the units taken away is earned, so that money and
            # allowance still reach zero together.
            recognise(
                uow.book,
                f"{base}:revenue",
                rider_id,
                plan,
                -units,
                TransferCode.ADJUSTMENT,
                actor=actor,
                memo=reason,
            )
            withdrawn = uow.book.account(unit, AccountCode.ALLOWANCE_WITHDRAWN)
            move(
                uow.book,
                f"{base}:units",
                accounts.allowance,
                withdrawn,
                -units,
                TransferCode.ADJUSTMENT,
                rider_id=rider_id,
                actor=actor,
                memo=reason,
            )
        return Adjustment(rider_id, units, unit, False)

    return db.write(work)


@dataclass(frozen=True, slots=True)
class ReceivablePayment:
    rider_id: str
    payment_ref: str
    amount_minor: int
    currency: str
    owed_minor: int  # what the rider still owes after this payment, as of now
    repeated: bool  # True when this payment reference had been applied before


def pay_receivable(
    db: Transactions, rider_id: str, amount_minor: int, payment_ref: str, *, actor: str = "payments"
) -> ReceivablePayment:
    """Money received against overage the rider owes, never more than is owed. The payment
    reference makes it idempotent: the same reference and amount again changes nothing."""
    amount = _check_amount(amount_minor)
    _check_reference(payment_ref, "payment reference")
    _check_actor(actor)

    def work(uow: UnitOfWork) -> ReceivablePayment:
        _rider, plan = _rider_and_plan(uow, rider_id)
        accounts = rider_accounts(uow.book, rider_id, plan)
        key = f"receivable:{payment_ref}"
        previous = uow.book.find(key)
        if previous is not None:
            if previous.amount != amount or previous.rider_id != rider_id:
                raise Conflict(
                    f"payment {payment_ref} was applied already with a different amount or rider"
                )
        else:
            owed = accounts.receivable.debit_balance
            if amount > owed:
                raise Conflict(f"rider {rider_id} owes {owed} minor units, not {amount}")
            cash = uow.book.account(plan.currency, AccountCode.CASH)
            move(
                uow.book,
                key,
                cash,
                accounts.receivable,
                amount,
                TransferCode.PAYMENT,
                rider_id=rider_id,
                actor=actor,
            )
        owed_after = uow.book.account(plan.currency, AccountCode.RECEIVABLE, rider_id).debit_balance
        return ReceivablePayment(
            rider_id, payment_ref, amount, plan.currency, owed_after, repeated=previous is not None
        )

    return db.write(work)
