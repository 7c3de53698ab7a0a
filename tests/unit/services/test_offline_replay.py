"""Swaps an offline station served, replayed with their own times (services/swaps/offline.py), on
the in-memory store and on SQLite with the same assertions: metering by the station's times,
each event once, the allowance a hand-over lacked bought on credit, and conflicts between a
replayed reading and a later one resolved by their times."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.plans import BUNDLE, TIME
from tests.unit.services.conftest import START, Balance, Network, balance, pack, slot_holds

from swapd.domain.packs import PackStatus
from swapd.domain.riders import IdToken, TokenType
from swapd.services import swaps
from swapd.services.money import rider_accounts
from swapd.services.ports import UnitOfWork
from swapd.services.swaps import BatteryReading


def key(serial: str) -> IdToken:
    return IdToken(TokenType.BATTERY_SERIAL, serial)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def hand_over_online(network: Network, station_id: str, rider_id: str, slot: int, serial: str) -> None:
    app = IdToken(TokenType.APP, rider_id)
    assert swaps.authorize(network.db, station_id, app).accepted
    reading = BatteryReading(slot, serial, 10_000, 10_000)
    out = swaps.battery_out(network.db, station_id, f"on-{serial}", [reading], token=app)
    assert [p.outcome for p in out.packs] == ["handed_over"]


def replay(
    network: Network,
    event: str,
    station_id: str,
    request_id: str,
    reading: BatteryReading,
    token: IdToken,
    minutes: float,
) -> swaps.EventResult:
    run = swaps.battery_in if event == "in" else swaps.battery_out
    return run(network.db, station_id, request_id, [reading], token=token, offline_at=at(minutes))


def receivable(network: Network, rider_id: str) -> int:
    def work(uow: UnitOfWork) -> int:
        rider = uow.repo.rider(rider_id)
        assert rider is not None
        plan = uow.repo.plan(rider.plan_id)
        assert plan is not None
        return rider_accounts(uow.book, rider_id, plan).receivable.debit_balance

    return network.db.write(work)


def test_a_time_plan_is_metered_with_the_times_the_station_recorded(network: Network) -> None:
    """E3 served offline: handed over at 09:00, returned at 10:30:30 by the station's clock, and
    replayed hours later: 91 started minutes, whenever the replay comes."""
    network.station("ST1")
    network.pack("T-1", station_id="ST1", slot_no=1)
    network.rider("R3", TIME, top_up_minor=10_000)
    network.clock.set(at(60))  # 09:00
    hand_over_online(network, "ST1", "R3", 1, "T-1")
    network.clock.set(at(8 * 60))  # the station comes back at 16:00
    reading = BatteryReading(2, "T-1", 5_000, 10_000)
    returned = replay(network, "in", "ST1", "7", reading, key("T-1"), 150.5)
    (outcome,) = returned.packs
    assert (outcome.outcome, outcome.usage_units) == ("returned", 5_460)
    assert balance(network, "R3").posted_units == 18_000 - 5_460
    assert network.db.read(lambda uow: uow.repo.pack_placed_at("T-1")) == at(150.5)


def test_an_offline_swap_replayed_twice_is_billed_once(network: Network) -> None:
    network.station("ST1")
    network.pack("A-1", station_id="ST1", slot_no=1)
    network.pack("A-2", soc_pct=99, station_id="ST1", slot_no=2)
    network.rider("RA", top_up_minor=10_000)
    hand_over_online(network, "ST1", "RA", 1, "A-1")
    network.clock.set(at(120))
    events = [
        ("in", BatteryReading(5, "A-1", 2_000, 10_000)),
        ("out", BatteryReading(2, "A-2", 9_900, 10_000)),
    ]
    first = [replay(network, e, "ST1", "9", r, key("A-1"), 30) for e, r in events]
    after_first = (balance(network, "RA"), network.alerts())
    again = [replay(network, e, "ST1", "9", r, key("A-1"), 30) for e, r in events]
    assert [r.repeated for r in again] == [True, True]
    assert [r.packs for r in again] == [r.packs for r in first]
    assert (balance(network, "RA"), network.alerts()) == after_first
    # 1,700 Wh x 80 %, and the new pack's 1,683 Wh held: no alert, as for an offered hand-over.
    assert after_first == (Balance(33_333 - 1_360, 1_683, 33_333 - 1_360 - 1_683, 10_000 - 408), [])
    assert pack(network, "A-2").rider_id == "RA"


def test_a_hand_over_beyond_the_allowance_is_bought_on_credit_with_an_alert(network: Network) -> None:
    """RB has one delivery, held by the pack RB has. Offline, RB returns it (the delivery is
    used) and takes another: the delivery it lacks is bought at 1,250 KRW, owed."""
    network.station("ST1")
    network.pack("B-1", station_id="ST1", slot_no=1)
    network.pack("B-2", station_id="ST1", slot_no=2)
    network.rider("RB", BUNDLE, top_up_minor=1_250)
    hand_over_online(network, "ST1", "RB", 1, "B-1")
    assert balance(network, "RB") == Balance(1, 1, 0, 1_250)
    network.clock.set(at(120))
    replay(network, "in", "ST1", "4", BatteryReading(5, "B-1", 3_000, 10_000), key("B-1"), 20)
    out = replay(network, "out", "ST1", "4", BatteryReading(2, "B-2", 10_000, 10_000), key("B-1"), 20)
    (outcome,) = out.packs
    assert (outcome.outcome, outcome.rider_id, outcome.hold_units) == ("handed_over", "RB", 1)
    # The first delivery used (1,250 KRW earned), the second bought on credit and held.
    assert balance(network, "RB") == Balance(1, 1, 0, 1_250)
    assert receivable(network, "RB") == 1_250
    assert network.alerts() == ["offline_overdraw"]


def test_a_replayed_reading_older_than_a_later_one_elsewhere_changes_nothing(network: Network) -> None:
    """R holds P. Offline, ST1 takes P back from R (and hands R the pack Q), then hands P to R2
    (who brings P2 back). R2 returns P at ST2, online, before ST1 replays. The replay finds P
    known at ST2 since later than each of its readings: both are flagged, P stays at ST2, and
    R, the holder at the time of the first, is the one the swap is recorded for (Q is R's)."""
    network.station("ST1")
    network.station("ST2")
    for slot_no, serial, soc_pct in ((1, "P", 100), (2, "Q", 95), (3, "P2", 100)):
        network.pack(serial, soc_pct=soc_pct, station_id="ST1", slot_no=slot_no)
    network.rider("R", top_up_minor=10_000)
    network.rider("R2", top_up_minor=10_000)
    hand_over_online(network, "ST1", "R", 1, "P")
    hand_over_online(network, "ST1", "R2", 3, "P2")

    network.clock.set(at(180))
    reading = BatteryReading(4, "P", 3_000, 10_000)
    live = swaps.battery_in(network.db, "ST2", "live", [reading], token=key("P"))
    assert live.packs[0].rider_id == "R"  # swapd cannot know R2 had it: R is billed until now

    network.clock.set(at(240))
    stale_in = replay(network, "in", "ST1", "1", BatteryReading(1, "P", 6_000, 10_000), key("P"), 60)
    out_q = replay(network, "out", "ST1", "1", BatteryReading(2, "Q", 9_500, 10_000), key("P"), 60)
    back = replay(network, "in", "ST1", "2", BatteryReading(3, "P2", 5_000, 10_000), key("P2"), 120)
    stale_out = replay(network, "out", "ST1", "2", BatteryReading(1, "P", 6_000, 10_000), key("P2"), 120)

    assert [p.outcome for p in stale_in.packs] == ["stale_reading"]
    assert stale_in.packs[0].rider_id == "R"
    assert [(p.outcome, p.rider_id) for p in out_q.packs] == [("handed_over", "R")]
    assert [(p.outcome, p.rider_id) for p in back.packs] == [("returned", "R2")]
    assert [p.outcome for p in stale_out.packs] == ["stale_reading"]
    # One place each: P at ST2 since the live return, Q with R, P2 back in ST1's slot 3.
    p = pack(network, "P")
    assert (p.status, p.station_id, p.slot_no) == (PackStatus.IN_SLOT, "ST2", 4)
    assert (slot_holds(network, "ST1", 1), slot_holds(network, "ST2", 4)) == (None, "P")
    assert pack(network, "Q").rider_id == "R"
    assert slot_holds(network, "ST1", 3) == "P2"
    assert network.alerts() == ["offline_conflict", "offline_conflict"]


def test_a_replayed_reading_newer_than_where_the_pack_was_moves_it_there(network: Network) -> None:
    """P went back into ST2 at 10:00 (live); ST1 replays P put into its slot 6 at 11:00: P left
    ST2 unreported (that station was offline too). The newer reading wins, with an alert."""
    network.station("ST1")
    network.station("ST2")
    network.pack("P", station_id="ST2", slot_no=1)
    network.rider("R", top_up_minor=10_000)
    hand_over_online(network, "ST2", "R", 1, "P")
    network.clock.set(at(60))
    swaps.battery_in(network.db, "ST2", "live", [BatteryReading(2, "P", 5_000, 10_000)], token=key("P"))
    network.clock.set(at(180))
    moved = replay(network, "in", "ST1", "3", BatteryReading(6, "P", 4_000, 10_000), key("P"), 120)
    assert [p.outcome for p in moved.packs] == ["relocated"]
    p = pack(network, "P")
    assert (p.station_id, p.slot_no, p.soc_bp) == ("ST1", 6, 4_000)
    assert (slot_holds(network, "ST2", 2), slot_holds(network, "ST1", 6)) == (None, "P")
    assert network.alerts() == ["offline_conflict"]


def test_replays_beyond_the_offline_limit_and_out_of_time_order_are_flagged(network: Network) -> None:
    network.station("ST1")
    for slot_no in (1, 2, 3):
        network.pack(f"S-{slot_no}", soc_pct=100 - slot_no, station_id="ST1", slot_no=slot_no)
    network.rider("R", top_up_minor=30_000)
    hand_over_online(network, "ST1", "R", 1, "S-1")
    network.clock.set(at(300))
    # The energy plan allows one swap offline; the station served two.
    replay(network, "in", "ST1", "1", BatteryReading(5, "S-1", 5_000, 10_000), key("S-1"), 100)
    replay(network, "out", "ST1", "1", BatteryReading(2, "S-2", 9_800, 10_000), key("S-1"), 100)
    assert network.alerts() == []
    replay(network, "in", "ST1", "2", BatteryReading(6, "S-2", 5_000, 10_000), key("S-2"), 200)
    replay(network, "out", "ST1", "2", BatteryReading(3, "S-3", 9_700, 10_000), key("S-2"), 200)
    assert network.alerts() == ["offline_limit_exceeded"]
    # An event from before the last one replayed: flagged, and its reading is stale too (S-3
    # has been with R since 200).
    late = replay(network, "in", "ST1", "3", BatteryReading(7, "S-3", 5_000, 10_000), key("S-3"), 150)
    assert [p.outcome for p in late.packs] == ["stale_reading"]
    assert network.alerts()[1:] == ["offline_conflict", "offline_out_of_order"]
