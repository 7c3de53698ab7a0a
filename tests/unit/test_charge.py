"""Pure tests of R5's charge split (swapd.domain.charge), from the billing method's worked examples."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from swapd.domain.charge import ChargeSplit, split_charge, split_for_plan
from swapd.domain.metering import energy_usage_wh, time_usage_s
from swapd.domain.packs import deliverable_energy_wh
from swapd.domain.quantities import MAX_PAYMENT_MINOR, MAX_TRANSFER_AMOUNT
from tests.plans import DELIVERIES, ENERGY, SUB, TIME


def test_e1_return_is_charged_from_the_hold_alone_and_leaves_32073_wh() -> None:
    allowance_wh = ENERGY.allowance_for_payment(10_000)  # 33,333 Wh
    hold_wh = deliverable_energy_wh(1_700, 9_500, 9_800)  # 1,583 Wh
    available_wh = allowance_wh - hold_wh  # 31,750 Wh
    usage_wh = energy_usage_wh(1_700, 9_500, 9_800, 2_000).units  # 1,260 Wh
    split = split_for_plan(ENERGY, usage_wh, held_units=hold_wh, available_units=available_wh)
    assert split == ChargeSplit(1_260, 1_260, 0, 0, 0, overage_billed=False)
    # The post takes 1,260 Wh from the hold and the rest of the hold is released.
    assert available_wh + hold_wh - split.charged_units == 32_073


def test_e3_time_beyond_the_hold_is_taken_from_the_free_allowance_and_leaves_12540_s() -> None:
    allowance_s = TIME.allowance_for_payment(10_000)  # 18,000 s
    hold_s = TIME.time_hold_s  # 3,600 s
    usage_s = time_usage_s(
        datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC), datetime(2024, 5, 1, 10, 30, 30, tzinfo=UTC), 60
    ).units
    assert usage_s == 5_460
    split = split_for_plan(TIME, usage_s, held_units=hold_s, available_units=allowance_s - hold_s)
    assert (split.from_hold_units, split.from_free_units, split.beyond_units) == (3_600, 1_860, 0)
    assert allowance_s - split.charged_units == 12_540


def test_e4_each_returned_pack_posts_its_one_held_delivery_and_8_remain() -> None:
    allowance = DELIVERIES.allowance_for_payment(12_500)  # 10 deliveries
    available = allowance - 2  # two packs handed over, one delivery held for each
    charged = 0
    for _ in range(2):
        split = split_for_plan(DELIVERIES, 1, held_units=1, available_units=available)
        assert (split.from_hold_units, split.from_free_units, split.beyond_units) == (1, 0, 0)
        charged += split.charged_units
    assert allowance - charged == 8


def test_a_subscription_bills_what_is_beyond_the_allowance_at_its_overage_price() -> None:
    split = split_for_plan(SUB, 5_000, held_units=1_000, available_units=500)
    assert split == ChargeSplit(5_000, 1_000, 500, 3_500, 1_050, overage_billed=True)


def test_a_prepaid_plan_owes_what_is_beyond_the_allowance_and_bills_no_overage() -> None:
    split = split_for_plan(ENERGY, 5_000, held_units=1_000, available_units=500)
    assert split == ChargeSplit(5_000, 1_000, 500, 3_500, 0, overage_billed=False)


def test_overage_money_is_rounded_half_to_even() -> None:
    # 300 KRW per kWh: 5 Wh cost 1.5 KRW -> 2, 15 Wh cost 4.5 KRW -> 4.
    assert split_for_plan(SUB, 5, held_units=0, available_units=0).overage_minor == 2
    assert split_for_plan(SUB, 15, held_units=0, available_units=0).overage_minor == 4


def test_a_usage_below_the_hold_charges_only_the_usage_and_zero_charges_nothing() -> None:
    assert split_for_plan(SUB, 0, held_units=1_700, available_units=9).charged_units == 0
    assert split_for_plan(SUB, 10, held_units=1_700, available_units=9).from_free_units == 0


_UNITS = st.integers(0, MAX_TRANSFER_AMOUNT)


@given(
    usage_units=_UNITS,
    held_units=_UNITS,
    available_units=_UNITS,
    overage_price_minor=st.integers(0, MAX_PAYMENT_MINOR),
    price_units=st.integers(1, MAX_TRANSFER_AMOUNT),
)
def test_the_parts_add_up_to_the_usage_and_never_exceed_the_allowance(
    usage_units: int,
    held_units: int,
    available_units: int,
    overage_price_minor: int,
    price_units: int,
) -> None:
    split = split_charge(
        usage_units,
        held_units=held_units,
        available_units=available_units,
        overage_price_minor=overage_price_minor,
        price_units=price_units,
    )
    assert split.charged_units + split.beyond_units == usage_units
    assert min(split.from_hold_units, split.from_free_units, split.beyond_units) >= 0
    assert split.from_hold_units <= held_units
    assert split.from_free_units <= available_units
    assert split.charged_units <= held_units + available_units
    # Only what the allowance cannot cover is beyond it.
    assert split.beyond_units == max(0, usage_units - held_units - available_units)
    assert split.overage_minor >= 0
    if overage_price_minor == 0 or split.beyond_units == 0:
        assert split.overage_minor == 0
