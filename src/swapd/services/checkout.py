"""Paying through a provider: open a pending payment and its checkout, then credit the allowance
when, and only when, the provider's signed webhook says the money arrived.

The credit (services/payments.top_up or subscribe, keyed by the payment id), the payment's new
status and the record of the webhook event are written in one transaction: a replayed event finds
its record and changes nothing, and a crash between them leaves nothing half done. An event whose
amount or currency differs from the stored payment fails the payment and credits nothing. An event
is about a payment only when every reference it carries (the payment id, the provider's checkout
reference) names that payment: an event naming one payment with another's reference credits
nothing and changes no payment.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog

from swapd.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from swapd.domain.plans import Plan, first_cycle
from swapd.domain.quantities import require_positive_int
from swapd.ledger.model import LedgerError
from swapd.payments.provider import (
    CheckoutRequest,
    EventStatus,
    PaymentProvider,
    PaymentStatus,
    Purpose,
    VerifiedEvent,
)
from swapd.services import audit, payments
from swapd.store import schema as t
from swapd.store.database import Database, Tx

T = TypeVar("T")
log = structlog.get_logger(__name__)

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    rider_id: str
    provider: str
    provider_ref: str | None
    purpose: Purpose
    amount_minor: int
    currency: str
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    credited_at: datetime | None


@dataclass(frozen=True, slots=True)
class Started:
    payment: Payment
    checkout_url: str | None  # None once the payment is no longer pending


class Outcome(enum.StrEnum):
    """What a webhook did. Every outcome but a refused signature is answered 2xx, so the provider
    stops resending events that were handled, or that can never be."""

    CREDITED = "credited"
    DUPLICATE = "duplicate"  # this event was handled before: nothing changed
    UNCHANGED = "unchanged"  # the payment was settled already, or the event says nothing new
    FAILED = "failed"
    CANCELED = "canceled"
    MISMATCH = "mismatch"  # amount or currency differ from the payment: failed, nothing credited
    # The event's provider reference is not the one of the payment it names: nothing credited,
    # no payment changed (the event may be aimed at another rider's payment), audit-logged.
    REF_MISMATCH = "ref_mismatch"
    NOT_CREDITED = "not_credited"  # paid, but the ledger refused the credit (see the audit log)
    UNKNOWN_PAYMENT = "unknown_payment"  # not a payment swapd made (recorded, ignored)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    outcome: Outcome
    payment_id: str | None


def payment_id_for(key: str) -> str:
    """The payment id is derived from the caller's idempotency key, so two concurrent first
    attempts with one key race to insert the same row and end up with one payment."""
    return "pay_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _payment(row: sa.Row[Any]) -> Payment:
    m = row._mapping
    return Payment(
        id=m["id"],
        rider_id=m["rider_id"],
        provider=m["provider"],
        provider_ref=m["provider_ref"],
        purpose=Purpose(m["purpose"]),
        amount_minor=int(m["amount_minor"]),
        currency=m["currency"],
        status=PaymentStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        credited_at=m["credited_at"],
    )


def _select(tx: Tx, *where: sa.ColumnElement[bool], lock: bool = False) -> Payment | None:
    query = sa.select(t.payments).where(*where)
    if lock:
        query = query.with_for_update()
    row = tx.repo.execute(query).first()
    return None if row is None else _payment(row)


def _rider_plan(tx: Tx, rider_id: str) -> Plan:
    rider = tx.repo.rider(rider_id)
    if rider is None:
        raise NotFound(f"unknown rider {rider_id}")
    plan = tx.repo.plan(rider.plan_id)
    assert plan is not None, "riders reference plans by foreign key"
    return plan


# -- opening a payment -----------------------------------------------------------------------------


def _open(
    db: Database,
    payment_id: str,
    rider_id: str,
    provider: str,
    purpose: Purpose,
    quote: Callable[[Tx, Plan], int],
    amount_minor: int | None,
) -> Payment:
    """Insert a pending payment for ``quote``'s amount, or return the one this key made before."""

    def work(tx: Tx) -> Payment:
        existing = _select(tx, t.payments.c.id == payment_id)
        if existing is not None:
            same = (existing.rider_id, existing.purpose, existing.provider) == (
                rider_id,
                purpose,
                provider,
            )
            if not same or amount_minor not in (None, existing.amount_minor):
                raise Conflict("this idempotency key was used for a different payment")
            return existing
        plan = _rider_plan(tx, rider_id)
        amount = quote(tx, plan)
        tx.repo.execute(
            sa.insert(t.payments).values(
                id=payment_id,
                rider_id=rider_id,
                provider=provider,
                provider_ref=None,
                purpose=purpose.value,
                amount_minor=amount,
                currency=plan.currency,
                status=PaymentStatus.PENDING.value,
                created_at=tx.now,
                updated_at=tx.now,
                credited_at=None,
            )
        )
        found = _select(tx, t.payments.c.id == payment_id)
        assert found is not None
        return found

    return db.write(work)


def _attach_checkout(
    db: Database, provider: PaymentProvider, payment: Payment, site_url: str, return_url: str | None
) -> Started:
    if payment.status is not PaymentStatus.PENDING:
        return Started(payment, None)
    # Outside any transaction: the provider may be slow. It is idempotent per payment id, so a
    # retry after a failure here (or a concurrent first attempt) gets the same checkout.
    checkout = provider.create_checkout(
        CheckoutRequest(
            payment_id=payment.id,
            rider_id=payment.rider_id,
            purpose=payment.purpose,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            return_url=return_url,
            site_url=site_url,
        )
    )

    def save(tx: Tx) -> Payment:
        tx.repo.execute(
            sa.update(t.payments)
            .where(t.payments.c.id == payment.id, t.payments.c.provider_ref.is_(None))
            .values(provider_ref=checkout.provider_ref, updated_at=tx.now)
        )
        found = _select(tx, t.payments.c.id == payment.id)
        assert found is not None
        return found

    return Started(db.write(save), checkout.redirect_url)


def start_top_up(
    db: Database,
    provider: PaymentProvider,
    rider_id: str,
    amount_minor: int,
    *,
    key: str,
    site_url: str,
    return_url: str | None = None,
) -> Started:
    """A pending top-up in the rider's plan currency and the checkout to pay it. Refused up front
    when the amount would buy nothing, so that no rider pays for no allowance."""
    amount = require_positive_int(amount_minor, "amount_minor")
    if amount > payments.MAX_AMOUNT_MINOR:
        raise InvalidInput(f"amount_minor {amount} is above the limit of {payments.MAX_AMOUNT_MINOR}")

    def quote(_tx: Tx, plan: Plan) -> int:
        plan.allowance_for_payment(amount)  # raises for subscriptions and too-small amounts
        return amount

    payment = _open(db, payment_id_for(key), rider_id, provider.name, Purpose.TOP_UP, quote, amount)
    return _attach_checkout(db, provider, payment, site_url, return_url)


def start_subscription(
    db: Database,
    provider: PaymentProvider,
    rider_id: str,
    *,
    key: str,
    site_url: str,
    return_url: str | None = None,
    plan_id: str | None = None,
) -> Started:
    """A pending payment of the first cycle's fee of the rider's subscription plan, pro-rated as of
    now; the webhook credits exactly this quote (see _credit)."""

    def quote(tx: Tx, plan: Plan) -> int:
        if plan_id is not None and plan_id != plan.id:
            raise Conflict(f"rider {rider_id} is on plan {plan.id}; changing plans is not offered here")
        if not plan.is_subscription:
            raise Conflict(f"plan {plan.id} is not a subscription: top up instead")
        subscribed = tx.repo.execute(
            sa.select(t.subscriptions.c.rider_id).where(t.subscriptions.c.rider_id == rider_id)
        ).first()
        if subscribed is not None:
            raise Conflict(f"rider {rider_id} is subscribed already")
        return first_cycle(plan, tx.now).fee_minor

    payment = _open(db, payment_id_for(key), rider_id, provider.name, Purpose.SUBSCRIPTION, quote, None)
    return _attach_checkout(db, provider, payment, site_url, return_url)


# -- reading ---------------------------------------------------------------------------------------


def payments_of(db: Database, rider_id: str, *, limit: int = 50) -> list[Payment]:
    """The rider's payments, newest first."""
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        sa.select(t.payments)
        .where(t.payments.c.rider_id == rider_id)
        .order_by(t.payments.c.created_at.desc(), t.payments.c.id.desc())
        .limit(limit)
    )
    return db.read(lambda tx: [_payment(r) for r in tx.repo.execute(query)])


def payment_of(db: Database, rider_id: str, payment_id: str) -> Payment:
    """One payment of this rider; another rider's is as unknown as a made-up id."""
    found = db.read(
        lambda tx: _select(tx, t.payments.c.id == payment_id, t.payments.c.rider_id == rider_id)
    )
    if found is None:
        raise NotFound(f"unknown payment {payment_id}")
    return found


def payment(db: Database, payment_id: str) -> Payment:
    found = db.read(lambda tx: _select(tx, t.payments.c.id == payment_id))
    if found is None:
        raise NotFound(f"unknown payment {payment_id}")
    return found


# -- webhooks --------------------------------------------------------------------------------------


def _seen(tx: Tx, provider: str, event_id: str) -> bool:
    row = tx.repo.execute(
        sa.select(t.webhook_events.c.event_id).where(
            t.webhook_events.c.provider == provider, t.webhook_events.c.event_id == event_id
        )
    ).first()
    return row is not None


@dataclass(frozen=True, slots=True)
class _Crossed:
    """An event whose references name different payments, or a payment and nothing."""

    payment_id: str  # the payment the event names by id, else the one its reference belongs to
    stored_ref: str | None  # that payment's provider reference


def _find_locked(tx: Tx, provider: str, event: VerifiedEvent) -> Payment | _Crossed | None:
    """The event's payment, locked, its rider locked first (the order every rider write uses).

    Each reference the event carries must name that same payment: its id (from the metadata swapd
    attached to the checkout) and the provider's reference (stored when the checkout was made). A
    payment whose reference was never stored has had no checkout a rider could pay at.
    """
    by_id = by_ref = None
    if event.payment_id is not None:
        by_id = _select(tx, t.payments.c.provider == provider, t.payments.c.id == event.payment_id)
    if event.provider_ref is not None:
        by_ref = _select(
            tx, t.payments.c.provider == provider, t.payments.c.provider_ref == event.provider_ref
        )
    if event.payment_id is None or event.provider_ref is None:
        found = by_id or by_ref
    elif by_id is None and by_ref is None:
        found = None
    elif by_id is None or by_ref is None or by_id.id != by_ref.id:
        named = by_id or by_ref
        assert named is not None
        return _Crossed(named.id, named.provider_ref)
    else:
        found = by_id
    if found is None:
        return None
    tx.repo.lock_riders([found.rider_id])
    return _select(tx, t.payments.c.id == found.id, lock=True)


def _refuse_crossed(tx: Tx, provider: str, event: VerifiedEvent, crossed: _Crossed) -> WebhookOutcome:
    # The payment is left as it is: failing it would let whoever sent this cancel another
    # rider's payment.
    audit.record(
        tx,
        f"provider:{provider}",
        "payment.ref_mismatch",
        crossed.payment_id,
        "webhook names this payment with another provider reference; nothing credited",
        {
            "event_id": event.event_id,
            "event_payment_id": event.payment_id,
            "event_ref": event.provider_ref,
            "stored_ref": crossed.stored_ref,
        },
    )
    return WebhookOutcome(Outcome.REF_MISMATCH, event.payment_id or crossed.payment_id)


def _record_event(tx: Tx, provider: str, event: VerifiedEvent, payment_id: str | None) -> None:
    tx.repo.execute(
        sa.insert(t.webhook_events).values(
            provider=provider,
            event_id=event.event_id,
            kind=event.kind,
            payment_id=payment_id,
            received_at=tx.now,
        )
    )


def _set_status(tx: Tx, payment_id: str, status: PaymentStatus, *, credited: bool = False) -> None:
    values: dict[str, object] = {"status": status.value, "updated_at": tx.now}
    if credited:
        values["credited_at"] = tx.now
    tx.repo.execute(sa.update(t.payments).where(t.payments.c.id == payment_id).values(**values))


def _credit(db: Database, tx: Tx, payment: Payment, actor: str) -> None:
    if payment.purpose is Purpose.TOP_UP:
        payments.top_up(tx, payment.rider_id, payment.amount_minor, payment.id, actor=actor)
        return
    # subscribe() prices the first cycle as of its transaction's time; the rider was quoted (and
    # paid) the fee as of the payment's creation, so the cycle is priced and started then.
    quoted = dataclasses.replace(tx, now=payment.created_at)
    credited = payments.subscribe(quoted, payment.rider_id, payment.id, actor=actor)
    if credited.amount_minor != payment.amount_minor:
        raise Conflict(
            f"the first cycle now costs {credited.amount_minor} {credited.currency}, "
            f"not the {payment.amount_minor} paid"
        )


def _apply(db: Database, tx: Tx, provider: str, event: VerifiedEvent) -> WebhookOutcome:
    if _seen(tx, provider, event.event_id):
        return WebhookOutcome(Outcome.DUPLICATE, event.payment_id)
    payment = _find_locked(tx, provider, event)
    if isinstance(payment, _Crossed):
        _record_event(tx, provider, event, payment.payment_id)
        return _refuse_crossed(tx, provider, event, payment)
    _record_event(tx, provider, event, None if payment is None else payment.id)
    if payment is None:
        return WebhookOutcome(Outcome.UNKNOWN_PAYMENT, None)
    actor = f"provider:{provider}"
    if event.status is EventStatus.SUCCEEDED:
        if payment.status is PaymentStatus.SUCCEEDED:
            return WebhookOutcome(Outcome.UNCHANGED, payment.id)
        # A failed payment may still succeed: Stripe lets the rider retry a declined card within
        # one checkout. Only a confirmation of the exact amount and currency credits anything.
        paid = (event.amount_minor, event.currency)
        if paid != (payment.amount_minor, payment.currency):
            _set_status(tx, payment.id, PaymentStatus.FAILED)
            audit.record(
                tx,
                actor,
                "payment.mismatch",
                payment.id,
                "provider confirmed a different amount or currency; nothing credited",
                {
                    "event_id": event.event_id,
                    "expected": [payment.amount_minor, payment.currency],
                    "confirmed": list(paid),
                },
            )
            return WebhookOutcome(Outcome.MISMATCH, payment.id)
        _credit(db, tx, payment, actor)
        _set_status(tx, payment.id, PaymentStatus.SUCCEEDED, credited=True)
        return WebhookOutcome(Outcome.CREDITED, payment.id)
    if payment.status is not PaymentStatus.PENDING:
        return WebhookOutcome(Outcome.UNCHANGED, payment.id)
    if event.status is EventStatus.FAILED:
        _set_status(tx, payment.id, PaymentStatus.FAILED)
        return WebhookOutcome(Outcome.FAILED, payment.id)
    if event.status is EventStatus.CANCELED:
        _set_status(tx, payment.id, PaymentStatus.CANCELED)
        return WebhookOutcome(Outcome.CANCELED, payment.id)
    return WebhookOutcome(Outcome.UNCHANGED, payment.id)


def _not_credited(tx: Tx, provider: str, event: VerifiedEvent, reason: str) -> WebhookOutcome:
    """The provider took the money but the ledger refused the credit (subscribed meanwhile, plan
    changed): the payment fails and the audit log says why, for staff to refund it."""
    if _seen(tx, provider, event.event_id):
        return WebhookOutcome(Outcome.DUPLICATE, event.payment_id)
    payment = _find_locked(tx, provider, event)
    if isinstance(payment, _Crossed):
        _record_event(tx, provider, event, payment.payment_id)
        return _refuse_crossed(tx, provider, event, payment)
    _record_event(tx, provider, event, None if payment is None else payment.id)
    if payment is None:
        return WebhookOutcome(Outcome.UNKNOWN_PAYMENT, None)
    if payment.status is PaymentStatus.SUCCEEDED:
        return WebhookOutcome(Outcome.UNCHANGED, payment.id)
    _set_status(tx, payment.id, PaymentStatus.FAILED)
    audit.record(
        tx,
        f"provider:{provider}",
        "payment.not_credited",
        payment.id,
        f"paid but not credited, refund at the provider: {reason}"[:500],
        {"event_id": event.event_id, "amount_minor": payment.amount_minor, "currency": payment.currency},
    )
    return WebhookOutcome(Outcome.NOT_CREDITED, payment.id)


def handle_webhook(
    db: Database, provider: PaymentProvider, body: bytes, headers: Mapping[str, str]
) -> WebhookOutcome:
    """Verify a provider's webhook and apply it once. Raises WebhookRefused (nothing written)
    unless it is signed by the provider, recently."""
    event = provider.verify_webhook(body, headers)
    try:
        outcome = db.write(lambda tx: _apply(db, tx, provider.name, event))
    except (DomainError, LedgerError) as error:
        # The credit was refused and its transaction rolled back; record why in a new one.
        reason = error.message if isinstance(error, DomainError) else str(error)
        outcome = db.write(lambda tx: _not_credited(tx, provider.name, event, reason))
    log.info(
        "payment_webhook",
        provider=provider.name,
        event_id=event.event_id,
        kind=event.kind,
        outcome=outcome.outcome.value,
        payment_id=outcome.payment_id,
    )
    return outcome
