"""The worked examples E1-E6 of the billing method, reproduced to the unit on each database.

Every example goes through the services only (catalog, payments, swaps, queries) and ends with a
reconciliation of the whole ledger. Money is checked as well as units: revenue is recognised at
the rider's weighted average price (services/money.py), so a posted allowance of zero always comes
with zero prepaid money.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from swapd.domain.errors import Conflict
from swapd.domain.packs import PackStatus
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import Transfer, TransferCode, TransferFlags
from swapd.readmodels.alerts import recent_alerts as alerts
from swapd.readmodels.money import RiderBalance, rider_balance, transfers_of
from swapd.readmodels.packs import all_packs
from swapd.readmodels.stations import station_view
from swapd.readmodels.swaps import recent_swaps
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.plans import BUNDLE, TIME


def _app(rider_id: str) -> IdToken:
    return IdToken(TokenType.APP, rider_id)


def _serial(serial: str) -> IdToken:
    return IdToken(TokenType.BATTERY_SERIAL, serial)


def _ledger_ok(db: Database) -> None:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def _of_code(db: Database, rider_id: str | None, code: TransferCode) -> list[Transfer]:
    return [tr for tr in transfers_of(db, rider_id) if tr.code is code]


def _amounts(db: Database, rider_id: str | None, code: TransferCode) -> list[int]:
    return [tr.amount for tr in _of_code(db, rider_id, code)]


def _units(balance: RiderBalance) -> tuple[int, int, int]:
    return (balance.posted_units, balance.held_units, balance.available_units)


def _snapshot(db: Database) -> list[list[tuple[object, ...]]]:
    """Every row of every table: a repeated message must leave all of it as it was."""
    with db.engine.connect() as connection:
        return [
            sorted((tuple(row) for row in connection.execute(sa.select(table))), key=repr)
            for table in t.metadata.sorted_tables
        ]


# -- E1 ------------------------------------------------------------------------------------------


def _e1_steps_1_to_3(db: Database, clock: ManualClock) -> None:
    net.network(db)
    catalog.register_pack(db, "B-0001", "G2", soc=98, soh=95, station_id="ST1", slot_no=3)
    catalog.register_pack(db, "B-0002", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.add_rider(db, "R1", "energy")

    top = payments.top_up(db, "R1", 10_000, "pay-1")
    assert (top.units, top.unit, top.repeated) == (33_333, "Wh", False)
    assert _units(rider_balance(db, "R1")) == (33_333, 0, 33_333)

    offer = swaps.authorize(db, "ST1", _app("R1"))
    assert offer.accepted and offer.offered_slots == [3]
    assert offer.offered[0].hold_units == 1_583
    assert offer.available_units == 31_750
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-0001", 9800, 9500)], token=_app("R1"))
    assert _units(rider_balance(db, "R1")) == (33_333, 1_583, 31_750)

    clock.set(clock.now() + timedelta(hours=2))
    key = _serial("B-0001")
    decision = swaps.authorize(db, "ST2", key, request_id="r2")
    assert decision.accepted and decision.rider_id == "R1" and decision.offered_slots == [1]
    returned = swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-0001", 2000, 9300)], token=key)
    assert returned.repeated is False
    (pack,) = returned.packs
    assert (pack.outcome, pack.rider_id, pack.usage_units, pack.charged_units) == (
        "returned",
        "R1",
        1_260,
        1_260,
    )
    assert (pack.beyond_units, pack.revenue_minor, pack.hold_units) == (0, 378, 1_583)
    balance = rider_balance(db, "R1")
    # The hold of B-0001 is gone; the hold of the offered B-0002 (1,700 Wh) stands.
    assert _units(balance) == (32_073, 1_700, 30_373)
    assert balance.prepaid_minor == 9_622
    assert balance.packs_held == ()


def _e1_step_4(db: Database) -> None:
    swaps.battery_out(
        db, "ST2", "r2", [BatteryReading(1, "B-0002", 10_000, 10_000)], token=_serial("B-0001")
    )


def test_e1_prepaid_energy(db: Database, clock: ManualClock) -> None:
    _e1_steps_1_to_3(db, clock)
    _e1_step_4(db)
    balance = rider_balance(db, "R1")
    assert _units(balance) == (32_073, 1_700, 30_373)
    assert balance.packs_held == ("B-0002",)
    assert _amounts(db, "R1", TransferCode.USAGE) == [1_260]
    assert _amounts(db, "R1", TransferCode.REVENUE) == [378]
    assert [(tr.amount, tr.flags) for tr in _of_code(db, "R1", TransferCode.HOLD)] == [
        (1_583, TransferFlags.PENDING),
        (1_700, TransferFlags.PENDING),
    ]
    assert (balance.prepaid_minor, balance.receivable_minor) == (9_622, 0)
    _ledger_ok(db)


# -- E2 ------------------------------------------------------------------------------------------


def test_e2_insufficient_allowance(db: Database) -> None:
    net.network(db)
    # Charged packs at ST1 hold >= 1,600 Wh each: 1700 * 1.00 * 0.96 = 1,632 and
    # ceil(1700 * 0.995 * 0.95) = ceil(1,606.9) = 1,607.
    catalog.register_pack(db, "B-1", "G2", soc=96, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=95, soh=99.5, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R2", "energy")
    assert payments.top_up(db, "R2", 300, "pay-r2-1").units == 1_000
    balance = rider_balance(db, "R2")
    assert _units(balance) == (1_000, 0, 1_000)
    assert balance.packs_held == ()

    refused = swaps.authorize(db, "ST1", _app("R2"))
    assert (refused.accepted, refused.reason) == (False, "no_credit")
    assert refused.text == "Not enough allowance: please top up"
    # The fullest pack would be handed over first: it needs its deliverable 1,632 Wh.
    assert (refused.required_units, refused.available_units) == (1_632, 1_000)
    assert refused.offered == ()
    # Nothing charged, nothing held: R2 has exactly the two transfers of the top-up.
    assert [(tr.code, tr.amount) for tr in transfers_of(db, "R2")] == [
        (TransferCode.TOP_UP, 300),
        (TransferCode.TOP_UP, 1_000),
    ]
    balance = rider_balance(db, "R2")
    assert _units(balance) == (1_000, 0, 1_000)
    assert balance.prepaid_minor == 300
    assert all(p.reserved_swap_id is None for p in station_view(db, "ST1").packs.values())
    (swap,) = recent_swaps(db, "R2")
    assert (swap.state, swap.reason) == ("refused", "no_credit")

    top = payments.top_up(db, "R2", 1_000, "pay-r2-2")
    assert (top.units, top.repeated) == (3_333, False)
    assert _units(rider_balance(db, "R2")) == (4_333, 0, 4_333)

    accepted = swaps.authorize(db, "ST1", _app("R2"))
    assert accepted.accepted and accepted.reason is None
    assert [(o.slot_no, o.serial, o.hold_units) for o in accepted.offered] == [(1, "B-1", 1_632)]
    assert accepted.available_units == 2_701
    swaps.battery_out(db, "ST1", "o-r2", [BatteryReading(1, "B-1", 9600, 10_000)], token=_app("R2"))
    balance = rider_balance(db, "R2")
    assert _units(balance) == (4_333, 1_632, 2_701)
    assert balance.packs_held == ("B-1",)
    # Still nothing charged: a hand-over only holds; no usage, no revenue yet.
    assert _of_code(db, "R2", TransferCode.USAGE) == []
    assert _of_code(db, None, TransferCode.REVENUE) == []
    assert balance.prepaid_minor == 1_300
    _ledger_ok(db)


# -- E3 ------------------------------------------------------------------------------------------


def test_e3_prepaid_time(db: Database, clock: ManualClock) -> None:
    net.network(db, TIME)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R3", "time")
    top = payments.top_up(db, "R3", 10_000, "pay-r3")
    assert (top.units, top.unit) == (18_000, "s")

    clock.set(datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC))
    offer = swaps.authorize(db, "ST1", _app("R3"))
    assert offer.accepted and offer.offered_slots == [1]
    assert offer.offered[0].hold_units == 3_600  # a time plan holds time_hold_s (one hour)
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=_app("R3"))
    assert _units(rider_balance(db, "R3")) == (18_000, 3_600, 14_400)

    clock.set(datetime(2026, 11, 2, 10, 30, 30, tzinfo=UTC))
    result = swaps.battery_in(
        db, "ST2", "i1", [BatteryReading(4, "B-1", 3_000, 10_000)], token=_serial("B-1")
    )
    (pack,) = result.packs
    # 1 h 30 min 30 s = 5,430 s: 91 started minutes = 5,460 s.
    assert (pack.rider_id, pack.usage_units, pack.charged_units, pack.beyond_units) == (
        "R3",
        5_460,
        5_460,
        0,
    )
    # 5,460 of 18,000 s earn 10,000 * 5,460 / 18,000 = 3,033.3 -> 3,033 KRW.
    assert pack.revenue_minor == 3_033
    balance = rider_balance(db, "R3")
    assert _units(balance) == (12_540, 0, 12_540)
    assert (balance.prepaid_minor, balance.overdrawn_units) == (6_967, 0)
    # The hold (3,600 s) is posted; the rest of the usage comes from the free allowance.
    assert _amounts(db, "R3", TransferCode.USAGE) == [3_600, 1_860]
    assert _amounts(db, "R3", TransferCode.REVENUE) == [3_033]
    assert station_view(db, "ST2").packs["B-1"].slot_no == 4
    _ledger_ok(db)


# -- E4 ------------------------------------------------------------------------------------------


def test_e4_deliveries_two_pack_vehicle(db: Database) -> None:
    net.network(db, BUNDLE)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=95, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R4", "bundle", vehicle_packs=2)
    top = payments.top_up(db, "R4", 12_500, "pay-r4")
    assert (top.units, top.unit) == (10, "count")

    offer = swaps.authorize(db, "ST1", _app("R4"))
    assert offer.accepted and offer.offered_slots == [1, 2]
    assert [o.hold_units for o in offer.offered] == [1, 1]
    out = swaps.battery_out(
        db,
        "ST1",
        "o1",
        [BatteryReading(1, "B-1", 10_000, 10_000), BatteryReading(2, "B-2", 9_500, 10_000)],
        token=_app("R4"),
    )
    assert [(p.serial, p.outcome, p.hold_units) for p in out.packs] == [
        ("B-1", "handed_over", 1),
        ("B-2", "handed_over", 1),
    ]
    balance = rider_balance(db, "R4")
    assert _units(balance) == (10, 2, 8)
    assert balance.packs_held == ("B-1", "B-2")

    # Both come back at another station in one BatteryIn; no token: each serial names R4.
    result = swaps.battery_in(
        db,
        "ST2",
        "i1",
        [BatteryReading(3, "B-1", 2_000, 10_000), BatteryReading(4, "B-2", 1_000, 10_000)],
    )
    assert [(p.serial, p.outcome, p.rider_id, p.usage_units, p.revenue_minor) for p in result.packs] == [
        ("B-1", "returned", "R4", 1, 1_250),
        ("B-2", "returned", "R4", 1, 1_250),
    ]
    balance = rider_balance(db, "R4")
    assert _units(balance) == (8, 0, 8)
    assert balance.packs_held == ()
    # Each delivery earns 12,500 / 10 = 1,250 KRW.
    assert balance.prepaid_minor == 10_000
    assert _amounts(db, "R4", TransferCode.USAGE) == [1, 1]
    assert _amounts(db, "R4", TransferCode.REVENUE) == [1_250, 1_250]
    view = station_view(db, "ST2")
    assert {s: (p.status, p.slot_no) for s, p in view.packs.items()} == {
        "B-1": (PackStatus.IN_SLOT, 3),
        "B-2": (PackStatus.IN_SLOT, 4),
    }
    _ledger_ok(db)


# -- E5 ------------------------------------------------------------------------------------------


def test_e5_duplicate_messages_change_nothing(db: Database, clock: ManualClock) -> None:
    _e1_steps_1_to_3(db, clock)
    key = _serial("B-0001")

    # The station resends the BatteryIn of step 3 after a reconnect (same station and requestId).
    before = _snapshot(db)
    again = swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-0001", 2000, 9300)], token=key)
    assert again.repeated is True
    (pack,) = again.packs
    assert (pack.rider_id, pack.usage_units, pack.revenue_minor) == ("R1", 1_260, 378)
    assert _snapshot(db) == before
    assert rider_balance(db, "R1").posted_units == 32_073
    assert _amounts(db, "R1", TransferCode.USAGE) == [1_260]

    # The same Authorize (by requestId) and the same payment confirmation, resent.
    auth = swaps.authorize(db, "ST2", key, request_id="r2")
    assert auth.accepted and auth.offered_slots == [1] and auth.offered[0].hold_units == 1_700
    assert payments.top_up(db, "R1", 10_000, "pay-1").repeated is True
    with pytest.raises(Conflict):
        payments.top_up(db, "R1", 5_000, "pay-1")
    assert _snapshot(db) == before

    # Step 4, then its BatteryOut resent, and the BatteryIn once more.
    _e1_step_4(db)
    after_out = _snapshot(db)
    repeated_out = swaps.battery_out(
        db, "ST2", "r2", [BatteryReading(1, "B-0002", 10_000, 10_000)], token=key
    )
    assert repeated_out.repeated is True
    assert [(p.serial, p.outcome, p.hold_units) for p in repeated_out.packs] == [
        ("B-0002", "handed_over", 1_700)
    ]
    assert swaps.battery_in(
        db, "ST2", "r2", [BatteryReading(5, "B-0001", 2000, 9300)], token=key
    ).repeated
    assert swaps.authorize(db, "ST2", key, request_id="r2").accepted
    assert payments.top_up(db, "R1", 10_000, "pay-1").repeated is True
    assert _snapshot(db) == after_out

    balance = rider_balance(db, "R1")
    assert _units(balance) == (32_073, 1_700, 30_373)
    assert balance.prepaid_minor == 9_622
    assert _amounts(db, "R1", TransferCode.USAGE) == [1_260]
    assert _amounts(db, "R1", TransferCode.REVENUE) == [378]
    assert _amounts(db, "R1", TransferCode.TOP_UP) == [10_000, 33_333]
    _ledger_ok(db)


def test_e5_return_reported_again_under_a_new_request_id(db: Database, clock: ManualClock) -> None:
    """A station that lost its requestId reports the same pack in the same slot again."""
    _e1_steps_1_to_3(db, clock)
    _e1_step_4(db)
    transfers_before = transfers_of(db)
    again = swaps.battery_in(
        db, "ST2", "r2-bis", [BatteryReading(5, "B-0001", 2000, 9300)], token=_serial("B-0001")
    )
    assert again.repeated is False
    assert [(p.serial, p.outcome, p.usage_units) for p in again.packs] == [
        ("B-0001", "already_in_slot", 0)
    ]
    assert transfers_of(db) == transfers_before
    assert _units(rider_balance(db, "R1")) == (32_073, 1_700, 30_373)
    _ledger_ok(db)


# -- E6 ------------------------------------------------------------------------------------------


def test_e6_foreign_pack(db: Database) -> None:
    net.network(db)
    catalog.register_pack(db, "B-STOCK", "G2", soc=50, soh=100)  # in the depot
    catalog.register_pack(db, "B-SLOT", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 10_000, "pay-1")
    transfers_before = transfers_of(db)
    assert len(transfers_before) == 2
    packs_before = all_packs(db)

    unknown = swaps.authorize(db, "ST2", _serial("X-999"))
    assert (unknown.accepted, unknown.reason, unknown.rider_id) == (False, "unknown_pack", None)
    assert unknown.text == "This battery is not from our network"
    in_stock = swaps.authorize(db, "ST2", _serial("B-STOCK"))
    assert (in_stock.accepted, in_stock.reason, in_stock.rider_id) == (False, "pack_not_assigned", None)
    assert in_stock.text == "This battery is not rented to anyone"
    in_slot = swaps.authorize(db, "ST2", _serial("B-SLOT"))
    assert (in_slot.accepted, in_slot.reason) == (False, "pack_not_assigned")
    for refused in (unknown, in_stock, in_slot):
        assert refused.offered == ()

    assert transfers_of(db) == transfers_before  # no transfer written
    assert all_packs(db) == packs_before  # nothing reserved, nothing moved
    assert sorted((a["kind"], a["pack_serial"], a["station_id"]) for a in alerts(db)) == [
        ("foreign_pack", "X-999", "ST2"),
        ("pack_not_assigned", "B-SLOT", "ST2"),
        ("pack_not_assigned", "B-STOCK", "ST2"),
    ]
    assert sorted((s.state, s.reason) for s in recent_swaps(db)) == [
        ("refused", "pack_not_assigned"),
        ("refused", "pack_not_assigned"),
        ("refused", "unknown_pack"),
    ]

    # The same packs reported inserted into empty slots: an alert each, no transfer, no move.
    result = swaps.battery_in(
        db,
        "ST2",
        "e6",
        [
            BatteryReading(2, "X-999", 5_000, 9_000),
            BatteryReading(3, "B-STOCK", 5_000, 9_000),
            BatteryReading(4, "B-SLOT", 5_000, 9_000),
        ],
    )
    assert [(p.serial, p.outcome, p.rider_id, p.usage_units) for p in result.packs] == [
        ("X-999", "foreign_pack", None, 0),
        ("B-STOCK", "pack_not_assigned", None, 0),
        ("B-SLOT", "pack_two_places", None, 0),
    ]
    assert transfers_of(db) == transfers_before
    assert all_packs(db) == packs_before
    assert [s.pack_serial for s in station_view(db, "ST2").slots] == ["B-2"] + [None] * 7
    assert len(alerts(db)) == 6
    balance = rider_balance(db, "R1")
    assert _units(balance) == (33_333, 0, 33_333)
    assert balance.prepaid_minor == 10_000
    _ledger_ok(db)
