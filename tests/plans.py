"""The plans of the billing method's worked examples (../shared/spec/billing-method.md), for every
test: the pure unit tests and the database-backed ones alike."""

from __future__ import annotations

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit

# E1: 300 KRW per kWh
ENERGY = Plan("energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)
# E3: 2,000 KRW per hour, counted in started minutes
TIME = Plan("time", PlanKind.PREPAID_TIME, Unit.TIME_S, "KRW", 2_000, 3_600, granularity_s=60)
# E4: 10 deliveries for 12,500 KRW
BUNDLE = Plan("bundle", PlanKind.PREPAID_DELIVERIES, Unit.DELIVERIES, "KRW", 12_500, 10)
DELIVERIES = BUNDLE
# A monthly subscription: 30,000 KRW for 100 kWh, overage 300 KRW per kWh
SUB = Plan(
    "subscription",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    300,
    1_000,
    fee_minor=30_000,
    included_units=100_000,
)
