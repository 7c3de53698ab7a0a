"""The money use cases on the unit-of-work ports (payments.top_up, refund, adjust,
pay_receivable), on the in-memory store and on SQLite alike (see conftest.py)."""

from __future__ import annotations

import pytest
from tests.unit.services.conftest import Balance, Network, balance
from tests.unit.services.test_swap_lifecycle import app

from swapd.domain.errors import Conflict, InvalidInput, NotFound
from swapd.services import payments, swaps
from swapd.services.swaps import BatteryReading


def test_a_top_up_buys_allowance_once_per_payment_reference(network: Network) -> None:
    network.rider("R1")
    first = payments.top_up(network.db, "R1", 10_000, "pay-9")
    assert (first.units, first.unit, first.repeated) == (33_333, "Wh", False)
    again = payments.top_up(network.db, "R1", 10_000, "pay-9")
    assert again.repeated and balance(network, "R1") == Balance(33_333, 0, 33_333, 10_000)
    with pytest.raises(Conflict, match="different amount or rider"):
        payments.top_up(network.db, "R1", 9_999, "pay-9")
    with pytest.raises(NotFound):
        payments.top_up(network.db, "nobody", 100, "pay-10")
    with pytest.raises(InvalidInput):
        payments.top_up(network.db, "R1", 0, "pay-11")


def test_a_refund_takes_the_allowance_it_bought_rounded_against_the_rider(network: Network) -> None:
    network.rider("R1", top_up_minor=10_000)
    done = payments.refund(network.db, "R1", 5_000, reason="moved away", actor="support", key="k1")
    assert (done.amount_minor, done.units, done.repeated) == (5_000, 16_667, False)
    assert balance(network, "R1") == Balance(16_666, 0, 16_666, 5_000)
    again = payments.refund(network.db, "R1", 5_000, reason="moved away", actor="support", key="k1")
    assert again.repeated and again.units == 16_667
    with pytest.raises(Conflict, match="prepaid money"):
        payments.refund(network.db, "R1", 5_001, reason="too much", actor="support", key="k2")
    assert balance(network, "R1") == Balance(16_666, 0, 16_666, 5_000)


def test_a_refund_leaves_what_packs_out_hold(network: Network) -> None:
    network.station("ST1")
    network.pack("P1", station_id="ST1", slot_no=1)
    network.rider("R1", top_up_minor=1_000)  # 3,333 Wh; a full pack holds 1,700
    assert swaps.authorize(network.db, "ST1", app("R1")).accepted
    with pytest.raises(Conflict, match="held by packs out"):
        payments.refund(network.db, "R1", 999, reason="r", actor="support", key="k1")
    swaps.battery_out_timeout(network.db, "ST1", "1", token=app("R1"))
    assert payments.refund(network.db, "R1", 1_000, reason="r", actor="support", key="k1").units == 3_333


def test_adjustments_add_and_take_allowance_and_money_follows(network: Network) -> None:
    network.rider("R1", top_up_minor=10_000)
    up = payments.adjust(network.db, "R1", 667, reason="goodwill", actor="support", key="a1")
    assert (up.units, up.repeated) == (667, False)
    assert balance(network, "R1") == Balance(34_000, 0, 34_000, 10_000)
    down = payments.adjust(network.db, "R1", -17_000, reason="fix", actor="support", key="a2")
    assert down.units == -17_000
    # Half the allowance left, and half the prepaid money was earned with it.
    assert balance(network, "R1") == Balance(17_000, 0, 17_000, 5_000)
    assert payments.adjust(network.db, "R1", -17_000, reason="fix", actor="support", key="a2").repeated
    with pytest.raises(Conflict, match="different adjustment"):
        payments.adjust(network.db, "R1", 17_000, reason="fix", actor="support", key="a2")
    with pytest.raises(Conflict, match="cannot take away"):
        payments.adjust(network.db, "R1", -17_001, reason="fix", actor="support", key="a3")


def test_a_receivable_payment_is_never_more_than_is_owed(network: Network) -> None:
    network.rider("R1", top_up_minor=1_000)
    with pytest.raises(Conflict, match="owes 0 minor units"):
        payments.pay_receivable(network.db, "R1", 100, "pay-r1")
    network.station("ST1")
    network.pack("P1", station_id="ST1", slot_no=1)
    # Nothing owed after a swap on a prepaid plan: the allowance covers it or it is overdrawn.
    swaps.authorize(network.db, "ST1", app("R1"))
    swaps.battery_out(network.db, "ST1", "o", [BatteryReading(1, "P1", 10_000, 10_000)], token=app("R1"))
    with pytest.raises(Conflict, match="owes 0 minor units"):
        payments.pay_receivable(network.db, "R1", 1, "pay-r2")
