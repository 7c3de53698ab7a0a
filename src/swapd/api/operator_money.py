"""Refunds and manual adjustments (admin only), payments of what riders owe (admin, operator) and
the audit log.

Money moves once per Idempotency-Key: the API stores and replays the first answer (deps.once),
and the ledger key underneath is derived from the same key, so that two concurrent first
attempts still move money once. A payment of what a rider owes is keyed by its payment reference
instead: the same payment entered twice, under two Idempotency-Keys, is still received once.
Each change and its audit row commit together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from swapd.api.deps import Admin, Db, IdempotencyKey, Operator, ReadDb, once, service_key
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX, AuditReader, Limit, Page, page_of
from swapd.domain.quantities import MAX_PAYMENT_MINOR, MAX_TRANSFER_AMOUNT
from swapd.readmodels import money
from swapd.services import audit, back_office

router = APIRouter(prefix=PREFIX, tags=["operator: money and audit"])

# payments.refund/adjust accept reasons of up to 120 characters (the ledger memo).
MONEY_REASON_MAX_CHARS = 120
# payments.pay_receivable accepts payment references of up to 120 characters (the ledger key).
PAYMENT_REF_MAX_CHARS = 120


class NewRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_minor: int = Field(ge=1, le=MAX_PAYMENT_MINOR, description="In the plan's currency")
    reason: str = Field(min_length=1, max_length=MONEY_REASON_MAX_CHARS)


class RefundOut(BaseModel):
    rider_id: str
    amount_minor: int
    currency: str
    units: int  # allowance that left with the money
    unit: str


class NewAdjustment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    units: int = Field(
        ge=-MAX_TRANSFER_AMOUNT,
        le=MAX_TRANSFER_AMOUNT,
        description="Positive adds allowance; not 0. Refused (409) if the rider's or the "
        "operator's account would pass its limit",
    )
    reason: str = Field(min_length=1, max_length=MONEY_REASON_MAX_CHARS)


class AdjustmentOut(BaseModel):
    rider_id: str
    units: int
    unit: str


class NewReceivablePayment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_minor: int = Field(
        ge=1,
        le=MAX_PAYMENT_MINOR,
        description="Received, in the plan's currency; refused (409) above what the rider owes",
    )
    payment_ref: str = Field(
        min_length=1,
        max_length=PAYMENT_REF_MAX_CHARS,
        description="The payment's own reference (bank transfer, receipt): the same reference "
        "and amount again change nothing; another amount under it is refused (409)",
    )


class ReceivablePaymentOut(BaseModel):
    rider_id: str
    payment_ref: str
    amount_minor: int
    currency: str
    owed_minor: int  # what the rider still owes


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    detail: dict[str, Any]


@router.post(
    "/riders/{rider_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Pay prepaid money back to a rider (admin; Idempotency-Key; audited)",
)
def refund(
    rider_id: str,
    body: NewRefund,
    caller: Admin,
    db: Db,
    request: Request,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    def work() -> tuple[int, RefundOut]:
        done = back_office.refund(
            db,
            caller.actor,
            rider_id,
            body.amount_minor,
            reason=body.reason,
            key=service_key(caller, idempotency_key),
        )
        balance = money.rider_balance(db, rider_id)
        return 201, RefundOut(
            rider_id=rider_id,
            amount_minor=done.amount_minor,
            currency=balance.currency,
            units=done.units,
            unit=balance.unit,
        )

    return once(db, caller, idempotency_key, request, body, work)


@router.post(
    "/riders/{rider_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    response_model=AdjustmentOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Correct a rider's allowance by hand (admin; Idempotency-Key; audited)",
)
def adjust(
    rider_id: str,
    body: NewAdjustment,
    caller: Admin,
    db: Db,
    request: Request,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    def work() -> tuple[int, AdjustmentOut]:
        done = back_office.adjust(
            db,
            caller.actor,
            rider_id,
            body.units,
            reason=body.reason,
            key=service_key(caller, idempotency_key),
        )
        return 201, AdjustmentOut(rider_id=rider_id, units=done.units, unit=done.unit)

    return once(db, caller, idempotency_key, request, body, work)


@router.post(
    "/riders/{rider_id}/receivable-payments",
    status_code=status.HTTP_201_CREATED,
    response_model=ReceivablePaymentOut,
    responses=responses(401, 403, 404, 409, 422),
    summary="Record money a rider paid against what they owe (admin, operator; Idempotency-Key; "
    "audited)",
)
def pay_receivable(
    rider_id: str,
    body: NewReceivablePayment,
    caller: Operator,
    db: Db,
    request: Request,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    def work() -> tuple[int, ReceivablePaymentOut]:
        done = back_office.pay_receivable(
            db, caller.actor, rider_id, body.amount_minor, body.payment_ref
        )
        return 201, ReceivablePaymentOut(
            rider_id=rider_id,
            payment_ref=done.payment_ref,
            amount_minor=done.amount_minor,
            currency=done.currency,
            owed_minor=done.owed_minor,
        )

    return once(db, caller, idempotency_key, request, body, work)


# The replica (ReadDb): the audit log is read after the fact, never to decide an action.
@router.get(
    "/audit",
    responses=responses(401, 403),
    summary="The audit log, newest first (admin, support)",
)
def audit_log(
    _caller: AuditReader,
    db: ReadDb,
    target: Annotated[str | None, Query(max_length=120)] = None,
    before_id: Annotated[int | None, Query(ge=1, description="Cursor: the last id seen")] = None,
    limit: Limit = 100,
) -> Page[AuditOut]:
    rows = audit.entries(db, target=target, before_id=before_id, limit=limit)
    return page_of(
        [AuditOut.model_validate(r, from_attributes=True) for r in rows],
        limit,
        str(rows[-1].id) if rows else None,
    )
