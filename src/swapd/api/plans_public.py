"""The plans a rider can choose from at sign-up: public, no sign-in needed."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from swapd.api.deps import ReadDb
from swapd.domain.plans import Plan, PlanKind
from swapd.readmodels import plans

router = APIRouter(tags=["plans"])


class PlanOut(BaseModel):
    """Money in minor units of ``currency``; allowance in ``unit`` (named ``quantity`` in fields)."""

    id: str
    kind: PlanKind
    unit: str = Field(description="Ledger unit of the allowance: Wh, s or count")
    quantity: str = Field(description="The unit as field names spell it: energy_wh, time_s, deliveries")
    currency: str = Field(description="ISO 4217")
    price_minor: int = Field(
        description="Prepaid plans: a top-up of price_minor buys price_units. Subscriptions: the "
        "overage price (0: no overage, a swap beyond the allowance is refused)"
    )
    price_units: int
    fee_minor: int = Field(description="Subscription fee per monthly cycle (0 for prepaid plans)")
    included_units: int = Field(description="Allowance included in each subscription cycle")
    carry_over: bool = Field(description="Unused included units carry into the next cycle only")
    prorate_first_cycle: bool
    granularity_s: int = Field(description="Time plans: usage counted in started periods of this")
    time_hold_s: int = Field(description="Time plans: allowance a pack needs to be handed over")

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls(
            id=plan.id,
            kind=plan.kind,
            unit=plan.unit.value,
            quantity=plans.quantity_name(plan.unit.value),
            currency=plan.currency,
            price_minor=plan.price_minor,
            price_units=plan.price_units,
            fee_minor=plan.fee_minor,
            included_units=plan.included_units,
            carry_over=plan.carry_over,
            prorate_first_cycle=plan.prorate_first_cycle,
            granularity_s=plan.granularity_s,
            time_hold_s=plan.time_hold_s,
        )


# The replica (ReadDb): the public catalogue; signing up re-reads the plan on the primary.
@router.get("/plans", summary="The plans riders can sign up for (public)")
def list_plans(db: ReadDb) -> list[PlanOut]:
    return [PlanOut.of(p) for p in plans.listed_plans(db)]
