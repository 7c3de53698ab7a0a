"""Plans for staff: the four kinds, with prices in minor units of their currency. The domain
validates a new plan (unit per kind, positive prices, a subscription's fee and allowance, and the
bounds that keep every top-up inside one transfer: a refused plan is a 422)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from swapd.api.deps import Db, Operator, ReadDb, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX
from swapd.domain.errors import InvalidInput
from swapd.domain.plans import (
    DEFAULT_OFFLINE_SWAPS,
    DEFAULT_TIME_HOLD_S,
    MAX_GRANULARITY_S,
    MAX_OFFLINE_SWAPS,
    MAX_TIME_HOLD_S,
    Plan,
    PlanKind,
)
from swapd.domain.quantities import MAX_PAYMENT_MINOR, MAX_TRANSFER_AMOUNT, Unit
from swapd.readmodels import plans
from swapd.services import back_office

router = APIRouter(prefix=f"{PREFIX}/plans", tags=["operator: plans"])

_PREPAID_UNIT = {
    PlanKind.PREPAID_ENERGY: Unit.ENERGY_WH,
    PlanKind.PREPAID_TIME: Unit.TIME_S,
    PlanKind.PREPAID_DELIVERIES: Unit.DELIVERIES,
}


class PlanOut(BaseModel):
    id: str
    kind: PlanKind
    unit: Unit
    currency: str
    price_minor: int = Field(description="Buys price_units (a subscription's overage price)")
    price_units: int
    granularity_s: int
    time_hold_s: int
    fee_minor: int
    included_units: int
    carry_over: bool
    prorate_first_cycle: bool
    listed: bool = Field(description="In the public plan list and open to rider sign-up")
    offline_swaps_max: int = Field(description="Swaps a station may serve offline (local list)")
    riders: int

    @classmethod
    def of(cls, plan: Plan, riders: int) -> PlanOut:
        return cls(
            id=plan.id,
            kind=plan.kind,
            unit=plan.unit,
            currency=plan.currency,
            price_minor=plan.price_minor,
            price_units=plan.price_units,
            granularity_s=plan.granularity_s,
            time_hold_s=plan.time_hold_s,
            fee_minor=plan.fee_minor,
            included_units=plan.included_units,
            carry_over=plan.carry_over,
            prorate_first_cycle=plan.prorate_first_cycle,
            listed=plan.listed,
            offline_swaps_max=plan.offline_swaps_max,
            riders=riders,
        )


class NewPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=40, examples=["energy"])
    kind: PlanKind
    unit: Unit | None = Field(None, description="Given by the kind, except for a subscription")
    currency: str = Field(min_length=3, max_length=3, examples=["KRW"])
    price_minor: int = Field(ge=0, le=MAX_PAYMENT_MINOR)
    price_units: int = Field(ge=1, le=MAX_TRANSFER_AMOUNT)
    granularity_s: int = Field(60, ge=1, le=MAX_GRANULARITY_S)
    time_hold_s: int = Field(DEFAULT_TIME_HOLD_S, ge=1, le=MAX_TIME_HOLD_S)
    fee_minor: int = Field(0, ge=0, le=MAX_PAYMENT_MINOR)
    included_units: int = Field(0, ge=0, le=MAX_TRANSFER_AMOUNT)
    carry_over: bool = True
    prorate_first_cycle: bool = True
    offline_swaps_max: int = Field(
        DEFAULT_OFFLINE_SWAPS,
        ge=0,
        le=MAX_OFFLINE_SWAPS,
        description="Swaps a station may serve a rider from its local list while offline",
    )

    def plan(self) -> Plan:
        unit = self.unit or _PREPAID_UNIT.get(self.kind)
        if unit is None:
            raise InvalidInput("a subscription plan needs its unit: Wh, s or count")
        return Plan(
            id=self.id,
            kind=self.kind,
            unit=unit,
            currency=self.currency,
            price_minor=self.price_minor,
            price_units=self.price_units,
            granularity_s=self.granularity_s,
            time_hold_s=self.time_hold_s,
            fee_minor=self.fee_minor,
            included_units=self.included_units,
            carry_over=self.carry_over,
            prorate_first_cycle=self.prorate_first_cycle,
            offline_swaps_max=self.offline_swaps_max,
        )


# The replica (ReadDb): the list of plans with their rider counts, a report.
@router.get("", responses=responses(401, 403), summary="Every plan with its number of riders")
def list_plans(_caller: Staff, db: ReadDb) -> list[PlanOut]:
    return [PlanOut.of(line.plan, line.riders) for line in plans.plans(db)]


@router.get("/{plan_id}", responses=responses(401, 403, 404), summary="One plan")
def get_plan(plan_id: str, _caller: Staff, db: Db) -> PlanOut:
    plan = plans.plan(db, plan_id)
    riders = next((line.riders for line in plans.plans(db) if line.plan.id == plan_id), 0)
    return PlanOut.of(plan, riders)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
    summary="Add a plan of one of the four kinds (audited)",
)
def create_plan(body: NewPlan, caller: Operator, db: Db) -> PlanOut:
    plan = back_office.create_plan(db, caller.actor, body.plan())
    return PlanOut.of(plan, 0)
