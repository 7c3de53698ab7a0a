"""Worked examples E2-E6 of the billing method, to the unit, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import TransferCode
from swapd.readmodels.alerts import recent_alerts as alerts
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import check_ledger
from tests.plans import BUNDLE, ENERGY, TIME


def _base(db: Database, *plans: Plan) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    for plan in plans:
        catalog.add_plan(db, plan)
    catalog.add_station(db, "ST1", 8)
    catalog.add_station(db, "ST2", 8)


def _ledger_ok(db: Database) -> None:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def _app(rider_id: str) -> IdToken:
    return IdToken(TokenType.APP, rider_id)


def test_e2_insufficient_allowance_then_top_up(db: Database) -> None:
    _base(db, ENERGY)
    # Charged packs deliver >= 1,600 Wh each: 1700 * 0.96 * 0.99 = 1615.7 -> 1,616, and 1,700.
    catalog.register_pack(db, "B-1", "G2", soc=99, soh=96, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=100, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R2", "energy")
    payments.top_up(db, "R2", 300, "pay-r2-1")
    assert rider_balance(db, "R2").available_units == 1_000
    before = len(transfers_of(db, "R2"))

    refused = swaps.authorize(db, "ST1", _app("R2"))
    assert (refused.accepted, refused.reason) == (False, "no_credit")
    # The fullest pack is offered first: it needs its deliverable 1,700 Wh.
    assert refused.required_units == 1_700 and refused.available_units == 1_000
    assert len(transfers_of(db, "R2")) == before  # nothing charged, nothing held
    assert rider_balance(db, "R2").held_units == 0

    top = payments.top_up(db, "R2", 1_000, "pay-r2-2")
    assert top.units == 3_333
    accepted = swaps.authorize(db, "ST1", _app("R2"))
    assert accepted.accepted and accepted.offered_slots == [2]
    balance = rider_balance(db, "R2")
    assert (balance.posted_units, balance.held_units) == (4_333, 1_700)
    _ledger_ok(db)


def test_e3_prepaid_time(db: Database, clock: ManualClock) -> None:
    _base(db, TIME)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R3", "time")
    assert payments.top_up(db, "R3", 10_000, "pay-r3").units == 18_000
    clock.set(datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC))
    assert swaps.authorize(db, "ST1", _app("R3")).accepted
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=_app("R3"))
    clock.set(datetime(2026, 11, 2, 10, 30, 30, tzinfo=UTC))
    result = swaps.battery_in(db, "ST2", "i1", [BatteryReading(4, "B-1", 3_000, 10_000)])
    (pack,) = result.packs
    assert (pack.rider_id, pack.usage_units, pack.charged_units) == ("R3", 5_460, 5_460)
    balance = rider_balance(db, "R3")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (12_540, 0, 12_540)
    # 5,460 of 18,000 s earn 10,000 * 5460/18000 = 3,033.3 -> 3,033 KRW.
    assert pack.revenue_minor == 3_033
    assert balance.prepaid_minor == 10_000 - 3_033
    _ledger_ok(db)


def test_e4_deliveries_two_pack_vehicle(db: Database) -> None:
    _base(db, BUNDLE)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=95, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R4", "bundle", vehicle_packs=2)
    assert payments.top_up(db, "R4", 12_500, "pay-r4").units == 10
    offer = swaps.authorize(db, "ST1", _app("R4"))
    assert offer.accepted and offer.offered_slots == [1, 2]
    swaps.battery_out(
        db,
        "ST1",
        "o1",
        [BatteryReading(1, "B-1", 10_000, 10_000), BatteryReading(2, "B-2", 9_500, 10_000)],
        token=_app("R4"),
    )
    balance = rider_balance(db, "R4")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (10, 2, 8)
    assert balance.packs_held == ("B-1", "B-2")

    result = swaps.battery_in(
        db,
        "ST2",
        "i1",
        [BatteryReading(3, "B-1", 2_000, 10_000), BatteryReading(4, "B-2", 1_000, 10_000)],
    )
    assert [(p.rider_id, p.usage_units) for p in result.packs] == [("R4", 1), ("R4", 1)]
    balance = rider_balance(db, "R4")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (8, 0, 8)
    # Each delivery earns 12,500 / 10 = 1,250 KRW.
    assert balance.prepaid_minor == 10_000
    _ledger_ok(db)


def _e1_until_return(db: Database, clock: ManualClock) -> IdToken:
    _base(db, ENERGY)
    catalog.register_pack(db, "B-0001", "G2", soc=98, soh=95, station_id="ST1", slot_no=3)
    catalog.register_pack(db, "B-0002", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 10_000, "pay-1")
    swaps.authorize(db, "ST1", _app("R1"))
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-0001", 9800, 9500)], token=_app("R1"))
    clock.set(clock.now() + timedelta(hours=1))
    key = IdToken(TokenType.BATTERY_SERIAL, "B-0001")
    assert swaps.authorize(db, "ST2", key, request_id="r2").accepted
    first = swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-0001", 2000, 9500)], token=key)
    assert first.repeated is False and first.packs[0].usage_units == 1_260
    return key


def _snapshot(db: Database) -> dict[str, object]:
    with db.engine.connect() as connection:
        counts = {
            table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in t.metadata.sorted_tables
        }
        accounts = connection.execute(sa.select(t.accounts).order_by(t.accounts.c.id)).all()
        packs = connection.execute(sa.select(t.packs).order_by(t.packs.c.serial)).all()
    return {
        "counts": counts,
        "accounts": [tuple(a) for a in accounts],
        "packs": [tuple(p)[:-2] for p in packs],
    }


def test_e5_duplicate_messages_change_nothing(db: Database, clock: ManualClock) -> None:
    key = _e1_until_return(db, clock)
    assert rider_balance(db, "R1").posted_units == 32_073
    before = _snapshot(db)
    again = swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-0001", 2000, 9500)], token=key)
    assert again.repeated is True and again.packs[0].usage_units == 1_260
    assert swaps.authorize(db, "ST2", key, request_id="r2").accepted
    assert payments.top_up(db, "R1", 10_000, "pay-1").repeated is True
    assert _snapshot(db) == before
    assert rider_balance(db, "R1").posted_units == 32_073
    usage = [tr for tr in transfers_of(db, "R1") if tr.code is TransferCode.USAGE]
    assert [tr.amount for tr in usage] == [1_260]

    swaps.battery_out(db, "ST2", "r2", [BatteryReading(1, "B-0002", 10_000, 10_000)], token=key)
    after_out = _snapshot(db)
    repeated = swaps.battery_out(
        db, "ST2", "r2", [BatteryReading(1, "B-0002", 10_000, 10_000)], token=key
    )
    assert repeated.repeated is True
    assert _snapshot(db) == after_out
    assert rider_balance(db, "R1").available_units == 30_373
    _ledger_ok(db)


def test_e6_foreign_and_unassigned_packs(db: Database) -> None:
    _base(db, ENERGY)
    catalog.register_pack(db, "B-STOCK", "G2", soc=50, soh=100)
    catalog.register_pack(db, "B-SLOT", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    transfers_before = len(transfers_of(db))

    unknown = swaps.authorize(db, "ST1", IdToken(TokenType.BATTERY_SERIAL, "X-999"))
    assert (unknown.accepted, unknown.reason) == (False, "unknown_pack")
    idle = swaps.authorize(db, "ST1", IdToken(TokenType.BATTERY_SERIAL, "B-STOCK"))
    assert (idle.accepted, idle.reason) == (False, "pack_not_assigned")
    in_slot = swaps.authorize(db, "ST2", IdToken(TokenType.BATTERY_SERIAL, "B-SLOT"))
    assert (in_slot.accepted, in_slot.reason) == (False, "pack_not_assigned")

    assert len(transfers_of(db)) == transfers_before == 0
    kinds = sorted((a["kind"], a["pack_serial"]) for a in alerts(db))
    assert kinds == [
        ("foreign_pack", "X-999"),
        ("pack_not_assigned", "B-SLOT"),
        ("pack_not_assigned", "B-STOCK"),
    ]

    # The same packs reported inserted: still no transfer, one alert each, nothing moves.
    result = swaps.battery_in(
        db,
        "ST2",
        "e6",
        [BatteryReading(2, "X-999", 5_000, 9_000), BatteryReading(3, "B-SLOT", 5_000, 9_000)],
    )
    assert [p.outcome for p in result.packs] == ["foreign_pack", "pack_two_places"]
    assert len(transfers_of(db)) == 0
    _ledger_ok(db)
