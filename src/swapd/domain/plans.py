"""Plans: how a payment becomes an allowance (R1) and what a pack requires to be handed over (R6).

``price_minor`` buys ``price_units`` of allowance. For the prepaid kinds that is what a top-up buys;
for a subscription it is the overage price (zero: no overage, the rider is refused instead).

Every plan keeps inside the bounds of ``quantities``: prices and fees are at most one payment,
allowances at most one transfer, and a prepaid plan's price is such that the largest payment buys
at most one transfer's worth of allowance. So no top-up on any plan can make an amount the ledger
would have to refuse.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from swapd.domain.errors import InvalidInput
from swapd.domain.packs import Pack, validate_code
from swapd.domain.quantities import (
    MAX_PAYMENT_MINOR,
    MAX_TRANSFER_AMOUNT,
    Unit,
    currency_exponent,
    require_non_negative_int,
    require_positive_int,
    round_half_even,
)

DEFAULT_TIME_HOLD_S = 3_600
# Swaps a station may serve a rider from its local list while it cannot reach the server (its
# offline limit, sent with the list: swapd.domain.local_lists). Each one is billed when the station
# replays it, and what the allowance does not cover becomes a receivable, so this bounds what an
# offline station can hand out on credit: one swap by default, at most MAX_OFFLINE_SWAPS.
DEFAULT_OFFLINE_SWAPS = 1
MAX_OFFLINE_SWAPS = 20
MAX_GRANULARITY_S = 86_400  # time plans count usage in steps of at most a day
MAX_TIME_HOLD_S = 30 * 86_400  # what a time plan holds per pack out: at most a month
# What a minor unit may buy at most: the largest payment then buys at most one transfer.
MAX_UNITS_PER_MINOR = MAX_TRANSFER_AMOUNT // MAX_PAYMENT_MINOR


class PlanKind(enum.StrEnum):
    PREPAID_ENERGY = "prepaid_energy"
    PREPAID_TIME = "prepaid_time"
    PREPAID_DELIVERIES = "prepaid_deliveries"
    SUBSCRIPTION = "subscription"


_PREPAID_UNIT = {
    PlanKind.PREPAID_ENERGY: Unit.ENERGY_WH,
    PlanKind.PREPAID_TIME: Unit.TIME_S,
    PlanKind.PREPAID_DELIVERIES: Unit.DELIVERIES,
}


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    kind: PlanKind
    unit: Unit
    currency: str
    price_minor: int
    price_units: int
    granularity_s: int = 60
    time_hold_s: int = DEFAULT_TIME_HOLD_S
    fee_minor: int = 0
    included_units: int = 0
    carry_over: bool = True
    prorate_first_cycle: bool = True
    # Listed: in the public plan list and open to rider sign-up. An unlisted plan (the simulator's)
    # works the same for the riders staff put on it.
    listed: bool = True
    offline_swaps_max: int = DEFAULT_OFFLINE_SWAPS  # 0: a station refuses the plan's riders offline

    def __post_init__(self) -> None:
        validate_code(self.id, "plan")
        currency_exponent(self.currency)
        expected = _PREPAID_UNIT.get(self.kind)
        if expected is not None and self.unit is not expected:
            raise InvalidInput(f"a {self.kind} plan counts in {expected}, not {self.unit}")
        require_positive_int(self.price_units, "price_units")
        require_positive_int(self.granularity_s, "granularity_s")
        require_positive_int(self.time_hold_s, "time_hold_s")
        require_non_negative_int(self.offline_swaps_max, "offline_swaps_max")
        if self.kind is PlanKind.SUBSCRIPTION:
            require_non_negative_int(self.price_minor, "overage price_minor")
            require_positive_int(self.fee_minor, "fee_minor")
            require_positive_int(self.included_units, "included_units")
        else:
            require_positive_int(self.price_minor, "price_minor")
            require_non_negative_int(self.fee_minor, "fee_minor")
            require_non_negative_int(self.included_units, "included_units")
        self._check_bounds()

    def _check_bounds(self) -> None:
        for value, bound, field in (
            (self.price_minor, MAX_PAYMENT_MINOR, "price_minor"),
            (self.fee_minor, MAX_PAYMENT_MINOR, "fee_minor"),
            (self.price_units, MAX_TRANSFER_AMOUNT, "price_units"),
            (self.included_units, MAX_TRANSFER_AMOUNT, "included_units"),
            (self.granularity_s, MAX_GRANULARITY_S, "granularity_s"),
            (self.time_hold_s, MAX_TIME_HOLD_S, "time_hold_s"),
            (self.offline_swaps_max, MAX_OFFLINE_SWAPS, "offline_swaps_max"),
        ):
            if value > bound:
                raise InvalidInput(f"plan {self.id}: {field} {value:,} is above the limit of {bound:,}")
        if self.is_subscription:
            return
        most = MAX_PAYMENT_MINOR * self.price_units // self.price_minor
        if most > MAX_TRANSFER_AMOUNT:
            raise InvalidInput(
                f"plan {self.id}: {self.price_minor:,} minor units for {self.price_units:,} "
                f"{self.unit} would sell {most:,} {self.unit} for the largest payment "
                f"({MAX_PAYMENT_MINOR:,}), above the {MAX_TRANSFER_AMOUNT:,} of one transfer; "
                f"price at most {MAX_UNITS_PER_MINOR:,} {self.unit} per minor unit"
            )

    @property
    def is_subscription(self) -> bool:
        return self.kind is PlanKind.SUBSCRIPTION

    @property
    def allows_overage(self) -> bool:
        return self.is_subscription and self.price_minor > 0

    def allowance_for_payment(self, amount_minor: int) -> int:
        """R1: the allowance a prepaid top-up buys, rounded down (the rider never gets unpaid use)."""
        if self.is_subscription:
            raise InvalidInput(f"plan {self.id} is a subscription: pay its fee, not a top-up")
        require_positive_int(amount_minor, "amount_minor")
        if amount_minor > MAX_PAYMENT_MINOR:
            raise InvalidInput(f"amount_minor {amount_minor} is above the limit of {MAX_PAYMENT_MINOR}")
        # At most MAX_TRANSFER_AMOUNT: the plan's bounds see to it.
        units = amount_minor * self.price_units // self.price_minor
        if units == 0:
            raise InvalidInput(
                f"{amount_minor} minor units buy no allowance on plan {self.id} "
                f"({self.price_minor} buys {self.price_units} {self.unit})"
            )
        return units

    def requirement_for(self, pack: Pack) -> int:
        """What the allowance must cover, after holds, for this pack to be handed over."""
        if self.unit is Unit.ENERGY_WH:
            return pack.deliverable_wh
        if self.unit is Unit.TIME_S:
            return self.time_hold_s
        return 1

    def overage_charge_minor(self, units: int) -> int:
        return round_half_even(units * self.price_minor, self.price_units)


@dataclass(frozen=True, slots=True)
class Cycle:
    """One subscription billing cycle: a calendar month in UTC, pro-rated when joined mid-month."""

    start: datetime
    end: datetime
    fee_minor: int
    included_units: int


def month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month_start(at: datetime) -> datetime:
    if at.month == 12:
        return datetime(at.year + 1, 1, 1, tzinfo=UTC)
    return datetime(at.year, at.month + 1, 1, tzinfo=UTC)


def first_cycle(plan: Plan, start: datetime) -> Cycle:
    # Cycles follow UTC calendar months, whatever zone the start time was given in.
    start = start.astimezone(UTC)
    end = next_month_start(start)
    if not plan.prorate_first_cycle or start == month_start(start):
        return Cycle(start, end, plan.fee_minor, plan.included_units)
    month_s = int((end - month_start(start)).total_seconds())
    remaining_s = int((end - start).total_seconds())
    fee = round_half_even(plan.fee_minor * remaining_s, month_s)
    included = plan.included_units * remaining_s // month_s
    # A subscription joined in a month's last moments still pays something and gets something:
    # prepaid money with no allowance (or the reverse) could never reach zero together.
    return Cycle(start, end, max(fee, 1), max(included, 1))


def following_cycle(plan: Plan, previous_end: datetime) -> Cycle:
    return Cycle(previous_end, next_month_start(previous_end), plan.fee_minor, plan.included_units)


def carry_over_units(plan: Plan, unused_this_cycle: int) -> int:
    """Unused allowance of the cycle that ends, carried into the next one only (one cycle)."""
    if not plan.carry_over:
        return 0
    return min(unused_this_cycle, plan.included_units)
