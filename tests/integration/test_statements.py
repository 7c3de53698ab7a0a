"""Monthly statements on SQLite and PostgreSQL, against a scenario run through the services.

The scenario spans September, October and November 2026 so that the October statement has an
opening balance, activity of every kind, a pack out across the month's end and activity after it.
Expected numbers come two ways: a few fixed ones from the billing method's rules, and every
balance and flow recomputed here in Python straight from the transfer rows (not from the cached
account balances the statement query starts from).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from swapd.domain.errors import InvalidInput, NotFound
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import TransferFlags
from swapd.services import catalog, payments, statements, swaps
from swapd.services.statements import COLUMNS, Month, Statement
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.plans import ENERGY, TIME

# 5,000 KRW a month for 2,000 Wh, no carry-over, full first cycle; overage 250 KRW per 1,000 Wh.
SMALL = Plan(
    "small",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    250,
    1000,
    fee_minor=5_000,
    included_units=2_000,
    carry_over=False,
    prorate_first_cycle=False,
)
OCTOBER = Month(2026, 10)


def _at(month: int, day: int, hour: int = 9, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def _app(rider_id: str) -> IdToken:
    return IdToken(TokenType.APP, rider_id)


class _Scenario:
    def __init__(self, db: Database, clock: ManualClock) -> None:
        self.db, self.clock = db, clock
        self.requests = 0
        self.return_slot = 0

    def at(self, when: datetime) -> None:
        self.clock.set(when)

    def _request(self) -> str:
        self.requests += 1
        return f"q{self.requests}"

    def take(self, rider_id: str, serial: str, *, soc: int = 100, soh: int = 100) -> None:
        """A charged pack is stocked at ST1 and handed to the rider (app swap)."""
        catalog.register_pack(self.db, serial, "G2", soc=soc, soh=soh, station_id="ST1", slot_no=1)
        offer = swaps.authorize(self.db, "ST1", _app(rider_id))
        assert offer.accepted and offer.offered_slots == [1], offer
        reading = BatteryReading(1, serial, soc * 100, soh * 100)
        swaps.battery_out(self.db, "ST1", self._request(), [reading], token=_app(rider_id))

    def give_back(self, serial: str, soc_bp: int) -> swaps.PackOutcome:
        """The pack is inserted into an empty slot of ST2: the pack names the rider (R3)."""
        self.return_slot += 1
        reading = BatteryReading(self.return_slot, serial, soc_bp, 10_000)
        token = IdToken(TokenType.BATTERY_SERIAL, serial)
        (outcome,) = swaps.battery_in(self.db, "ST2", self._request(), [reading], token=token).packs
        assert outcome.outcome == "returned", outcome
        return outcome


def _build(db: Database, clock: ManualClock) -> dict[str, swaps.PackOutcome]:
    """R1 energy, R2 time (overdraws), R3 subscription (expiry, overage), R4 quiet, R5 joins later."""
    s = _Scenario(db, clock)
    s.at(_at(9, 20))
    net.pack_model(db)
    net.plans(db, ENERGY, TIME, SMALL)
    net.station(db, "ST1", slot_count=4)
    net.station(db, "ST2", slot_count=12)
    for rider_id, plan_id in (("R1", "energy"), ("R2", "time"), ("R3", "small"), ("R4", "energy")):
        net.rider(db, rider_id, plan_id=plan_id)
    outcomes: dict[str, swaps.PackOutcome] = {}

    # September: the opening balances.
    payments.top_up(db, "R1", 3_000, "r1-sep")  # 10,000 Wh
    payments.top_up(db, "R4", 3_000, "r4-sep")
    payments.subscribe(db, "R3", "r3-sub")  # cycle to Oct 1: 5,000 KRW for 2,000 Wh
    s.take("R1", "P-01")
    s.at(_at(9, 30, 23))
    outcomes["sep"] = s.give_back("P-01", 5_000)  # 850 Wh

    # October.
    s.at(_at(10, 1, 0))
    payments.close_cycle(db, "R3", "r3-oct")  # the unused 2,000 Wh expire; a new cycle is paid
    s.at(_at(10, 2))
    payments.top_up(db, "R1", 10_000, "r1-oct")  # 33,333 Wh
    s.take("R1", "P-02", soc=98, soh=95)  # E1: hold 1,583 Wh
    s.at(_at(10, 2, 11))
    outcomes["e1"] = s.give_back("P-02", 2_000)  # E1: 1,260 Wh
    payments.refund(db, "R1", 1_000, reason="goodwill", actor="ops", key="r1-refund")
    payments.adjust(db, "R1", 500, reason="station fault", actor="ops", key="r1-adj-up")
    payments.adjust(db, "R1", -200, reason="correction", actor="ops", key="r1-adj-down")

    s.at(_at(10, 5))
    payments.top_up(db, "R2", 2_000, "r2-oct")  # 3,600 s
    s.take("R2", "P-03")
    s.at(_at(10, 5, 11, 0, 1))
    outcomes["overdrawn"] = s.give_back("P-03", 3_000)  # 7,260 s: 3,600 charged, 3,660 owed
    s.at(_at(10, 6))
    payments.top_up(db, "R2", 1_000, "r2-oct-2")  # 1,800 s settle part of the debt

    s.at(_at(10, 10))
    s.take("R3", "P-04")
    s.at(_at(10, 10, 12))
    outcomes["sub-1"] = s.give_back("P-04", 0)  # 1,700 Wh of the 2,000 included
    s.at(_at(10, 11))
    s.take("R3", "P-05")  # only 300 Wh left: the overage plan holds those
    s.at(_at(10, 11, 12))
    outcomes["overage"] = s.give_back("P-05", 0)  # 300 charged, 1,400 beyond: 350 KRW
    s.at(_at(10, 20))
    payments.pay_receivable(db, "R3", 200, "r3-owed")

    s.at(_at(10, 31, 23))
    s.take("R1", "P-06")  # out across the month's end: a hold only, in October

    # November, after the statement's month: must not leak into it.
    s.at(_at(11, 1, 1))
    outcomes["nov"] = s.give_back("P-06", 4_000)
    s.at(_at(11, 3))
    payments.top_up(db, "R1", 2_000, "r1-nov")
    payments.adjust(db, "R4", 100, reason="late fix", actor="ops", key="r4-adj")
    catalog.add_rider(db, "R5", "energy")
    payments.top_up(db, "R5", 1_000, "r5-nov")
    return outcomes


# -- an independent recomputation from the transfer rows ----------------------------------------

_POSTED = (int(TransferFlags.NONE), int(TransferFlags.POST_PENDING))


def _rows(
    db: Database,
) -> tuple[list[sa.Row[tuple[object, ...]]], dict[int, sa.Row[tuple[object, ...]]]]:
    with db.engine.connect() as connection:
        transfers = connection.execute(sa.select(t.transfers).order_by(t.transfers.c.id)).all()
        accounts = {a.id: a for a in connection.execute(sa.select(t.accounts))}
    return transfers, accounts


def _credit_balance(
    db: Database, owner: str, code: str, ledger: str, before: datetime, since: datetime | None = None
) -> int:
    """Posted credits less posted debits of one account over [since, before), from the rows."""
    transfers, accounts = _rows(db)
    total = 0
    for x in transfers:
        if x.flags not in _POSTED or x.created_at >= before or (since and x.created_at < since):
            continue
        for account_id, sign in ((x.credit_account_id, 1), (x.debit_account_id, -1)):
            a = accounts[account_id]
            if (a.owner, a.code, a.ledger) == (owner, code, ledger):
                total += sign * x.amount
    return total


def _code_sum(db: Database, rider_id: str, code: str, ledger: str) -> int:
    transfers, _ = _rows(db)
    return sum(
        x.amount
        for x in transfers
        if x.rider_id == rider_id
        and x.code == code
        and x.ledger == ledger
        and x.flags in _POSTED
        and OCTOBER.start <= x.created_at < OCTOBER.end
    )


def _expect_balances(db: Database, s: Statement) -> None:
    for edge, when in (("opening", OCTOBER.start), ("closing", OCTOBER.end)):
        got = asdict(s)
        assert got[f"{edge}_allowance_units"] == _credit_balance(
            db, s.rider_id, "allowance", s.unit, when
        ), edge
        assert got[f"{edge}_prepaid_minor"] == _credit_balance(
            db, s.rider_id, "prepaid", s.currency, when
        ), edge
        assert got[f"{edge}_receivable_minor"] == -_credit_balance(
            db, s.rider_id, "receivable", s.currency, when
        ), edge
        assert got[f"{edge}_overdrawn_units"] == -_credit_balance(
            db, s.rider_id, "overdrawn", s.unit, when
        ), edge


def _expect_flows(db: Database, s: Statement) -> None:
    unit, money, r = s.unit, s.currency, s.rider_id
    assert s.topup_minor == _code_sum(db, r, "top_up", money)
    assert s.topup_units == _code_sum(db, r, "top_up", unit)
    assert s.subscription_fee_minor == _code_sum(db, r, "subscription_fee", money)
    assert s.subscription_units == _code_sum(db, r, "subscription_fee", unit)
    assert s.receivable_paid_minor == _code_sum(db, r, "payment", money)
    assert s.charged_units == _code_sum(db, r, "usage", unit)
    assert s.overage_units == _code_sum(db, r, "overage", unit)
    assert s.overdrawn_units == _code_sum(db, r, "overdrawn", unit)
    assert s.settled_units == _code_sum(db, r, "settle", unit)
    assert s.usage_revenue_minor == _code_sum(db, r, "revenue", money)
    assert s.overage_minor == _code_sum(db, r, "overage", money)
    assert s.refund_minor == _code_sum(db, r, "refund", money)
    assert s.refund_units == _code_sum(db, r, "refund", unit)
    assert s.adjustment_minor == _code_sum(db, r, "adjustment", money)
    assert s.expired_units == _code_sum(db, r, "expiry", unit)
    assert s.expired_minor == _code_sum(db, r, "expiry", money)
    # Every unit metered on a return in the month is charged, overage or owed.
    assert s.used_units == s.charged_units + s.overage_units + s.overdrawn_units
    assert s.usage_charge_minor == s.usage_revenue_minor + s.overage_minor
    # The statement's own arithmetic: opening plus the month is the close.
    assert s.closing_allowance_units == (
        s.opening_allowance_units
        + s.topup_units
        + s.subscription_units
        + s.adjustment_units
        - s.charged_units
        - s.settled_units
        - s.expired_units
        - s.refund_units
    )
    assert s.closing_prepaid_minor == (
        s.opening_prepaid_minor
        + s.topup_minor
        + s.subscription_fee_minor
        - s.usage_revenue_minor
        - s.expired_minor
        - s.refund_minor
        - s.adjustment_minor
    )


# -- tests --------------------------------------------------------------------------------------


def test_month_parsing() -> None:
    assert Month.parse("2026-10") == OCTOBER
    assert (OCTOBER.start, OCTOBER.end) == (_at(10, 1, 0), _at(11, 1, 0))
    assert Month.parse("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)
    assert str(Month.parse("2027-01")) == "2027-01"
    for bad in ("2026-13", "2026-00", "2026-1", "26-10", "2026/10", "", " 2026-10", 202610, None):
        with pytest.raises(InvalidInput):
            Month.parse(bad)


def test_statements_of_every_rider_match_the_transfers(db: Database, clock: ManualClock) -> None:
    outcomes = _build(db, clock)
    with db.engine.connect() as connection:
        assert check_ledger(connection).ok

    r1 = statements.statement(db, "R1", "2026-10")
    # Fixed numbers: September left 10,000 - 850 Wh and 3,000 - 255 KRW; E1's return is 1,260 Wh.
    assert outcomes["sep"].usage_units == 850 and outcomes["sep"].revenue_minor == 255
    assert (r1.opening_allowance_units, r1.opening_prepaid_minor) == (9_150, 2_745)
    assert r1.opening_value_minor == 2_745  # the whole allowance stands for all the prepaid money
    assert (r1.topups_count, r1.topup_minor, r1.topup_units) == (1, 10_000, 33_333)
    assert (r1.packs_taken_count, r1.packs_returned_count) == (2, 1)  # P-06 comes back in Nov
    assert (r1.used_units, r1.charged_units) == (1_260, 1_260)
    assert r1.usage_charge_minor == outcomes["e1"].revenue_minor
    assert (r1.refunds_count, r1.refund_minor) == (1, 1_000)
    assert r1.adjustment_units == 300
    assert r1.closing_value_minor == r1.closing_prepaid_minor > 0

    r2 = statements.statement(db, "R2", OCTOBER)
    assert (r2.plan_kind, r2.unit, r2.currency) == ("prepaid_time", "s", "KRW")
    assert (r2.used_units, r2.charged_units, r2.overdrawn_units) == (7_260, 3_600, 3_660)
    assert (r2.topups_count, r2.topup_minor, r2.settled_units) == (2, 3_000, 1_800)
    assert (r2.usage_revenue_minor, r2.closing_prepaid_minor) == (3_000, 0)
    assert (r2.opening_overdrawn_units, r2.closing_overdrawn_units) == (0, 1_860)

    r3 = statements.statement(db, "R3", OCTOBER)
    assert (r3.opening_allowance_units, r3.opening_prepaid_minor) == (2_000, 5_000)
    assert (r3.expired_units, r3.expired_minor) == (2_000, 5_000)
    assert (r3.subscription_payments_count, r3.subscription_fee_minor) == (1, 5_000)
    assert (r3.used_units, r3.charged_units, r3.overage_units) == (3_400, 2_000, 1_400)
    assert (r3.overage_minor, r3.receivable_paid_minor, r3.closing_receivable_minor) == (350, 200, 150)
    assert outcomes["overage"].overage_minor == 350

    r4 = statements.statement(db, "R4", OCTOBER)
    assert r4.opening_allowance_units == r4.closing_allowance_units == 10_000
    assert r4.adjustment_units == 0  # November's adjustment belongs to November

    for s in (r1, r2, r3, r4):
        _expect_balances(db, s)
        _expect_flows(db, s)

    # R5 joined in November: stated as all zero when asked for, left out of the export.
    r5 = statements.statement(db, "R5", OCTOBER)
    assert (r5.opening_allowance_units, r5.closing_allowance_units, r5.topup_minor) == (0, 0, 0)
    with pytest.raises(NotFound):
        statements.statement(db, "R9", OCTOBER)
    with pytest.raises(InvalidInput):
        statements.statement(db, "R1", "2026-13")


def test_november_statement_continues_from_october(db: Database, clock: ManualClock) -> None:
    _build(db, clock)
    for rider_id in ("R1", "R2", "R3", "R4"):
        october = statements.statement(db, rider_id, OCTOBER)
        november = statements.statement(db, rider_id, "2026-11")
        assert november.opening_allowance_units == october.closing_allowance_units
        assert november.opening_prepaid_minor == october.closing_prepaid_minor
        assert november.opening_receivable_minor == october.closing_receivable_minor
        assert november.opening_overdrawn_units == october.closing_overdrawn_units
    r1 = statements.statement(db, "R1", "2026-11")
    assert (r1.packs_taken_count, r1.packs_returned_count, r1.topup_minor) == (0, 1, 2_000)


def test_export_reconciles_with_the_ledger(db: Database, clock: ManualClock, tmp_path: Path) -> None:
    _build(db, clock)
    path = tmp_path / "statements.csv"
    seen: list[int] = []
    summary = statements.export_csv(db, "2026-10", path, progress=seen.append)
    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert tuple(header) == COLUMNS
    assert [r["rider_id"] for r in rows] == ["R1", "R2", "R3", "R4"]
    assert summary.riders == 4 and seen[-1] == 4
    assert statements.riders_in(db, OCTOBER) == 4
    for row in rows:
        single = statements.statement(db, row["rider_id"], OCTOBER)
        assert row == {k: str(v) for k, v in asdict(single).items()}

    def total(name: str) -> int:
        value = sum(int(r[name]) for r in rows)
        assert summary.totals[name] == value
        return value

    # The operator's side of the month, recomputed from the transfer rows.
    transfers, accounts = _rows(db)
    month = [x for x in transfers if x.flags in _POSTED and OCTOBER.start <= x.created_at < OCTOBER.end]
    moved: dict[tuple[str, str, str], int] = defaultdict(int)  # (code, ledger, side) -> amount
    for x in month:
        debit, credit = accounts[x.debit_account_id], accounts[x.credit_account_id]
        if debit.owner == "":
            moved[(debit.code, x.ledger, "debits")] += x.amount
        if credit.owner == "":
            moved[(credit.code, x.ledger, "credits")] += x.amount
    cash_in = moved[("cash", "KRW", "debits")]
    assert cash_in == total("topup_minor") + total("subscription_fee_minor") + total(
        "receivable_paid_minor"
    )
    assert moved[("cash", "KRW", "credits")] == total("refund_minor")
    assert moved[("revenue", "KRW", "credits")] == (
        total("usage_charge_minor") + total("expired_minor") + total("adjustment_minor")
    )
    consumed = (
        moved[("allowance_consumed", "Wh", "credits")] + moved[("allowance_consumed", "s", "credits")]
    )
    assert (
        consumed
        == total("used_units")
        == (total("charged_units") + total("overage_units") + total("overdrawn_units"))
    )
    # Every rider's allowance and prepaid money at both edges of the month.
    for edge, when in (("opening", OCTOBER.start), ("closing", OCTOBER.end)):
        allowance = sum(
            _credit_balance(db, rider, "allowance", unit, when)
            for rider, unit in (("R1", "Wh"), ("R2", "s"), ("R3", "Wh"), ("R4", "Wh"))
        )
        prepaid = sum(
            _credit_balance(db, rider, "prepaid", "KRW", when) for rider in ("R1", "R2", "R3", "R4")
        )
        assert total(f"{edge}_allowance_units") == allowance
        assert total(f"{edge}_prepaid_minor") == prepaid


def test_export_of_a_month_without_riders_writes_the_header_only(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    summary = statements.export_csv(db, "2026-10", path)
    assert summary.riders == 0
    assert path.read_text().splitlines() == [",".join(COLUMNS)]
    assert not list(tmp_path.glob(".*partial"))


def test_export_to_a_missing_directory_leaves_nothing_behind(db: Database, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    with pytest.raises(OSError):
        statements.export_csv(db, "2026-10", out / "missing" / "out.csv")
    assert list(out.rglob("*")) == []
