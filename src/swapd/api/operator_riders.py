"""Riders for staff: search, one rider with balance, plan and packs held; block and unblock
(audited, with a reason)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from swapd.api.deps import Db, Operator, ReadDb, Staff
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
        return cls.model_validate(riders.rider_line_view(row))


class BalanceOut(BaseModel):
    """Allowance in ``unit``; money in minor units of ``currency``: the allowance and money fields
    of the rider's balance view (``money.balance_fields``), the same the rider's app gets."""

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


# The replica (ReadDb): a search list; a rider's page and every money action read the primary.
@router.get(
    "",
    responses=responses(401, 403),
    summary="Search riders by id (prefix), email (part), plan and status; paged",
)
def search_riders(
    _caller: Staff,
    db: ReadDb,
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
    balance = money.balance_fields(money.balance_view(db, rider_id))
    plan = plans.plan(db, row.plan_id)
    riders_on_plan = next((line.riders for line in plans.plans(db) if line.plan.id == plan.id), 0)
    return RiderOut.model_validate(
        {
            "rider": riders.rider_line_view(row),
            "plan": PlanOut.of(plan, riders_on_plan),
            "balance": balance,
            "packs_held": balance["packs_held"],
            "subscription": balance["subscription"],
        }
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
