"""Offline swaps, the pure rules: the time a replay is metered at, which of two readings of a pack
is the newer, what a hand-over beyond the allowance buys on credit, the offline limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from swapd.domain.errors import InvalidInput
from swapd.domain.offline import (
    MAX_CLOCK_AHEAD,
    beyond_offline_limit,
    is_stale,
    offline_credit,
    replay_time,
)
from swapd.domain.plans import DEFAULT_OFFLINE_SWAPS, MAX_OFFLINE_SWAPS, Plan, PlanKind
from swapd.domain.quantities import MAX_PAYMENT_MINOR, Unit
from tests.plans import BUNDLE, ENERGY, SUB, TIME

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_a_replay_is_metered_at_the_stations_time() -> None:
    earlier = T0 - timedelta(hours=3)
    assert replay_time(earlier, T0).at == earlier
    assert not replay_time(earlier, T0).clock_ahead


def test_a_station_clock_ahead_of_the_server_is_metered_at_the_arrival() -> None:
    assert replay_time(T0 + MAX_CLOCK_AHEAD, T0).at == T0  # a little ahead: never after arrival
    ahead = replay_time(T0 + MAX_CLOCK_AHEAD + timedelta(seconds=1), T0)
    assert (ahead.at, ahead.clock_ahead) == (T0, True)


def test_only_a_reading_older_than_what_is_known_is_stale() -> None:
    assert is_stale(T0, T0 + timedelta(seconds=1))
    assert not is_stale(T0, T0)  # the replay of that very move
    assert not is_stale(T0 + timedelta(seconds=1), T0)
    assert not is_stale(T0, None)  # nothing known of when it got there


def test_an_energy_shortfall_buys_the_least_money_that_covers_it() -> None:
    # 300 KRW per 1,000 Wh: 1,083 Wh cost 324.9 KRW, so 325 KRW, which buy 1,083 Wh.
    credit = offline_credit(ENERGY, 1_083)
    assert credit is not None
    assert (credit.shortfall_units, credit.amount_minor, credit.units) == (1_083, 325, 1_083)
    # 1 Wh costs 0.3 KRW: 1 KRW, which buys 3 Wh (what a top-up of 1 KRW buys).
    one = offline_credit(ENERGY, 1)
    assert one is not None and (one.amount_minor, one.units) == (1, 3)


def test_deliveries_and_time_are_bought_at_the_plans_price() -> None:
    delivery = offline_credit(BUNDLE, 1)
    assert delivery is not None and (delivery.amount_minor, delivery.units) == (1_250, 1)
    hour = offline_credit(TIME, 3_600)
    assert hour is not None and (hour.amount_minor, hour.units) == (2_000, 3_600)


def test_a_subscription_without_overage_buys_at_its_fee_for_its_included_units() -> None:
    no_overage = replace(SUB, id="sub0", price_minor=0)
    credit = offline_credit(no_overage, 1_000)
    assert credit is not None and (credit.amount_minor, credit.units) == (300, 1_000)


def test_nothing_is_bought_without_a_shortfall_or_on_a_plan_that_bills_overage() -> None:
    assert offline_credit(ENERGY, 0) is None
    assert offline_credit(SUB, 5_000) is None  # its overage is billed at the return, as online


def test_a_credit_never_exceeds_one_payment() -> None:
    dear = Plan("dear", PlanKind.PREPAID_TIME, Unit.TIME_S, "KRW", MAX_PAYMENT_MINOR, 1)
    credit = offline_credit(dear, 3)
    assert credit is not None and (credit.amount_minor, credit.units) == (MAX_PAYMENT_MINOR, 1)


def test_the_offline_limit_is_the_plans_with_a_bounded_default() -> None:
    assert ENERGY.offline_swaps_max == DEFAULT_OFFLINE_SWAPS == 1
    assert not beyond_offline_limit(ENERGY, 1)
    assert beyond_offline_limit(ENERGY, 2)
    assert replace(ENERGY, offline_swaps_max=0).offline_swaps_max == 0
    with pytest.raises(InvalidInput, match="offline_swaps_max"):
        replace(ENERGY, offline_swaps_max=MAX_OFFLINE_SWAPS + 1)
    with pytest.raises(InvalidInput, match="offline_swaps_max"):
        replace(ENERGY, offline_swaps_max=-1)
