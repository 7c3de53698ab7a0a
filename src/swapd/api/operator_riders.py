"""Riders for staff: search, one rider with balance, plan and packs held; block and unblock
(audited, with a reason)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from swapd.api.deps import Db, Operator, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX, Limit, Page, Reason, page_of
from swapd.api.operator_plans import PlanOut
from swapd.api.rider import SubscriptionOut
from swapd.domain.riders import RiderStatus
from swapd.readmodels import money, plans, riders
from swapd.services import back_office

router = APIRouter(prefix=f"{PREFIX}/riders", tags=["operator: riders"])


class RiderLineOut(BaseModel):
    id: str
    email: str | None
    plan_id: str
    status: RiderStatus
    vehicle_packs: int
    created_at: datetime

    @classmethod
    def of(cls, row: riders.RiderRow) -> RiderLineOut:
        return cls(
            id=row.id,
            email=row.email,
            plan_id=row.plan_id,
            status=RiderStatus(row.status),
            vehicle_packs=row.vehicle_packs,
            created_at=row.created_at,
        )


class BalanceOut(BaseModel):
    """Allowance in ``unit``; money in minor units of ``currency``."""

    unit: str
    posted_units: int
    held_units: int  # reserved by packs out and open offers
    available_units: int
    overdrawn_units: int
    currency: str
    prepaid_minor: int
    available_value_minor: int
    receivable_minor: int


class RiderOut(BaseModel):
    rider: RiderLineOut
    plan: PlanOut
    balance: BalanceOut
    packs_held: list[str]
    subscription: SubscriptionOut | None


@router.get(
    "",
    responses=responses(401, 403),
    summary="Search riders by id (prefix), email (part), plan and status; paged",
)
def search_riders(
    _caller: Staff,
    db: Db,
    id: Annotated[str | None, Query(max_length=40, description="Rider id prefix")] = None,
    email: Annotated[str | None, Query(max_length=254, description="Part of the email")] = None,
    plan_id: Annotated[str | None, Query(max_length=40)] = None,
    status: RiderStatus | None = None,
    after: Annotated[str | None, Query(max_length=40, description="Cursor: last id seen")] = None,
    limit: Limit = 100,
) -> Page[RiderLineOut]:
    rows = riders.riders(
        db,
        rider_id=id,
        email=email,
        plan_id=plan_id,
        status=None if status is None else status.value,
        after=after,
        limit=limit,
    )
    return page_of([RiderLineOut.of(r) for r in rows], limit, rows[-1].id if rows else None)


def _rider(db: Db, rider_id: str) -> RiderOut:
    row = riders.rider(db, rider_id)
    balance = money.rider_balance(db, rider_id)
    plan = plans.plan(db, row.plan_id)
    sub = riders.subscription(db, rider_id)
    riders_on_plan = next((line.riders for line in plans.plans(db) if line.plan.id == plan.id), 0)
    return RiderOut(
        rider=RiderLineOut.of(row),
        plan=PlanOut.of(plan, riders_on_plan),
        balance=BalanceOut(
            unit=balance.unit,
            posted_units=balance.posted_units,
            held_units=balance.held_units,
            available_units=balance.available_units,
            overdrawn_units=balance.overdrawn_units,
            currency=balance.currency,
            prepaid_minor=balance.prepaid_minor,
            available_value_minor=balance.available_value_minor,
            receivable_minor=balance.receivable_minor,
        ),
        packs_held=list(balance.packs_held),
        subscription=SubscriptionOut.of(sub),
    )


@router.get(
    "/{rider_id}",
    responses=responses(401, 403, 404),
    summary="One rider: balance, plan, packs held, subscription cycle",
)
def get_rider(rider_id: str, _caller: Staff, db: Db) -> RiderOut:
    return _rider(db, rider_id)


@router.post(
    "/{rider_id}/block",
    responses=responses(401, 403, 404, 422),
    summary="Block a rider: swaps are refused until unblocked (audited)",
)
def block_rider(rider_id: str, body: Reason, caller: Operator, db: Db) -> RiderOut:
    back_office.set_rider_status(db, caller.actor, rider_id, RiderStatus.BLOCKED, body.reason)
    return _rider(db, rider_id)


@router.post(
    "/{rider_id}/unblock",
    responses=responses(401, 403, 404, 422),
    summary="Unblock a rider (audited)",
)
def unblock_rider(rider_id: str, body: Reason, caller: Operator, db: Db) -> RiderOut:
    back_office.set_rider_status(db, caller.actor, rider_id, RiderStatus.ACTIVE, body.reason)
    return _rider(db, rider_id)
