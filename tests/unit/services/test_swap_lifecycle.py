"""The swap path's use cases through the unit-of-work ports, on the in-memory store and on SQLite
with the same assertions (see conftest.py): Authorize, BatteryOut, BatteryIn, the timeout, and
the server's expiry of offers; repeats, refusals and rollbacks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.plans import BUNDLE, TIME
from tests.unit.services.conftest import Balance, Network, balance, pack, slot_holds

from swapd.domain.errors import Conflict, InvalidInput, NotFound
from swapd.domain.lifecycle import SwapState
from swapd.domain.packs import PackStatus
from swapd.domain.riders import IdToken, TokenType
from swapd.services import swaps
from swapd.services.swaps import BatteryReading


def app(rider_id: str) -> IdToken:
    return IdToken(TokenType.APP, rider_id)


def key(serial: str) -> IdToken:
    return IdToken(TokenType.BATTERY_SERIAL, serial)


def e1_network(network: Network) -> None:
    """E1's network: B-0001 in ST1 slot 3 (98 % SoC, 95 % SoH), B-0002 in ST2 slot 1, rider R1 on
    the energy plan with 10,000 KRW (33,333 Wh)."""
    network.station("ST1")
    network.station("ST2")
    network.pack("B-0001", soc_pct=98, soh_pct=95, station_id="ST1", slot_no=3)
    network.pack("B-0002", station_id="ST2", slot_no=1)
    network.rider("R1", top_up_minor=10_000)


def e1_first_hand_over(network: Network) -> None:
    offer = swaps.authorize(network.db, "ST1", app("R1"))
    assert offer.accepted and offer.offered_slots == [3]
    assert (offer.offered[0].hold_units, offer.available_units) == (1_583, 31_750)
    out = swaps.battery_out(
        network.db, "ST1", "r1", [BatteryReading(3, "B-0001", 9_800, 9_500)], token=app("R1")
    )
    assert [p.outcome for p in out.packs] == ["handed_over"]


def test_e1_return_is_metered_charged_and_the_next_pack_handed_over(network: Network) -> None:
    e1_network(network)
    assert balance(network, "R1") == Balance(33_333, 0, 33_333, 10_000)
    e1_first_hand_over(network)
    assert balance(network, "R1") == Balance(33_333, 1_583, 31_750, 10_000)
    assert pack(network, "B-0001").status is PackStatus.WITH_RIDER
    assert slot_holds(network, "ST1", 3) is None

    network.clock.set(network.clock.now() + timedelta(hours=2))
    decision = swaps.authorize(network.db, "ST2", key("B-0001"), request_id="r2")
    assert decision.accepted and decision.rider_id == "R1" and decision.offered_slots == [1]
    returned = swaps.battery_in(
        network.db, "ST2", "r2", [BatteryReading(5, "B-0001", 2_000, 9_300)], token=key("B-0001")
    )
    (outcome,) = returned.packs
    assert (outcome.outcome, outcome.rider_id, outcome.usage_units, outcome.charged_units) == (
        "returned",
        "R1",
        1_260,
        1_260,
    )
    assert (outcome.beyond_units, outcome.revenue_minor, outcome.hold_units) == (0, 378, 1_583)
    assert balance(network, "R1") == Balance(32_073, 1_700, 30_373, 9_622)
    returned_pack = pack(network, "B-0001")
    assert (returned_pack.status, returned_pack.station_id, returned_pack.slot_no) == (
        PackStatus.IN_SLOT,
        "ST2",
        5,
    )
    assert (returned_pack.soc_bp, returned_pack.soh_bp) == (2_000, 9_300)
    assert slot_holds(network, "ST2", 5) == "B-0001"

    out = swaps.battery_out(
        network.db, "ST2", "r2", [BatteryReading(1, "B-0002", 10_000, 10_000)], token=key("B-0001")
    )
    assert [(p.outcome, p.hold_units) for p in out.packs] == [("handed_over", 1_700)]
    assert balance(network, "R1") == Balance(32_073, 1_700, 30_373, 9_622)
    assert pack(network, "B-0002").rider_id == "R1"
    assert network.alerts() == []


def test_a_repeated_event_is_answered_from_its_record_and_changes_nothing(network: Network) -> None:
    e1_network(network)
    e1_first_hand_over(network)
    reading = [BatteryReading(5, "B-0001", 2_000, 9_300)]
    first = swaps.battery_in(network.db, "ST2", "r2", reading)
    after_first = balance(network, "R1")
    again = swaps.battery_in(network.db, "ST2", "r2", reading)
    assert (first.repeated, again.repeated) == (False, True)
    assert again.packs == first.packs and again.swap_id == first.swap_id
    assert balance(network, "R1") == after_first
    repeated_out = swaps.battery_out(
        network.db, "ST1", "r1", [BatteryReading(3, "B-0001", 9_800, 9_500)], token=app("R1")
    )
    assert repeated_out.repeated and pack(network, "B-0001").status is PackStatus.IN_SLOT


def test_a_refusal_is_recorded_and_a_repeat_gets_the_same_answer(network: Network) -> None:
    e1_network(network)
    network.rider("R2")  # no allowance
    refused = swaps.authorize(network.db, "ST1", app("R2"), request_id="7")
    assert (refused.accepted, refused.reason) == (False, "no_credit")
    assert refused.swap_id is not None
    again = swaps.authorize(network.db, "ST1", app("R2"), request_id="7")
    assert (again.accepted, again.reason, again.swap_id) == (False, refused.reason, refused.swap_id)
    state = network.db.read(lambda uow: uow.repo.swap(refused.swap_id or 0))
    assert state is not None and state.state is SwapState.REFUSED
    assert pack(network, "B-0001").reserved_swap_id is None


def test_an_open_offer_is_offered_again_not_twice(network: Network) -> None:
    e1_network(network)
    first = swaps.authorize(network.db, "ST1", app("R1"))
    second = swaps.authorize(network.db, "ST1", app("R1"))
    assert second.swap_id == first.swap_id and second.offered == first.offered
    assert balance(network, "R1").held_units == 1_583


def test_the_timeout_releases_the_holds_and_the_reservations(network: Network) -> None:
    e1_network(network)
    offer = swaps.authorize(network.db, "ST1", app("R1"), request_id="41")
    assert pack(network, "B-0001").reserved_swap_id == offer.swap_id
    result = swaps.battery_out_timeout(network.db, "ST1", "41")
    assert [(p.outcome, p.hold_units) for p in result.packs] == [("released", 1_583)]
    assert balance(network, "R1") == Balance(33_333, 0, 33_333, 10_000)
    assert pack(network, "B-0001").reserved_swap_id is None
    swap = network.db.read(lambda uow: uow.repo.swap(offer.swap_id or 0))
    assert swap is not None and swap.state is SwapState.ABANDONED
    assert swaps.battery_out_timeout(network.db, "ST1", "41").repeated


def test_offers_nobody_answered_expire(network: Network) -> None:
    e1_network(network)
    offer = swaps.authorize(network.db, "ST1", app("R1"))
    assert swaps.expire_stale_offers(network.db, older_than_s=300) == []
    network.clock.set(network.clock.now() + timedelta(seconds=301))
    assert swaps.expire_stale_offers(network.db, older_than_s=300) == [offer.swap_id]
    assert balance(network, "R1").held_units == 0
    with pytest.raises(InvalidInput):
        swaps.expire_stale_offers(network.db, older_than_s=0)
    with pytest.raises(NotFound):
        swaps.abandon_offer(network.db, 999)


def test_a_pack_nobody_holds_raises_an_alert_and_changes_nothing(network: Network) -> None:
    e1_network(network)
    result = swaps.battery_in(network.db, "ST1", "9", [BatteryReading(4, "X-1", 5_000, 9_000)])
    assert [p.outcome for p in result.packs] == ["foreign_pack"]
    assert network.alerts() == ["foreign_pack"]
    assert slot_holds(network, "ST1", 4) is None


def test_a_failed_event_writes_nothing(network: Network) -> None:
    """A BatteryIn into a slot that holds another pack is refused as a whole: the first pack of
    the same event is not returned either."""
    e1_network(network)
    e1_first_hand_over(network)
    before = balance(network, "R1")
    readings = [BatteryReading(4, "B-0001", 2_000, 9_300), BatteryReading(3, "B-0009", 50, 90)]
    network.pack("B-0009", station_id="ST1", slot_no=3)
    with pytest.raises(Conflict):
        swaps.battery_in(
            network.db, "ST1", "r3", [readings[0], BatteryReading(3, "B-0010", 5_000, 9_000)]
        )
    assert balance(network, "R1") == before
    assert pack(network, "B-0001").status is PackStatus.WITH_RIDER
    assert slot_holds(network, "ST1", 4) is None
    # The same requestId, now valid, is applied: the failed attempt left no record behind.
    ok = swaps.battery_in(network.db, "ST1", "r3", [readings[0]])
    assert not ok.repeated and ok.packs[0].outcome == "returned"


def test_a_pack_that_leaves_without_a_rider_is_quarantined(network: Network) -> None:
    e1_network(network)
    result = swaps.battery_out(network.db, "ST1", "5", [BatteryReading(3, "B-0001", 9_800, 9_500)])
    assert [p.outcome for p in result.packs] == ["handover_without_rider"]
    quarantined = pack(network, "B-0001")
    assert (quarantined.status, quarantined.station_id, quarantined.slot_no) == (
        PackStatus.QUARANTINED,
        None,
        None,
    )
    assert slot_holds(network, "ST1", 3) is None
    assert network.alerts() == ["handover_without_rider"]


def test_an_operator_withdraws_and_restocks_without_billing(network: Network) -> None:
    e1_network(network)
    network.card("STAFF-1", operator=True)
    staff = IdToken(TokenType.RFID, "STAFF-1")
    out = swaps.battery_out(
        network.db, "ST1", "w1", [BatteryReading(3, "B-0001", 9_700, 9_500)], token=staff
    )
    assert [p.outcome for p in out.packs] == ["withdrawn"]
    assert pack(network, "B-0001").status is PackStatus.IN_STOCK
    back = swaps.battery_in(
        network.db, "ST2", "w2", [BatteryReading(2, "B-0001", 9_900, 9_500)], token=staff
    )
    assert [p.outcome for p in back.packs] == ["restocked"]
    restocked = pack(network, "B-0001")
    assert (restocked.station_id, restocked.slot_no, restocked.soc_bp) == ("ST2", 2, 9_900)
    assert balance(network, "R1") == Balance(33_333, 0, 33_333, 10_000)


def test_a_returned_pack_is_the_key_to_the_next_swap_at_one_station_only(network: Network) -> None:
    e1_network(network)
    network.station("ST3")
    network.pack("B-0003", station_id="ST3", slot_no=1)
    e1_first_hand_over(network)
    first = swaps.authorize(network.db, "ST2", key("B-0001"))
    assert first.accepted
    elsewhere = swaps.authorize(network.db, "ST3", key("B-0001"))
    assert (elsewhere.accepted, elsewhere.reason) == (False, "pack_at_other_station")
    assert network.alerts() == ["pack_two_places"]


def test_e3_time_is_counted_in_started_minutes(network: Network) -> None:
    network.station("ST1")
    network.pack("B-1", station_id="ST1", slot_no=1)
    network.rider("T1", TIME, top_up_minor=4_000)  # two hours
    assert balance(network, "T1").posted_units == 7_200
    swaps.authorize(network.db, "ST1", app("T1"))
    swaps.battery_out(
        network.db, "ST1", "o", [BatteryReading(1, "B-1", 10_000, 10_000)], token=app("T1")
    )
    network.clock.set(network.clock.now() + timedelta(minutes=30, seconds=1))
    back = swaps.battery_in(network.db, "ST1", "i", [BatteryReading(1, "B-1", 4_000, 10_000)])
    assert (back.packs[0].usage_units, back.packs[0].charged_units) == (1_860, 1_860)
    assert balance(network, "T1").available_units == 7_200 - 1_860


def test_e4_a_bundle_counts_deliveries(network: Network) -> None:
    network.station("ST1")
    network.pack("B-1", station_id="ST1", slot_no=1)
    network.rider("D1", BUNDLE, top_up_minor=12_500)
    offer = swaps.authorize(network.db, "ST1", app("D1"))
    assert offer.accepted and offer.offered[0].hold_units == 1
    swaps.battery_out(
        network.db, "ST1", "o", [BatteryReading(1, "B-1", 10_000, 10_000)], token=app("D1")
    )
    back = swaps.battery_in(network.db, "ST1", "i", [BatteryReading(2, "B-1", 1_000, 10_000)])
    assert (back.packs[0].charged_units, back.packs[0].revenue_minor) == (1, 1_250)
    assert balance(network, "D1") == Balance(9, 0, 9, 11_250)


def test_an_authorize_reusing_the_request_of_a_returned_swap_is_a_conflict(network: Network) -> None:
    """Found by test_fake_matches_sql: the requestId of a swap that a BatteryIn recorded (here of
    a pack nobody holds, so with no rider) is not an Authorize to repeat. It used to fail an
    assertion (an internal error); it is a Conflict, and nothing is written."""
    e1_network(network)
    swaps.battery_in(network.db, "ST1", "1", [BatteryReading(4, "X-1", 5_000, 9_000)])
    with pytest.raises(Conflict, match="requestId 1 is used at station ST1"):
        swaps.authorize(network.db, "ST1", app("R1"), request_id="1")
    assert balance(network, "R1").held_units == 0
    assert pack(network, "B-0001").reserved_swap_id is None
