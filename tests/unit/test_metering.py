"""Pure tests of R4 metering (swapd.domain.metering) and of the hold it is posted against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.domain.metering import Usage, energy_usage_wh, meter, time_usage_s
from swapd.domain.packs import Pack, PackStatus, deliverable_energy_wh
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from tests.plans import DELIVERIES, ENERGY, TIME

G2_WH = 1_700  # pack model G2 of the worked examples
T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)
KST = timezone(timedelta(hours=9))


bp = st.integers(min_value=0, max_value=10_000)
nominal = st.integers(min_value=1, max_value=1_000_000)


# ---------------------------------------------------------------------------------------------
# Energy (R4, main patent)
# ---------------------------------------------------------------------------------------------


def test_e1_energy_usage() -> None:
    # E1 step 3: SoH 95.0 and SoC 98.0 at hand-over, SoC 20.0 at return:
    # 1700 Wh * 95% * (98-20)% = 1259.7 -> 1260
    assert energy_usage_wh(G2_WH, 9_500, 9_800, 2_000) == Usage(1_260, None)


@pytest.mark.parametrize(
    ("nominal_wh", "soh_out", "soc_out", "soc_in", "units"),
    [
        (1_700, 9_800, 9_500, 4_000, 916),  # 1700 Wh * 98% * (95-40)% = 916.3 -> 916
        (1_700, 10_000, 10_000, 0, 1_700),  # a full drain of a new pack: 1700 * 100% * 100%
        (1_700, 9_525, 9_850, 2_025, 1_267),  # 1700 * 95.25% * 78.25% = 1267.063125 -> 1267
        (1_700, 10_000, 10_000, 9_950, 8),  # 1700 * 0.50% = 8.5 -> 8 (tie, to even)
        (1_700, 10_000, 10_000, 9_850, 26),  # 1700 * 1.50% = 25.5 -> 26 (tie, to even)
        (1, 10_000, 5_000, 0, 0),  # 1 * 50% = 0.5 -> 0 (tie, to even)
        (3, 10_000, 5_000, 0, 2),  # 3 * 50% = 1.5 -> 2
        (5, 10_000, 5_000, 0, 2),  # 5 * 50% = 2.5 -> 2
        (7, 10_000, 5_000, 0, 4),  # 7 * 50% = 3.5 -> 4
        (1_700, 9_500, 1, 0, 0),  # 1700 * 95% * 0.01% = 0.1615 -> 0
        (1_700, 0, 10_000, 0, 0),  # a dead pack (SoH 0) delivers nothing
    ],
)
def test_energy_usage(nominal_wh: int, soh_out: int, soc_out: int, soc_in: int, units: int) -> None:
    assert energy_usage_wh(nominal_wh, soh_out, soc_out, soc_in) == Usage(units, None)


def test_no_soc_drop_bills_zero_without_anomaly() -> None:
    assert energy_usage_wh(G2_WH, 9_500, 9_800, 9_800) == Usage(0, None)


def test_soc_rise_bills_zero_and_raises_an_anomaly() -> None:
    # R4: a return with soc_in > soc_out bills 0 and raises an anomaly
    assert energy_usage_wh(G2_WH, 9_500, 2_000, 2_500) == Usage(
        0, "SoC rose from 2000 bp at hand-over to 2500 bp at return"
    )


@given(nominal_wh=nominal, soh_out=bp, soc_out=bp, soc_in=bp)
def test_energy_usage_is_exact_and_bounded(
    nominal_wh: int, soh_out: int, soc_out: int, soc_in: int
) -> None:
    usage = energy_usage_wh(nominal_wh, soh_out, soc_out, soc_in)
    drop = max(0, soc_out - soc_in)
    # exactly round_half_even(nominal * soh/100% * drop/100%)
    assert usage.units == round(Fraction(nominal_wh * soh_out * drop, 10**8))
    # never negative, never above the hold placed at hand-over (the deliverable energy)
    assert 0 <= usage.units <= deliverable_energy_wh(nominal_wh, soh_out, soc_out)
    assert usage.units <= nominal_wh
    assert (usage.anomaly is not None) == (soc_in > soc_out)


@given(nominal_wh=nominal, soh_out=bp, soc_out=bp, a=bp, b=bp)
def test_energy_usage_grows_with_the_drop(
    nominal_wh: int, soh_out: int, soc_out: int, a: int, b: int
) -> None:
    low, high = min(a, b), max(a, b)
    # returning emptier never bills less
    assert (
        energy_usage_wh(nominal_wh, soh_out, soc_out, low).units
        >= energy_usage_wh(nominal_wh, soh_out, soc_out, high).units
    )


# ---------------------------------------------------------------------------------------------
# Deliverable energy: the hold placed at hand-over (rounded up)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nominal_wh", "soh", "soc", "wh"),
    [
        (1_700, 9_500, 9_800, 1_583),  # E1 step 2: ceil(1700 * 0.95 * 0.98) = ceil(1582.7) = 1583
        (1_700, 10_000, 10_000, 1_700),  # E1 step 4: 1700 * 1.00 * 1.00 = 1700
        (1_700, 10_000, 9_500, 1_615),  # 1700 * 0.95 = 1615 exactly
        (1_700, 9_800, 9_600, 1_600),  # ceil(1700 * 0.98 * 0.96) = ceil(1599.36) = 1600
        (1_700, 9_500, 1, 1),  # ceil(0.1615) = 1
        (1_700, 9_500, 0, 0),  # empty pack
    ],
)
def test_deliverable_energy(nominal_wh: int, soh: int, soc: int, wh: int) -> None:
    assert deliverable_energy_wh(nominal_wh, soh, soc) == wh


def test_pack_deliverable_wh_uses_its_own_readings() -> None:
    pack = Pack("B-0001", "G2", G2_WH, 9_500, 9_800, 12, PackStatus.IN_SLOT, "ST1", 3)
    assert pack.deliverable_wh == 1_583  # ceil(1700 * 0.95 * 0.98)


@given(nominal_wh=nominal, soh=bp, soc=bp)
def test_deliverable_energy_is_the_exact_ceiling(nominal_wh: int, soh: int, soc: int) -> None:
    wh = deliverable_energy_wh(nominal_wh, soh, soc)
    exact = Fraction(nominal_wh * soh * soc, 10**8)
    assert wh - 1 < exact <= wh
    assert 0 <= wh <= nominal_wh


# ---------------------------------------------------------------------------------------------
# Time (R4, time-based family member)
# ---------------------------------------------------------------------------------------------


def test_e3_time_usage() -> None:
    # E3: 09:00:00 -> 10:30:30 is 5430 s = 90.5 min -> 91 started minutes = 5460 s
    out = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)
    back = datetime(2026, 11, 2, 10, 30, 30, tzinfo=UTC)
    assert time_usage_s(out, back, 60) == Usage(5_460, None)
    assert 18_000 - time_usage_s(out, back, 60).units == 12_540  # E3: 12,540 s left


@pytest.mark.parametrize(
    ("held", "granularity_s", "units"),
    [
        (timedelta(0), 60, 0),  # nothing held
        (timedelta(microseconds=1), 60, 60),  # a started minute counts
        (timedelta(seconds=59, microseconds=500_000), 60, 60),
        (timedelta(seconds=60), 60, 60),  # exactly one minute
        (timedelta(seconds=60, microseconds=1), 60, 120),  # the second minute has started
        (timedelta(seconds=61), 60, 120),
        (timedelta(hours=1), 60, 3_600),
        (timedelta(seconds=5_430, microseconds=250_000), 1, 5_431),  # ceil(5430.25 s) = 5431
        (timedelta(seconds=5_430), 900, 6_300),  # ceil(5430 / 900) = 7 steps of 15 min = 6300
        (timedelta(days=3), 3_600, 259_200),  # 72 h exactly
    ],
)
def test_time_usage(held: timedelta, granularity_s: int, units: int) -> None:
    assert time_usage_s(T0, T0 + held, granularity_s) == Usage(units, None)


def test_time_usage_across_timezones() -> None:
    # 18:30:30 KST == 09:30:30 UTC: held 1830 s = 30.5 min -> 31 minutes = 1860 s
    assert time_usage_s(T0, datetime(2026, 11, 2, 18, 30, 30, tzinfo=KST), 60) == Usage(1_860)


def test_time_usage_with_clock_skew_bills_zero_and_raises_an_anomaly() -> None:
    assert time_usage_s(T0, T0 - timedelta(seconds=1), 60) == Usage(
        0, "returned before it was handed over (clock skew)"
    )


@given(
    held_us=st.integers(min_value=-(10**10), max_value=30 * 24 * 3_600 * 10**6),
    granularity_s=st.integers(min_value=1, max_value=7_200),
)
def test_time_usage_is_held_seconds_rounded_up_to_the_granularity(
    held_us: int, granularity_s: int
) -> None:
    usage = time_usage_s(T0, T0 + timedelta(microseconds=held_us), granularity_s)
    assert usage.units >= 0
    assert usage.units % granularity_s == 0
    if held_us < 0:
        assert usage == Usage(0, "returned before it was handed over (clock skew)")
    else:
        assert usage.anomaly is None
        held = Fraction(held_us, 10**6)
        assert held <= usage.units < held + granularity_s


# ---------------------------------------------------------------------------------------------
# meter(): the plan's unit chooses the rule
# ---------------------------------------------------------------------------------------------


def _meter(plan: Plan, soc_in_bp: int = 2_000, held: timedelta = timedelta(seconds=5_430)) -> Usage:
    return meter(
        plan,
        nominal_wh=G2_WH,
        soh_out_bp=9_500,
        soc_out_bp=9_800,
        soc_in_bp=soc_in_bp,
        handed_over_at=T0,
        returned_at=T0 + held,
    )


def test_meter_energy_plan() -> None:
    assert _meter(ENERGY) == Usage(1_260)  # 1700 * 95% * 78% = 1259.7 -> 1260 (E1)


def test_meter_time_plan() -> None:
    assert _meter(TIME) == Usage(5_460)  # 5430 s -> 91 minutes (E3)


def test_meter_time_plan_uses_the_plans_granularity() -> None:
    quarter = Plan("T15", PlanKind.PREPAID_TIME, Unit.TIME_S, "KRW", 2_000, 3_600, granularity_s=900)
    assert _meter(quarter) == Usage(6_300)  # ceil(5430 / 900) = 7 * 900


def test_meter_deliveries_plan_counts_one_per_pack() -> None:
    # E4: one delivery per pack, whatever the energy or time
    assert _meter(DELIVERIES) == Usage(1)
    assert _meter(DELIVERIES, soc_in_bp=9_900, held=timedelta(0)) == Usage(1)


def test_meter_subscription_follows_its_unit() -> None:
    sub_energy = Plan(
        "S-E",
        PlanKind.SUBSCRIPTION,
        Unit.ENERGY_WH,
        "KRW",
        0,
        1_000,
        fee_minor=30_000,
        included_units=100_000,
    )
    sub_time = Plan(
        "S-T",
        PlanKind.SUBSCRIPTION,
        Unit.TIME_S,
        "KRW",
        0,
        3_600,
        fee_minor=30_000,
        included_units=360_000,
        granularity_s=300,
    )
    assert _meter(sub_energy) == Usage(1_260)
    assert _meter(sub_time) == Usage(5_700)  # ceil(5430 / 300) = 19 * 300


def test_meter_energy_plan_soc_rise_is_an_anomaly() -> None:
    usage = _meter(ENERGY, soc_in_bp=9_900)
    assert usage.units == 0
    assert usage.anomaly == "SoC rose from 9800 bp at hand-over to 9900 bp at return"
