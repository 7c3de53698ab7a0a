"""The plans of the billing method's worked examples, as the pure unit tests name them."""

from __future__ import annotations

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit

# E1: 300 KRW per kWh
ENERGY = Plan("E1", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1_000)
# E3: 2,000 KRW per hour, granularity 60 s
TIME = Plan("E3", PlanKind.PREPAID_TIME, Unit.TIME_S, "KRW", 2_000, 3_600)
# E4: 10 deliveries for 12,500 KRW
DELIVERIES = Plan("E4", PlanKind.PREPAID_DELIVERIES, Unit.DELIVERIES, "KRW", 12_500, 10)
# A monthly subscription: 30,000 KRW for 100 kWh, overage 300 KRW per kWh
SUB = Plan(
    "S1",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    300,
    1_000,
    fee_minor=30_000,
    included_units=100_000,
)
