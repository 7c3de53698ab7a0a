"""Pure tests of plans (swapd.domain.plans): R1 allowance, requirements, subscription cycles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from swapd.domain.errors import InvalidInput
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import (
    DEFAULT_TIME_HOLD_S,
    Cycle,
    Plan,
    PlanKind,
    carry_over_units,
    first_cycle,
    following_cycle,
    month_start,
    next_month_start,
)
from swapd.domain.quantities import MAX_PAYMENT_MINOR, MAX_TRANSFER_AMOUNT, Unit
from tests.plans import DELIVERIES, ENERGY, SUB, TIME

KST = timezone(timedelta(hours=9))


def sub(**changes: Any) -> Plan:
    fields: dict[str, Any] = {
        "id": "S1",
        "kind": PlanKind.SUBSCRIPTION,
        "unit": Unit.ENERGY_WH,
        "currency": "KRW",
        "price_minor": 300,
        "price_units": 1_000,
        "fee_minor": 30_000,
        "included_units": 100_000,
    }
    fields.update(changes)
    return Plan(**fields)


def g2(soc_bp: int, soh_bp: int) -> Pack:
    return Pack("B-0001", "G2", 1_700, soh_bp, soc_bp, 0, PackStatus.IN_SLOT, "ST1", 3)


# ---------------------------------------------------------------------------------------------
# R1: allowance from payment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "amount_minor", "units"),
    [
        (ENERGY, 10_000, 33_333),  # E1: 10000 * 1000 / 300 = 33333.3 -> 33333 Wh
        (ENERGY, 1_000, 3_333),  # E2 top-up: 1000 * 1000 / 300 = 3333.3 -> 3333 Wh
        (ENERGY, 300, 1_000),  # exactly one kWh
        (ENERGY, 1, 3),  # 1 * 1000 / 300 = 3.33 -> 3 Wh
        (TIME, 10_000, 18_000),  # E3: 10000 * 3600 / 2000 = 18000 s
        (TIME, 1, 1),  # 1 * 3600 / 2000 = 1.8 -> 1 s
        (DELIVERIES, 12_500, 10),  # E4: one bundle = 10 deliveries
        (DELIVERIES, 12_499, 9),  # 12499 * 10 / 12500 = 9.9992 -> 9
        (DELIVERIES, 25_000, 20),
    ],
)
def test_allowance_for_payment(plan: Plan, amount_minor: int, units: int) -> None:
    assert plan.allowance_for_payment(amount_minor) == units


def test_allowance_for_payment_in_a_two_decimal_currency() -> None:
    # 0.25 USD per kWh: 10.00 USD = 1000 cents -> 1000 * 1000 / 25 = 40000 Wh
    usd = Plan("E-USD", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "USD", 25, 1_000)
    assert usd.allowance_for_payment(1_000) == 40_000


def test_a_payment_too_small_to_buy_anything_is_refused() -> None:
    # 1249 * 10 / 12500 = 0.9992 -> 0 deliveries
    with pytest.raises(InvalidInput) as raised:
        DELIVERIES.allowance_for_payment(1_249)
    assert raised.value.message == (
        "1249 minor units buy no allowance on plan bundle (12500 buys 10 count)"
    )


def test_a_subscription_is_not_topped_up() -> None:
    with pytest.raises(
        InvalidInput, match="plan subscription is a subscription: pay its fee, not a top-up"
    ):
        SUB.allowance_for_payment(10_000)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "0"),
        (-10_000, "-10000"),
        (10_000.0, "10000.0"),
        (99.5, "99.5"),
        (True, "True"),
        ("10000", "'10000'"),
        (None, "None"),
    ],
)
def test_allowance_for_payment_refuses_bad_amounts(amount: object, shown: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        ENERGY.allowance_for_payment(amount)  # type: ignore[arg-type]
    assert raised.value.message == f"amount_minor must be a positive integer, got {shown}"


@given(
    price_minor=st.integers(min_value=1, max_value=10**7),
    price_units=st.integers(min_value=1, max_value=10**7),
    amount_minor=st.integers(min_value=1, max_value=10**10),
)
def test_a_top_up_never_buys_unpaid_units(price_minor: int, price_units: int, amount_minor: int) -> None:
    # A plan selling more than that per minor unit is refused (tests/unit/test_bounds.py).
    assume(MAX_PAYMENT_MINOR * price_units // price_minor <= MAX_TRANSFER_AMOUNT)
    plan = Plan("P", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", price_minor, price_units)
    try:
        units = plan.allowance_for_payment(amount_minor)
    except InvalidInput:
        assert amount_minor * price_units < price_minor  # refused only when it buys nothing
        return
    assert units >= 1
    # what the units cost never exceeds what was paid, and one more unit would
    assert units * price_minor <= amount_minor * price_units
    assert (units + 1) * price_minor > amount_minor * price_units


# ---------------------------------------------------------------------------------------------
# Plan validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "unit", "message"),
    [
        (PlanKind.PREPAID_ENERGY, Unit.TIME_S, "a prepaid_energy plan counts in Wh, not s"),
        (PlanKind.PREPAID_TIME, Unit.ENERGY_WH, "a prepaid_time plan counts in s, not Wh"),
        (PlanKind.PREPAID_DELIVERIES, Unit.TIME_S, "a prepaid_deliveries plan counts in count, not s"),
    ],
)
def test_prepaid_plan_unit_must_match_its_kind(kind: PlanKind, unit: Unit, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        Plan("P", kind, unit, "KRW", 300, 1_000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "bad id"}, "plan id must be 1-40 characters"),
        ({"id": ""}, "plan id must be 1-40 characters"),
        ({"currency": "XXX"}, "unknown currency 'XXX'"),
        ({"price_minor": 0}, "price_minor must be a positive integer, got 0"),
        ({"price_minor": 300.0}, "price_minor must be a positive integer, got 300.0"),
        ({"price_minor": True}, "price_minor must be a positive integer, got True"),
        ({"price_units": 0}, "price_units must be a positive integer, got 0"),
        ({"price_units": 1_000.0}, "price_units must be a positive integer, got 1000.0"),
        ({"granularity_s": 0}, "granularity_s must be a positive integer, got 0"),
        ({"granularity_s": True}, "granularity_s must be a positive integer, got True"),
        ({"time_hold_s": -1}, "time_hold_s must be a positive integer, got -1"),
    ],
)
def test_prepaid_plan_validation(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "id": "E1",
        "kind": PlanKind.PREPAID_ENERGY,
        "unit": Unit.ENERGY_WH,
        "currency": "KRW",
        "price_minor": 300,
        "price_units": 1_000,
    }
    fields.update(changes)
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}"):
        Plan(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fee_minor": 0}, "fee_minor must be a positive integer, got 0"),
        ({"fee_minor": 30_000.0}, "fee_minor must be a positive integer, got 30000.0"),
        ({"included_units": 0}, "included_units must be a positive integer, got 0"),
        ({"price_minor": -1}, "overage price_minor must be a non-negative integer, got -1"),
        ({"price_minor": 1.5}, "overage price_minor must be a non-negative integer, got 1.5"),
    ],
)
def test_subscription_plan_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        sub(**changes)


def test_plan_flags() -> None:
    assert SUB.is_subscription and SUB.allows_overage
    no_overage = sub(price_minor=0)  # a zero overage price is allowed: the rider is refused instead
    assert no_overage.is_subscription and not no_overage.allows_overage
    assert not ENERGY.is_subscription and not ENERGY.allows_overage
    assert ENERGY.granularity_s == 60 and ENERGY.time_hold_s == DEFAULT_TIME_HOLD_S == 3_600


# ---------------------------------------------------------------------------------------------
# R6: what a pack requires; overage price
# ---------------------------------------------------------------------------------------------


def test_requirement_for_energy_is_the_deliverable_energy() -> None:
    assert ENERGY.requirement_for(g2(9_800, 9_500)) == 1_583  # ceil(1700 * 0.95 * 0.98) (E1)
    assert ENERGY.requirement_for(g2(10_000, 10_000)) == 1_700  # E1 step 4
    assert SUB.requirement_for(g2(9_500, 10_000)) == 1_615  # 1700 * 0.95


def test_requirement_for_time_is_the_time_hold() -> None:
    assert TIME.requirement_for(g2(9_800, 9_500)) == 3_600
    two_hours = Plan("T2", PlanKind.PREPAID_TIME, Unit.TIME_S, "KRW", 2_000, 3_600, time_hold_s=7_200)
    assert two_hours.requirement_for(g2(9_800, 9_500)) == 7_200


def test_requirement_for_deliveries_is_one_per_pack() -> None:
    assert DELIVERIES.requirement_for(g2(10_000, 10_000)) == 1
    sub_count = sub(unit=Unit.DELIVERIES, price_minor=1_250, price_units=1, included_units=30)
    assert sub_count.requirement_for(g2(9_000, 8_000)) == 1


@pytest.mark.parametrize(
    ("units", "charge"),
    [
        (1_500, 450),  # 1500 Wh * 300 / 1000 = 450 KRW
        (1_000, 300),
        (1, 0),  # 0.3 -> 0
        (5, 2),  # 1.5 -> 2 (tie, to even)
        (25, 8),  # 7.5 -> 8 (tie, to even)
        (35, 10),  # 10.5 -> 10 (tie, to even)
        (0, 0),
    ],
)
def test_overage_charge(units: int, charge: int) -> None:
    assert SUB.overage_charge_minor(units) == charge


# ---------------------------------------------------------------------------------------------
# Subscription cycles
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        (
            datetime(2026, 11, 2, 9, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),  # December rolls into the next year
        (
            datetime(2028, 2, 29, 12, tzinfo=UTC),
            datetime(2028, 2, 1, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
    ],
)
def test_month_bounds(at: datetime, start: datetime, end: datetime) -> None:
    assert month_start(at) == start
    assert next_month_start(at) == end


def test_first_cycle_starting_on_the_first_is_not_pro_rated() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    assert first_cycle(SUB, start) == Cycle(start, datetime(2026, 12, 1, tzinfo=UTC), 30_000, 100_000)


@pytest.mark.parametrize(
    ("start", "end", "fee", "included"),
    [
        # 15 of November's 30 days: 30000 * 15/30 = 15000; 100000 * 15/30 = 50000
        (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), 15_000, 50_000),
        # 28 d 15 h = 2,473,200 s of 2,592,000 s: fee 30000 * that = 28625.0;
        # included 100000 * that = 95416.7 -> 95416
        (datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), 28_625, 95_416),
        # 15 of December's 31 days: 30000 * 15/31 = 14516.1 -> 14516; 100000 * 15/31 = 48387.1 -> 48387
        (datetime(2026, 12, 17, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), 14_516, 48_387),
        # 14 of February 2027's 28 days: half
        (datetime(2027, 2, 15, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC), 15_000, 50_000),
        # the last second of November: 30000 / 2592000 = 0.01 -> 0, but the fee is at least 1;
        # 100000 / 2592000 = 0.04 -> 0, but a paid cycle includes at least 1 unit
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), 1, 1),
    ],
)
def test_first_cycle_is_pro_rated(start: datetime, end: datetime, fee: int, included: int) -> None:
    assert first_cycle(SUB, start) == Cycle(start, end, fee, included)


@pytest.mark.parametrize(
    ("fee_minor", "fee"),
    [(3, 2), (5, 2), (7, 4)],  # half a month: 1.5 -> 2, 2.5 -> 2, 3.5 -> 4 (ties to even)
)
def test_first_cycle_fee_rounds_half_even(fee_minor: int, fee: int) -> None:
    cycle = first_cycle(sub(fee_minor=fee_minor), datetime(2026, 11, 16, tzinfo=UTC))
    assert cycle.fee_minor == fee


def test_first_cycle_without_pro_rating_charges_the_full_fee() -> None:
    start = datetime(2026, 11, 16, tzinfo=UTC)
    cycle = first_cycle(sub(prorate_first_cycle=False), start)
    assert cycle == Cycle(start, datetime(2026, 12, 1, tzinfo=UTC), 30_000, 100_000)


@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59, 999_999)
    ).map(lambda d: d.replace(tzinfo=UTC)),
    fee_minor=st.integers(min_value=1, max_value=10**9),
    included_units=st.integers(min_value=1, max_value=10**9),
)
def test_pro_rated_first_cycle_is_between_nothing_and_a_full_cycle(
    start: datetime, fee_minor: int, included_units: int
) -> None:
    plan = sub(fee_minor=fee_minor, included_units=included_units)
    cycle = first_cycle(plan, start)
    assert cycle.start == start
    assert cycle.end == next_month_start(start) > start
    assert 1 <= cycle.fee_minor <= fee_minor
    assert 1 <= cycle.included_units <= included_units


def test_first_cycle_does_not_depend_on_the_timezone_of_start() -> None:
    start = datetime(2026, 11, 1, 5, 0, tzinfo=KST)  # == 2026-10-31 20:00 UTC
    cycle = first_cycle(SUB, start)
    assert cycle.fee_minor <= SUB.fee_minor
    assert cycle.included_units <= SUB.included_units
    # In UTC: 4 h = 14,400 s of October's 2,678,400 s: 30000 * that = 161.3 -> 161;
    # 100000 * that = 537.6 -> 537; the cycle ends at the start of November (UTC).
    assert (cycle.end, cycle.fee_minor, cycle.included_units) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        161,
        537,
    )


@pytest.mark.parametrize(
    ("previous_end", "end"),
    [
        (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)),
    ],
)
def test_following_cycle_is_a_full_month(previous_end: datetime, end: datetime) -> None:
    # pro-rating applies to the first cycle only
    assert following_cycle(SUB, previous_end) == Cycle(previous_end, end, 30_000, 100_000)


@pytest.mark.parametrize(
    ("unused", "carried"),
    [
        (30_000, 30_000),  # all unused units carry into the next cycle
        (100_000, 100_000),
        (150_000, 100_000),  # at most one cycle's included allowance carries over
        (0, 0),
    ],
)
def test_carry_over_units(unused: int, carried: int) -> None:
    assert carry_over_units(SUB, unused) == carried


def test_no_carry_over_when_the_plan_has_none() -> None:
    assert carry_over_units(sub(carry_over=False), 30_000) == 0


@given(unused=st.integers(min_value=0, max_value=10**12), carry=st.booleans())
def test_carry_over_is_bounded(unused: int, carry: bool) -> None:
    carried = carry_over_units(sub(carry_over=carry), unused)
    assert 0 <= carried <= min(unused, 100_000)
    assert carried == (min(unused, 100_000) if carry else 0)
