"""Money in and out through the services, on SQLite and PostgreSQL: subscriptions and their cycles,
refunds, adjustments, time-plan overdraw, abandoned hand-overs and multi-pack swaps.

Each test ends with a reconciliation of the whole ledger (check_ledger). Revenue is recognised at
the rider's weighted average price, so whenever a rider's posted allowance is 0 their prepaid money
is 0 too; several tests assert that at the moment it happens.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from swapd.domain.errors import Conflict
from swapd.domain.packs import PackStatus
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import AccountCode, Transfer, TransferCode, TransferFlags
from swapd.readmodels.money import RiderBalance, rider_balance, transfers_of
from swapd.readmodels.stations import station_view
from swapd.readmodels.swaps import recent_swaps
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.plans import BUNDLE, ENERGY, TIME

# Subscription: 30,000 KRW a month for 60,000 Wh; overage 250 KRW per 1,000 Wh.
SUB = Plan(
    "sub",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    250,
    1000,
    fee_minor=30_000,
    included_units=60_000,
)
NO_CARRY = Plan(
    "nocarry",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    250,
    1000,
    fee_minor=30_000,
    included_units=60_000,
    carry_over=False,
    prorate_first_cycle=False,
)
SMALL = Plan(
    "small",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    250,
    1000,
    fee_minor=5_000,
    included_units=2_000,
)

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2027, 2, 1, tzinfo=UTC)
MAR_1 = datetime(2027, 3, 1, tzinfo=UTC)


# -- helpers -------------------------------------------------------------------------------------


def _app(rider_id: str) -> IdToken:
    return IdToken(TokenType.APP, rider_id)


def _serial(serial: str) -> IdToken:
    return IdToken(TokenType.BATTERY_SERIAL, serial)


def _ledger_ok(db: Database) -> None:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def _of_code(db: Database, rider_id: str | None, code: TransferCode, ledger: str) -> list[Transfer]:
    return [tr for tr in transfers_of(db, rider_id) if tr.code is code and tr.ledger == ledger]


def _amounts(db: Database, rider_id: str | None, code: TransferCode, ledger: str) -> list[int]:
    return [tr.amount for tr in _of_code(db, rider_id, code, ledger)]


def _units(balance: RiderBalance) -> tuple[int, int, int]:
    return (balance.posted_units, balance.held_units, balance.available_units)


def _operator(db: Database, ledger: str, code: AccountCode) -> int:
    """The balance of an operator account on its normal side (cash: debit, the others: credit)."""
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.select(t.accounts).where(
                t.accounts.c.ledger == ledger,
                t.accounts.c.code == code.value,
                t.accounts.c.owner == "",
            )
        ).first()
    if row is None:
        return 0
    if code is AccountCode.CASH:
        return int(row.debits_posted - row.credits_posted)
    return int(row.credits_posted - row.debits_posted)


def _money(db: Database) -> tuple[int, int]:
    """(cash received, revenue recognised) in KRW."""
    return _operator(db, "KRW", AccountCode.CASH), _operator(db, "KRW", AccountCode.REVENUE)


def _subscription(db: Database, rider_id: str) -> tuple[object, ...]:
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.select(t.subscriptions).where(t.subscriptions.c.rider_id == rider_id)
        ).one()
    return (
        row.cycle_no,
        row.cycle_start.astimezone(UTC),
        row.cycle_end.astimezone(UTC),
        row.carried_in_units,
        row.consumed_units,
    )


def _snapshot(db: Database) -> list[list[tuple[object, ...]]]:
    with db.engine.connect() as connection:
        return [
            sorted((tuple(row) for row in connection.execute(sa.select(table))), key=repr)
            for table in t.metadata.sorted_tables
        ]


def _swap(
    db: Database,
    clock: ManualClock,
    rider_id: str,
    *,
    out: tuple[str, int, str, int, int],
    back: tuple[str, int, int],
    request: str,
    hold: int,
) -> swaps.PackOutcome:
    """One pack out (station, slot, serial, soc bp, soh bp) and back an hour later (station, slot,
    soc bp); the offer must hold ``hold`` units. Returns the outcome of the return."""
    station_out, slot_out, serial, soc_out, soh_out = out
    offer = swaps.authorize(db, station_out, _app(rider_id))
    assert offer.accepted, offer.reason
    assert [(o.slot_no, o.serial, o.hold_units) for o in offer.offered] == [(slot_out, serial, hold)]
    swaps.battery_out(
        db,
        station_out,
        f"{request}-out",
        [BatteryReading(slot_out, serial, soc_out, soh_out)],
        token=_app(rider_id),
    )
    clock.set(clock.now() + timedelta(hours=1))
    station_in, slot_in, soc_in = back
    result = swaps.battery_in(
        db,
        station_in,
        f"{request}-in",
        [BatteryReading(slot_in, serial, soc_in, soh_out)],
        token=_serial(serial),
    )
    (pack,) = result.packs
    assert (pack.outcome, pack.rider_id) == ("returned", rider_id)
    return pack


# -- subscriptions -------------------------------------------------------------------------------


def _join_mid_month_and_use_1530_wh(db: Database, clock: ManualClock) -> None:
    """R5 subscribes on 2026-11-16 (a prorated first cycle) and uses 1,530 Wh in it."""
    # Joined 2026-11-16 12:34:56: 1,250,704 of November's 2,592,000 s are left.
    # fee = round_half_even(30,000 * 1,250,704 / 2,592,000) = round(14,475.74) = 14,476 KRW
    # included = floor(60,000 * 1,250,704 / 2,592,000) = floor(28,951.48) = 28,951 Wh
    clock.set(datetime(2026, 11, 16, 12, 34, 56, tzinfo=UTC))
    sub = payments.subscribe(db, "R5", "sub-pay-1")
    assert (sub.amount_minor, sub.currency, sub.units, sub.unit, sub.repeated) == (
        14_476,
        "KRW",
        28_951,
        "Wh",
        False,
    )
    assert payments.subscribe(db, "R5", "sub-pay-1").repeated is True
    with pytest.raises(Conflict):
        payments.subscribe(db, "R5", "sub-pay-other")
    assert _amounts(db, "R5", TransferCode.SUBSCRIPTION_FEE, "KRW") == [14_476]
    assert _amounts(db, "R5", TransferCode.SUBSCRIPTION_FEE, "Wh") == [28_951]
    balance = rider_balance(db, "R5")
    assert _units(balance) == (28_951, 0, 28_951)
    assert balance.prepaid_minor == 14_476
    assert _subscription(db, "R5") == (1, datetime(2026, 11, 16, 12, 34, 56, tzinfo=UTC), DEC_1, 0, 0)

    # Cycle 1: 1,700 * 0.90 = 1,530 Wh used; revenue round(14,476 * 1,530 / 28,951) = 765.
    pack = _swap(
        db,
        clock,
        "R5",
        out=("ST1", 1, "B-1", 10_000, 10_000),
        back=("ST2", 5, 1_000),
        request="c1",
        hold=1_700,
    )
    assert (pack.usage_units, pack.charged_units, pack.beyond_units) == (1_530, 1_530, 0)
    assert (pack.revenue_minor, pack.overage_minor) == (765, 0)
    balance = rider_balance(db, "R5")
    assert _units(balance) == (27_421, 0, 27_421)
    assert (balance.prepaid_minor, balance.receivable_minor) == (13_711, 0)
    assert _subscription(db, "R5")[3:] == (0, 1_530)


def test_subscription_prorated_first_cycle_carry_over_and_expiry(
    db: Database, clock: ManualClock
) -> None:
    net.network(db, SUB)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R5", "sub")

    _join_mid_month_and_use_1530_wh(db, clock)

    # Closing before the cycle's end is refused and writes nothing.
    clock.set(DEC_1 - timedelta(seconds=1))
    before = transfers_of(db)
    with pytest.raises(Conflict):
        payments.close_cycle(db, "R5", "fee-2026-12")
    assert transfers_of(db) == before

    # Close of cycle 1: all 27,421 unused Wh (< 60,000) carry over; nothing expires.
    clock.set(DEC_1)
    closed = payments.close_cycle(db, "R5", "fee-2026-12")
    assert closed == payments.CycleClose("R5", 1, 0, 27_421, JAN_1, 30_000, 60_000)
    assert _of_code(db, "R5", TransferCode.EXPIRY, "Wh") == []
    assert _of_code(db, "R5", TransferCode.EXPIRY, "KRW") == []
    balance = rider_balance(db, "R5")
    assert _units(balance) == (87_421, 0, 87_421)
    assert balance.prepaid_minor == 43_711
    assert _subscription(db, "R5") == (2, DEC_1, JAN_1, 27_421, 0)

    # Cycle 2: 1,700 Wh used (carried units go first); revenue round(43,711 * 1,700 / 87,421) = 850.
    catalog.report_soc(db, "ST2", 5, 100)
    pack = _swap(
        db,
        clock,
        "R5",
        out=("ST2", 5, "B-1", 10_000, 10_000),
        back=("ST1", 1, 0),
        request="c2",
        hold=1_700,
    )
    assert (pack.usage_units, pack.charged_units, pack.revenue_minor) == (1_700, 1_700, 850)
    balance = rider_balance(db, "R5")
    assert _units(balance) == (85_721, 0, 85_721)
    assert balance.prepaid_minor == 42_861

    # Close of cycle 2: the 27,421 - 1,700 = 25,721 carried Wh left expire; this cycle's
    # 60,000 unused Wh carry. Expired money: round(42,861 * 25,721 / 85,721) = 12,861 KRW.
    clock.set(JAN_1)
    closed = payments.close_cycle(db, "R5", "fee-2027-01")
    assert closed == payments.CycleClose("R5", 2, 25_721, 60_000, FEB_1, 30_000, 60_000)
    assert _amounts(db, "R5", TransferCode.EXPIRY, "Wh") == [25_721]
    assert _amounts(db, "R5", TransferCode.EXPIRY, "KRW") == [12_861]
    balance = rider_balance(db, "R5")
    assert _units(balance) == (120_000, 0, 120_000)
    assert balance.prepaid_minor == 60_000
    assert _subscription(db, "R5") == (3, JAN_1, FEB_1, 60_000, 0)

    # Close of cycle 3, nothing used: the 60,000 carried Wh expire (one cycle only), the
    # 60,000 of cycle 3 carry. Expired money: 60,000 * 60,000 / 120,000 = 30,000 KRW.
    clock.set(FEB_1)
    closed = payments.close_cycle(db, "R5", "fee-2027-02")
    assert closed == payments.CycleClose("R5", 3, 60_000, 60_000, MAR_1, 30_000, 60_000)
    assert _amounts(db, "R5", TransferCode.EXPIRY, "Wh") == [25_721, 60_000]
    assert _amounts(db, "R5", TransferCode.EXPIRY, "KRW") == [12_861, 30_000]
    balance = rider_balance(db, "R5")
    assert _units(balance) == (120_000, 0, 120_000)
    assert balance.prepaid_minor == 60_000
    assert _amounts(db, "R5", TransferCode.SUBSCRIPTION_FEE, "KRW") == [14_476, 30_000, 30_000, 30_000]

    # Cash 14,476 + 3 * 30,000; revenue 765 + 850 + 12,861 + 30,000; the rest is still prepaid.
    assert _money(db) == (104_476, 44_476)
    assert _amounts(db, "R5", TransferCode.REVENUE, "KRW") == [765, 850]
    _ledger_ok(db)


def test_subscription_carry_over_is_capped_at_one_cycle(db: Database, clock: ManualClock) -> None:
    net.network(db, SUB)
    catalog.add_rider(db, "R5", "sub")
    clock.set(DEC_1)  # joined on the first of the month: a full first cycle
    sub = payments.subscribe(db, "R5", "sub-pay-1")
    assert (sub.amount_minor, sub.units) == (30_000, 60_000)
    payments.adjust(db, "R5", 5_000, reason="goodwill", actor="ops:kim", key="adj-1")
    assert _units(rider_balance(db, "R5")) == (65_000, 0, 65_000)

    # 65,000 unused, at most 60,000 carry: 5,000 expire, worth round(30,000 * 5,000 / 65,000)
    # = round(2,307.7) = 2,308 KRW.
    clock.set(JAN_1)
    closed = payments.close_cycle(db, "R5", "fee-2027-01")
    assert closed == payments.CycleClose("R5", 1, 5_000, 60_000, FEB_1, 30_000, 60_000)
    assert _amounts(db, "R5", TransferCode.EXPIRY, "Wh") == [5_000]
    assert _amounts(db, "R5", TransferCode.EXPIRY, "KRW") == [2_308]
    balance = rider_balance(db, "R5")
    assert _units(balance) == (120_000, 0, 120_000)
    assert balance.prepaid_minor == 57_692
    assert _money(db) == (60_000, 2_308)
    _ledger_ok(db)


def test_subscription_without_carry_over_or_proration(db: Database, clock: ManualClock) -> None:
    net.network(db, NO_CARRY)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R5", "nocarry")
    clock.set(datetime(2026, 12, 10, 8, 0, 0, tzinfo=UTC))
    sub = payments.subscribe(db, "R5", "sub-pay-1")
    assert (sub.amount_minor, sub.units) == (30_000, 60_000)  # not pro-rated
    assert _subscription(db, "R5")[1:3] == (datetime(2026, 12, 10, 8, 0, 0, tzinfo=UTC), JAN_1)

    pack = _swap(
        db,
        clock,
        "R5",
        out=("ST1", 1, "B-1", 10_000, 10_000),
        back=("ST2", 1, 1_000),
        request="c1",
        hold=1_700,
    )
    assert (pack.usage_units, pack.revenue_minor) == (1_530, 765)  # 30,000 * 1,530 / 60,000

    # Everything unused expires, and with it all the prepaid money left (29,235 KRW).
    clock.set(JAN_1)
    closed = payments.close_cycle(db, "R5", "fee-2027-01")
    assert closed == payments.CycleClose("R5", 1, 58_470, 0, FEB_1, 30_000, 60_000)
    assert _amounts(db, "R5", TransferCode.EXPIRY, "KRW") == [29_235]
    balance = rider_balance(db, "R5")
    assert _units(balance) == (60_000, 0, 60_000)
    assert balance.prepaid_minor == 30_000
    assert _money(db) == (60_000, 30_000)
    _ledger_ok(db)


def test_subscription_overage_bills_the_receivable(db: Database, clock: ManualClock) -> None:
    net.network(db, SMALL)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=100, soh=100, station_id="ST1", slot_no=2)
    catalog.register_pack(db, "B-3", "G2", soc=100, soh=90, station_id="ST1", slot_no=3)
    catalog.add_rider(db, "R6", "small")
    clock.set(DEC_1)
    sub = payments.subscribe(db, "R6", "sub-pay-1")
    assert (sub.amount_minor, sub.units) == (5_000, 2_000)

    # 1,530 Wh used; revenue 5,000 * 1,530 / 2,000 = 3,825.
    first = _swap(
        db,
        clock,
        "R6",
        out=("ST1", 1, "B-1", 10_000, 10_000),
        back=("ST2", 1, 1_000),
        request="s1",
        hold=1_700,
    )
    assert (first.usage_units, first.charged_units, first.beyond_units) == (1_530, 1_530, 0)
    assert (first.revenue_minor, first.overage_minor) == (3_825, 0)
    balance = rider_balance(db, "R6")
    assert _units(balance) == (470, 0, 470)
    assert balance.prepaid_minor == 1_175

    # B-2 needs 1,700 Wh but only 470 are left: an overage plan hands it over, holding 470.
    # Usage 1,700 * 0.97 = 1,649 Wh: 470 from the allowance (the last 1,175 KRW of revenue),
    # 1,179 beyond, billed round_half_even(1,179 * 250 / 1,000) = round(294.75) = 295 KRW.
    second = _swap(
        db,
        clock,
        "R6",
        out=("ST1", 2, "B-2", 10_000, 10_000),
        back=("ST2", 2, 300),
        request="s2",
        hold=470,
    )
    assert (second.usage_units, second.charged_units, second.beyond_units) == (1_649, 470, 1_179)
    assert (second.revenue_minor, second.overage_minor, second.hold_units) == (1_175, 295, 470)
    balance = rider_balance(db, "R6")
    assert _units(balance) == (0, 0, 0)
    assert (balance.prepaid_minor, balance.receivable_minor) == (0, 295)  # allowance 0, money 0

    # Nothing left: B-3 goes out with no hold at all; 1,700 * 0.90 * 0.50 = 765 Wh, all overage,
    # round_half_even(765 * 250 / 1,000) = round(191.25) = 191 KRW.
    third = _swap(
        db,
        clock,
        "R6",
        out=("ST1", 3, "B-3", 10_000, 9_000),
        back=("ST2", 3, 5_000),
        request="s3",
        hold=0,
    )
    assert (third.usage_units, third.charged_units, third.beyond_units) == (765, 0, 765)
    assert (third.revenue_minor, third.overage_minor, third.hold_units) == (0, 191, 0)
    balance = rider_balance(db, "R6")
    assert _units(balance) == (0, 0, 0)
    assert (balance.prepaid_minor, balance.receivable_minor) == (0, 486)
    assert _amounts(db, "R6", TransferCode.OVERAGE, "Wh") == [1_179, 765]
    assert _amounts(db, "R6", TransferCode.OVERAGE, "KRW") == [295, 191]
    assert _subscription(db, "R6")[3:] == (0, 2_000)
    assert _money(db) == (5_000, 5_486)

    # Paying the receivable: in parts, idempotent per payment reference, never beyond what is owed.
    paid = payments.pay_receivable(db, "R6", 300, "rcv-1", actor="ops:kim")
    assert paid == payments.ReceivablePayment("R6", "rcv-1", 300, "KRW", 186, repeated=False)
    again = payments.pay_receivable(db, "R6", 300, "rcv-1")
    assert again == payments.ReceivablePayment("R6", "rcv-1", 300, "KRW", 186, repeated=True)
    with pytest.raises(Conflict):
        payments.pay_receivable(db, "R6", 200, "rcv-1")
    with pytest.raises(Conflict):
        payments.pay_receivable(db, "R6", 187, "rcv-2")
    assert payments.pay_receivable(db, "R6", 186, "rcv-2").owed_minor == 0
    assert [x.actor for x in _of_code(db, "R6", TransferCode.PAYMENT, "KRW")] == ["ops:kim", "payments"]
    assert _amounts(db, "R6", TransferCode.PAYMENT, "KRW") == [300, 186]
    assert rider_balance(db, "R6").receivable_minor == 0
    assert _money(db) == (5_486, 5_486)

    # Nothing unused at the close: nothing expires or carries.
    clock.set(JAN_1)
    closed = payments.close_cycle(db, "R6", "fee-2027-01")
    assert closed == payments.CycleClose("R6", 1, 0, 0, FEB_1, 5_000, 2_000)
    balance = rider_balance(db, "R6")
    assert _units(balance) == (2_000, 0, 2_000)
    assert (balance.prepaid_minor, balance.receivable_minor) == (5_000, 0)
    _ledger_ok(db)


def test_receivable_payment_reference_belongs_to_one_rider(db: Database, clock: ManualClock) -> None:
    """A payment reference applied for one rider is not silently 'already applied' for another
    (top-ups and refunds refuse that with Conflict; so must receivable payments)."""
    net.network(db, SMALL)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R6", "small")
    catalog.add_rider(db, "R7", "small")
    clock.set(DEC_1)
    payments.subscribe(db, "R6", "sub-pay-6")
    payments.subscribe(db, "R7", "sub-pay-7")
    payments.adjust(db, "R6", -2_000, reason="test: use up", actor="ops:kim", key="adj-6")
    pack = _swap(
        db,
        clock,
        "R6",
        out=("ST1", 1, "B-1", 10_000, 10_000),
        back=("ST2", 1, 0),
        request="s1",
        hold=0,
    )
    assert (pack.beyond_units, pack.overage_minor) == (1_700, 425)
    assert payments.pay_receivable(db, "R6", 425, "rcv-1").owed_minor == 0
    with pytest.raises(Conflict):
        payments.pay_receivable(db, "R7", 425, "rcv-1")
    _ledger_ok(db)


def test_close_cycle_payment_reference_pays_one_cycle_only(db: Database, clock: ManualClock) -> None:
    """Closing late (two cycle ends passed) and retrying with the same payment reference must not
    charge a second fee under that reference (R5: every charge is idempotent)."""
    net.network(db, SUB)
    catalog.add_rider(db, "R5", "sub")
    clock.set(DEC_1)
    payments.subscribe(db, "R5", "sub-pay-1")
    clock.set(datetime(2027, 2, 15, tzinfo=UTC))
    first = payments.close_cycle(db, "R5", "fee-2027-01")
    assert (first.closed_cycle_no, first.fee_minor) == (1, 30_000)
    fees = _amounts(db, "R5", TransferCode.SUBSCRIPTION_FEE, "KRW")
    assert fees == [30_000, 30_000]
    with contextlib.suppress(Conflict):  # refusing the repeat is fine; paying again is not
        payments.close_cycle(db, "R5", "fee-2027-01")
    assert _amounts(db, "R5", TransferCode.SUBSCRIPTION_FEE, "KRW") == fees
    _ledger_ok(db)


# -- refunds -------------------------------------------------------------------------------------


def test_refunds(db: Database, clock: ManualClock) -> None:
    net.network(db, ENERGY)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 10_000, "pay-1")

    # 3,000 of 10,000 KRW back: ceil(33,333 * 3,000 / 10,000) = ceil(9,999.9) = 10,000 Wh leave too.
    refund = payments.refund(db, "R1", 3_000, reason="customer request", actor="ops:kim", key="rf-1")
    assert refund == payments.Refund("R1", 3_000, 10_000, False)
    assert [
        (tr.ledger, tr.amount, tr.memo, tr.actor)
        for tr in transfers_of(db, "R1")
        if tr.code is TransferCode.REFUND
    ] == [
        ("KRW", 3_000, "customer request", "ops:kim"),
        ("Wh", 10_000, "customer request", "ops:kim"),
    ]
    balance = rider_balance(db, "R1")
    assert _units(balance) == (23_333, 0, 23_333)
    assert balance.prepaid_minor == 7_000
    assert _money(db) == (7_000, 0)

    before = _snapshot(db)
    again = payments.refund(db, "R1", 3_000, reason="customer request", actor="ops:kim", key="rf-1")
    assert again == payments.Refund("R1", 3_000, 10_000, True)
    with pytest.raises(Conflict):
        payments.refund(db, "R1", 2_000, reason="customer request", actor="ops:kim", key="rf-1")
    with pytest.raises(Conflict):  # more than the 7,000 KRW still prepaid
        payments.refund(db, "R1", 7_001, reason="too much", actor="ops:kim", key="rf-2")
    assert _snapshot(db) == before

    # A pack out holds 1,700 Wh: refunding everything would take held allowance.
    offer = swaps.authorize(db, "ST1", _app("R1"))
    assert offer.accepted and offer.offered[0].hold_units == 1_700
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=_app("R1"))
    assert _units(rider_balance(db, "R1")) == (23_333, 1_700, 21_633)
    transfers_before = transfers_of(db)
    with pytest.raises(Conflict):
        payments.refund(db, "R1", 7_000, reason="closing account", actor="ops:kim", key="rf-3")
    assert transfers_of(db) == transfers_before

    # Back with 1,360 Wh used (round(7,000 * 1,360 / 23,333) = 408 KRW earned); then all of it.
    clock.set(clock.now() + timedelta(hours=1))
    returned = swaps.battery_in(
        db, "ST2", "i1", [BatteryReading(1, "B-1", 2_000, 10_000)], token=_serial("B-1")
    )
    assert (returned.packs[0].usage_units, returned.packs[0].revenue_minor) == (1_360, 408)
    balance = rider_balance(db, "R1")
    assert _units(balance) == (21_973, 0, 21_973)
    assert balance.prepaid_minor == 6_592
    final = payments.refund(db, "R1", 6_592, reason="closing account", actor="ops:kim", key="rf-3")
    assert final == payments.Refund("R1", 6_592, 21_973, False)
    balance = rider_balance(db, "R1")
    assert _units(balance) == (0, 0, 0)
    assert balance.prepaid_minor == 0  # allowance 0, money 0
    with pytest.raises(Conflict):
        payments.refund(db, "R1", 1, reason="nothing left", actor="ops:kim", key="rf-4")
    # What was kept is exactly what was earned.
    assert _money(db) == (408, 408)
    assert _amounts(db, "R1", TransferCode.REFUND, "KRW") == [3_000, 6_592]
    assert _amounts(db, "R1", TransferCode.REFUND, "Wh") == [10_000, 21_973]
    _ledger_ok(db)


def test_refund_taking_the_last_units_takes_all_their_money(db: Database, clock: ManualClock) -> None:
    """Refunds round the units against the rider; when that takes the whole allowance, no prepaid
    money may stay behind without allowance (weighted-average invariant)."""
    net.network(db, BUNDLE)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R4", "bundle")
    payments.top_up(db, "R4", 12_500, "pay-1")
    payments.adjust(db, "R4", -9, reason="test: nine used", actor="ops:kim", key="adj-1")
    balance = rider_balance(db, "R4")
    assert _units(balance) == (1, 0, 1)
    assert balance.prepaid_minor == 1_250  # 12,500 * 9 / 10 = 11,250 earned
    # 1,000 of the 1,250 KRW back: ceil(1 * 1,000 / 1,250) = 1 delivery leaves with it.
    with contextlib.suppress(Conflict):  # refusing this refund would be fine too
        payments.refund(db, "R4", 1_000, reason="complaint", actor="ops:kim", key="rf-1")
    balance = rider_balance(db, "R4")
    assert balance.posted_units > 0 or balance.prepaid_minor == 0, balance
    _ledger_ok(db)


# -- adjustments ---------------------------------------------------------------------------------


def test_adjustments(db: Database) -> None:
    net.network(db, ENERGY)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 10_000, "pay-1")

    plus = payments.adjust(db, "R1", 1_000, reason="app outage goodwill", actor="ops:kim", key="adj-1")
    assert plus == payments.Adjustment("R1", 1_000, "Wh", False)
    balance = rider_balance(db, "R1")
    assert _units(balance) == (34_333, 0, 34_333)
    assert balance.prepaid_minor == 10_000  # free units: no money moves
    assert payments.adjust(
        db, "R1", 1_000, reason="app outage goodwill", actor="ops:kim", key="adj-1"
    ).repeated
    with pytest.raises(Conflict):
        payments.adjust(db, "R1", -1_000, reason="app outage goodwill", actor="ops:kim", key="adj-1")
    with pytest.raises(Conflict):
        payments.adjust(db, "R1", 999, reason="app outage goodwill", actor="ops:kim", key="adj-1")
    assert _units(rider_balance(db, "R1")) == (34_333, 0, 34_333)

    # 500 Wh taken away earn their prepaid money: round(10,000 * 500 / 34,333) = round(145.6) = 146.
    minus = payments.adjust(db, "R1", -500, reason="meter fault", actor="ops:lee", key="adj-2")
    assert minus == payments.Adjustment("R1", -500, "Wh", False)
    balance = rider_balance(db, "R1")
    assert _units(balance) == (33_833, 0, 33_833)
    assert balance.prepaid_minor == 9_854

    # Beyond what is available (posted less held) is refused.
    with pytest.raises(Conflict):
        payments.adjust(db, "R1", -33_834, reason="too much", actor="ops:lee", key="adj-3")
    offer = swaps.authorize(db, "ST1", _app("R1"), request_id="a1")
    assert offer.accepted and offer.offered[0].hold_units == 1_700
    with pytest.raises(Conflict):
        payments.adjust(db, "R1", -32_134, reason="too much", actor="ops:lee", key="adj-3")
    swaps.battery_out_timeout(db, "ST1", "a1")
    assert _units(rider_balance(db, "R1")) == (33_833, 0, 33_833)

    # Taking all of it away earns all the prepaid money left.
    payments.adjust(db, "R1", -33_833, reason="account closed", actor="ops:lee", key="adj-3")
    balance = rider_balance(db, "R1")
    assert _units(balance) == (0, 0, 0)
    assert balance.prepaid_minor == 0  # allowance 0, money 0

    adjustments = [
        (tr.ledger, tr.amount, tr.memo, tr.actor)
        for tr in transfers_of(db, "R1")
        if tr.code is TransferCode.ADJUSTMENT
    ]
    assert adjustments == [
        ("Wh", 1_000, "app outage goodwill", "ops:kim"),
        ("KRW", 146, "meter fault", "ops:lee"),
        ("Wh", 500, "meter fault", "ops:lee"),
        ("KRW", 9_854, "account closed", "ops:lee"),
        ("Wh", 33_833, "account closed", "ops:lee"),
    ]
    assert _money(db) == (10_000, 10_000)
    _ledger_ok(db)


# -- time plan overdraw --------------------------------------------------------------------------


def test_time_plan_overdraw_settled_by_top_ups(db: Database, clock: ManualClock) -> None:
    net.network(db, TIME)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.add_rider(db, "R8", "time")
    assert payments.top_up(db, "R8", 2_000, "pay-1").units == 3_600

    clock.set(datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC))
    offer = swaps.authorize(db, "ST1", _app("R8"))
    assert offer.accepted and offer.offered[0].hold_units == 3_600
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=_app("R8"))
    assert _units(rider_balance(db, "R8")) == (3_600, 3_600, 0)

    # Held 2 h 0 min 1 s = 7,201 s -> 121 started minutes = 7,260 s; 3,600 covered, 3,660 owed.
    clock.set(datetime(2026, 11, 2, 11, 0, 1, tzinfo=UTC))
    result = swaps.battery_in(
        db, "ST2", "i1", [BatteryReading(2, "B-1", 3_000, 10_000)], token=_serial("B-1")
    )
    (pack,) = result.packs
    assert (pack.usage_units, pack.charged_units, pack.beyond_units) == (7_260, 3_600, 3_660)
    assert (pack.revenue_minor, pack.overage_minor) == (2_000, 0)
    balance = rider_balance(db, "R8")
    assert _units(balance) == (0, 0, 0)
    assert (balance.overdrawn_units, balance.prepaid_minor) == (3_660, 0)
    assert _amounts(db, "R8", TransferCode.OVERDRAWN, "s") == [3_660]

    refused = swaps.authorize(db, "ST2", _app("R8"))
    assert (refused.accepted, refused.reason) == (False, "no_credit")
    assert (refused.required_units, refused.available_units) == (3_600, 0)

    # 1,000 KRW buy 1,800 s, all of it settles the debt (and earns all 1,000 KRW).
    assert payments.top_up(db, "R8", 1_000, "pay-2").units == 1_800
    balance = rider_balance(db, "R8")
    assert _units(balance) == (0, 0, 0)
    assert (balance.overdrawn_units, balance.prepaid_minor) == (1_860, 0)

    # 5,000 KRW buy 9,000 s; 1,860 settle the rest, earning round(5,000 * 1,860 / 9,000) = 1,033.
    assert payments.top_up(db, "R8", 5_000, "pay-3").units == 9_000
    balance = rider_balance(db, "R8")
    assert _units(balance) == (7_140, 0, 7_140)
    assert (balance.overdrawn_units, balance.prepaid_minor) == (0, 3_967)
    assert _amounts(db, "R8", TransferCode.SETTLE, "s") == [1_800, 1_860]
    assert _amounts(db, "R8", TransferCode.REVENUE, "KRW") == [2_000, 1_000, 1_033]
    assert _money(db) == (8_000, 4_033)

    before = _snapshot(db)
    assert payments.top_up(db, "R8", 5_000, "pay-3").repeated is True
    assert _snapshot(db) == before

    assert swaps.authorize(db, "ST2", _app("R8")).accepted
    _ledger_ok(db)


# -- abandoned hand-overs ------------------------------------------------------------------------


def test_abandoned_hand_over_voids_holds(db: Database) -> None:
    net.network(db, ENERGY)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=95, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R1", "energy", vehicle_packs=2)
    payments.top_up(db, "R1", 3_000, "pay-1")

    def packs_in_place() -> None:
        view = station_view(db, "ST1")
        assert {s: (p.status, p.slot_no, p.reserved_swap_id) for s, p in view.packs.items()} == {
            "B-1": (PackStatus.IN_SLOT, 1, None),
            "B-2": (PackStatus.IN_SLOT, 2, None),
        }
        assert [s.pack_serial for s in view.slots[:3]] == ["B-1", "B-2", None]

    # Offer by requestId, then BatteryOutTimeout: both holds (1,700 + 1,615 Wh) are voided.
    offer = swaps.authorize(db, "ST1", _app("R1"), request_id="a-1")
    assert [(o.serial, o.hold_units) for o in offer.offered] == [("B-1", 1_700), ("B-2", 1_615)]
    assert offer.available_units == 6_685
    assert _units(rider_balance(db, "R1")) == (10_000, 3_315, 6_685)
    timeout = swaps.battery_out_timeout(db, "ST1", "a-1")
    assert timeout.swap_id == offer.swap_id
    assert [(p.serial, p.outcome, p.hold_units) for p in timeout.packs] == [
        ("B-1", "released", 1_700),
        ("B-2", "released", 1_615),
    ]
    assert _units(rider_balance(db, "R1")) == (10_000, 0, 10_000)
    packs_in_place()
    releases = _of_code(db, "R1", TransferCode.RELEASE, "Wh")
    assert [(tr.amount, tr.flags) for tr in releases] == [
        (1_700, TransferFlags.VOID_PENDING),
        (1_615, TransferFlags.VOID_PENDING),
    ]
    before = _snapshot(db)
    assert swaps.battery_out_timeout(db, "ST1", "a-1").repeated is True
    assert _snapshot(db) == before

    # An offer without requestId, abandoned server-side.
    second = swaps.authorize(db, "ST1", _app("R1"))
    assert second.accepted and second.swap_id != offer.swap_id
    assert _units(rider_balance(db, "R1")) == (10_000, 3_315, 6_685)
    # Asked again while it is open, the same offer comes back; nothing more is held.
    repeat = swaps.authorize(db, "ST1", _app("R1"))
    assert (repeat.swap_id, repeat.offered) == (second.swap_id, second.offered)
    assert _units(rider_balance(db, "R1")) == (10_000, 3_315, 6_685)
    assert second.swap_id is not None
    abandoned = swaps.abandon_offer(db, second.swap_id)
    assert [(p.serial, p.outcome) for p in abandoned.packs] == [
        ("B-1", "released"),
        ("B-2", "released"),
    ]
    assert _units(rider_balance(db, "R1")) == (10_000, 0, 10_000)
    packs_in_place()
    before = _snapshot(db)
    assert swaps.abandon_offer(db, second.swap_id).packs == ()
    assert _snapshot(db) == before

    # A battery-as-key style timeout: the station names the rider by token, not by requestId.
    third = swaps.authorize(db, "ST1", _app("R1"))
    assert third.accepted
    timeout = swaps.battery_out_timeout(db, "ST1", "t-3", token=_app("R1"))
    assert timeout.swap_id == third.swap_id and len(timeout.packs) == 2
    assert _units(rider_balance(db, "R1")) == (10_000, 0, 10_000)
    packs_in_place()

    states = {s.id: s.state for s in recent_swaps(db, "R1")}
    assert states == {
        offer.swap_id: "abandoned",
        second.swap_id: "abandoned",
        third.swap_id: "abandoned",
    }
    assert _amounts(db, "R1", TransferCode.HOLD, "Wh") == [1_700, 1_615] * 3
    assert _amounts(db, "R1", TransferCode.RELEASE, "Wh") == [1_700, 1_615] * 3
    assert _of_code(db, "R1", TransferCode.USAGE, "Wh") == []
    balance = rider_balance(db, "R1")
    assert balance.prepaid_minor == 3_000
    assert _money(db) == (3_000, 0)

    # The packs are free again: a new offer takes them.
    assert swaps.authorize(db, "ST1", _app("R1")).offered_slots == [1, 2]
    _ledger_ok(db)


# -- multi-pack swap -----------------------------------------------------------------------------


def test_multi_pack_swap_returns_two_and_takes_two(db: Database, clock: ManualClock) -> None:
    net.network(db, ENERGY)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=96, soh=95, station_id="ST1", slot_no=2)
    catalog.register_pack(db, "C-1", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.register_pack(db, "C-2", "G2", soc=92, soh=90, station_id="ST2", slot_no=2)
    catalog.add_rider(db, "R9", "energy", vehicle_packs=2)
    payments.top_up(db, "R9", 10_000, "pay-1")

    # Holds: 1,700 and ceil(1700 * 0.95 * 0.96) = ceil(1,550.4) = 1,551.
    first = swaps.authorize(db, "ST1", _app("R9"))
    assert [(o.slot_no, o.serial, o.hold_units) for o in first.offered] == [
        (1, "B-1", 1_700),
        (2, "B-2", 1_551),
    ]
    swaps.battery_out(
        db,
        "ST1",
        "o1",
        [BatteryReading(1, "B-1", 10_000, 10_000), BatteryReading(2, "B-2", 9_600, 9_500)],
        token=_app("R9"),
    )
    balance = rider_balance(db, "R9")
    assert _units(balance) == (33_333, 3_251, 30_082)
    assert balance.packs_held == ("B-1", "B-2")

    # At ST2 the rider presents B-1: both packs come back, two charged packs are offered.
    # C-2 holds ceil(1700 * 0.90 * 0.92) = ceil(1,407.6) = 1,408; the returning packs' holds
    # stay counted until they are metered: 33,333 - 3,251 - 3,108 = 26,974 available.
    clock.set(clock.now() + timedelta(hours=3))
    offer = swaps.authorize(db, "ST2", _serial("B-1"), request_id="sw2")
    assert offer.accepted and offer.rider_id == "R9"
    assert [(o.slot_no, o.serial, o.hold_units) for o in offer.offered] == [
        (1, "C-1", 1_700),
        (2, "C-2", 1_408),
    ]
    assert offer.available_units == 26_974

    # One BatteryIn with both: 1700 * 1.00 * 0.80 = 1,360 Wh and round(1700 * 0.95 * 0.46)
    # = round(742.9) = 743 Wh. Revenue round(10,000 * 1,360 / 33,333) = 408, then
    # round(9,592 * 743 / 31,973) = round(222.9) = 223.
    returned = swaps.battery_in(
        db,
        "ST2",
        "sw2",
        [BatteryReading(3, "B-1", 2_000, 9_900), BatteryReading(4, "B-2", 5_000, 9_500)],
        token=_serial("B-1"),
    )
    assert returned.swap_id == offer.swap_id
    assert [(p.serial, p.outcome, p.usage_units, p.revenue_minor) for p in returned.packs] == [
        ("B-1", "returned", 1_360, 408),
        ("B-2", "returned", 743, 223),
    ]
    assert _units(rider_balance(db, "R9")) == (31_230, 3_108, 28_122)

    # One BatteryOut with both new packs, same requestId.
    taken = swaps.battery_out(
        db,
        "ST2",
        "sw2",
        [BatteryReading(1, "C-1", 10_000, 10_000), BatteryReading(2, "C-2", 9_200, 9_000)],
    )
    assert taken.swap_id == offer.swap_id
    assert [(p.serial, p.outcome, p.rider_id, p.hold_units) for p in taken.packs] == [
        ("C-1", "handed_over", "R9", 1_700),
        ("C-2", "handed_over", "R9", 1_408),
    ]
    balance = rider_balance(db, "R9")
    assert _units(balance) == (31_230, 3_108, 28_122)
    assert balance.packs_held == ("C-1", "C-2")
    assert balance.prepaid_minor == 9_369
    assert _amounts(db, "R9", TransferCode.USAGE, "Wh") == [1_360, 743]
    assert _amounts(db, "R9", TransferCode.REVENUE, "KRW") == [408, 223]
    assert _money(db) == (10_000, 631)
    view = station_view(db, "ST2")
    assert {s: (p.status, p.slot_no) for s, p in view.packs.items()} == {
        "B-1": (PackStatus.IN_SLOT, 3),
        "B-2": (PackStatus.IN_SLOT, 4),
    }
    states = {s.id: (s.state, s.request_id) for s in recent_swaps(db, "R9")}
    assert offer.swap_id is not None
    assert states[offer.swap_id] == ("completed", "sw2")
    _ledger_ok(db)
