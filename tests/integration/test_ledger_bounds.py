"""Every amount and balance stays an integer inside its bound, on SQLite and PostgreSQL.

The report this answers: a plan selling 10^12 Wh for one minor unit let a top-up of 10,000,000
answer 500 (OverflowError) and two of 9,000,000 leave a float (1.8e19) in an account column on
SQLite, after which ``ledger check`` itself failed with "integer overflow".
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swapd.cli import app
from swapd.domain.errors import DomainError, InvalidInput
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import (
    MAX_ACCOUNT_COLUMN_AMOUNT,
    MAX_PAYMENT_MINOR,
    MAX_TRANSFER_AMOUNT,
    Unit,
)
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import LedgerError
from swapd.readmodels.money import rider_balance
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import WRITE, downgrade, make_engine, upgrade
from swapd.store.ledger_check import check_ledger
from tests.cli_runner import CliRunner
from tests.pg_databases import temporary_database
from tests.plans import ENERGY

BALANCE_COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


def _columns(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(*(t.accounts.c[c] for c in BALANCE_COLUMNS))).all()
    return [value for row in rows for value in row]


def _insert_plan_row(db: Database, plan_id: str, price_minor: int, price_units: int) -> None:
    """A plan written straight into the table, as one made before the bounds would be."""
    with db.engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        connection.execute(
            sa.insert(t.plans).values(
                id=plan_id,
                kind=PlanKind.PREPAID_ENERGY.value,
                unit=Unit.ENERGY_WH.value,
                currency="KRW",
                price_minor=price_minor,
                price_units=price_units,
                granularity_s=60,
                time_hold_s=3_600,
                fee_minor=0,
                included_units=0,
                carry_over=True,
                prorate_first_cycle=True,
            )
        )


def test_the_reported_huge_ratio_plan_and_its_top_ups_leave_every_balance_an_integer(
    db_url: str, clock: ManualClock
) -> None:
    db = Database(make_engine(db_url), clock)
    try:
        try:
            catalog.add_plan(db, Plan("huge", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 1, 10**12))
            created = True
        except InvalidInput as refused:
            assert "huge" in refused.message
            created = False
        if created:  # then each top-up must be refused instead
            catalog.add_rider(db, "R1", "huge")
            catalog.add_rider(db, "R2", "huge")
            for rider_id, amount, ref in [
                ("R1", 10_000_000, "p0"),
                ("R1", 9_000_000, "p1"),
                ("R2", 9_000_000, "p2"),
            ]:
                with pytest.raises((DomainError, LedgerError)):
                    payments.top_up(db, rider_id, amount, ref)
        columns = _columns(db)
        assert all(type(value) is int for value in columns), columns
        with db.engine.connect() as connection:
            report = check_ledger(connection)
        assert report.ok, report.problems
        assert report.transfers == 0
    finally:
        db.dispose()


def test_a_huge_ratio_plan_made_before_the_bounds_cannot_be_topped_up(
    db_url: str, clock: ManualClock
) -> None:
    db = Database(make_engine(db_url), clock)
    try:
        _insert_plan_row(db, "legacy", 1, 10**12)
        with db.engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
            connection.execute(
                sa.insert(t.riders).values(
                    id="R1", plan_id="legacy", status="active", vehicle_packs=1, created_at=clock.now()
                )
            )
        for amount, ref in [(10_000_000, "p0"), (9_000_000, "p1"), (9_000_000, "p2")]:
            with pytest.raises(InvalidInput):
                payments.top_up(db, "R1", amount, ref)
        assert _columns(db) == []
        with db.engine.connect() as connection:
            assert check_ledger(connection).ok
    finally:
        db.dispose()


# -- plans, top-ups, adjustments and swaps at the bounds ------------------------------------------

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PREPAID = [
    (PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH),
    (PlanKind.PREPAID_TIME, Unit.TIME_S),
    (PlanKind.PREPAID_DELIVERIES, Unit.DELIVERIES),
]
CURRENCIES = ["KRW", "USD", "IDR", "BHD"]


def most_units_per_price(price_minor: int) -> int:
    """The largest price_units a plan may sell for price_minor: floor(P * u / p) <= T exactly when
    P * u < (T + 1) * p (P the largest payment, T the largest transfer)."""
    return min(MAX_TRANSFER_AMOUNT, ((MAX_TRANSFER_AMOUNT + 1) * price_minor - 1) // MAX_PAYMENT_MINOR)


def _counts(db: Database) -> tuple[int, ...]:
    with db.engine.connect() as connection:
        return tuple(
            connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (t.plans, t.accounts, t.transfers)
        )


def _state(db: Database) -> list[tuple[object, ...]]:
    """Every account row and every transfer: equal before and after, nothing was written."""
    with db.engine.connect() as connection:
        accounts = connection.execute(sa.select(t.accounts).order_by(t.accounts.c.id)).all()
        transfers = connection.execute(sa.select(t.transfers.c.id).order_by(t.transfers.c.id)).all()
    return [tuple(row) for row in [*accounts, *transfers]]


def _assert_clean(db: Database) -> None:
    columns = _columns(db)
    assert all(type(v) is int and 0 <= v <= MAX_ACCOUNT_COLUMN_AMOUNT for v in columns), columns
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


@pytest.fixture
def shared(db_url: str, clock: ManualClock) -> Iterator[Database]:
    """One database for every example of a test: the examples use ids of their own."""
    db = Database(make_engine(db_url), clock)
    yield db
    db.dispose()


@contextlib.contextmanager
def fresh(db_url: str, clock: ManualClock) -> Iterator[Database]:
    """An empty database for one example (the operator's accounts start at zero)."""
    engine = make_engine(db_url)
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        for table in reversed(t.metadata.sorted_tables):
            connection.execute(sa.delete(table))
    db = Database(engine, clock)
    try:
        yield db
    finally:
        db.dispose()


@SETTINGS
@given(
    kind_unit=st.sampled_from(PREPAID),
    currency=st.sampled_from(CURRENCIES),
    price_minor=st.integers(min_value=1, max_value=MAX_PAYMENT_MINOR),
)
def test_a_plan_at_the_price_bound_is_accepted_and_its_largest_top_up_is_exact(
    shared: Database, kind_unit: tuple[PlanKind, Unit], currency: str, price_minor: int
) -> None:
    db = shared
    kind, unit = kind_unit
    price_units = most_units_per_price(price_minor)
    suffix = uuid.uuid4().hex[:8]
    if price_units < MAX_TRANSFER_AMOUNT:  # else no price_units is one too many
        before = _counts(db)
        with pytest.raises(InvalidInput, match="price at most 9,007"):
            catalog.add_plan(
                db, Plan(f"over-{suffix}", kind, unit, currency, price_minor, price_units + 1)
            )
        assert _counts(db) == before
    plan = catalog.add_plan(db, Plan(f"at-{suffix}", kind, unit, currency, price_minor, price_units))
    rider_id = f"R-{suffix}"
    catalog.add_rider(db, rider_id, plan.id)

    before = _state(db)
    with pytest.raises(InvalidInput, match="above the limit"):
        payments.top_up(db, rider_id, MAX_PAYMENT_MINOR + 1, f"over-{suffix}")
    assert _state(db) == before

    done = payments.top_up(db, rider_id, MAX_PAYMENT_MINOR, f"pay-{suffix}")
    expected = MAX_PAYMENT_MINOR * price_units // price_minor
    assert done.units == expected <= MAX_TRANSFER_AMOUNT
    balance = rider_balance(db, rider_id)
    assert (balance.posted_units, balance.prepaid_minor) == (expected, MAX_PAYMENT_MINOR)
    assert type(balance.posted_units) is int
    _assert_clean(db)


@SETTINGS
@given(units=st.integers(min_value=1, max_value=MAX_TRANSFER_AMOUNT), sign=st.sampled_from([1, -1]))
def test_an_adjustment_up_to_one_transfer_is_exact_and_one_more_is_refused(
    shared: Database, units: int, sign: int
) -> None:
    db = shared
    suffix = uuid.uuid4().hex[:8]
    if not _counts(db)[0]:
        catalog.add_plan(db, ENERGY)
    rider_id = f"R-{suffix}"
    catalog.add_rider(db, rider_id, ENERGY.id)
    if sign < 0:  # something to take away first
        payments.adjust(db, rider_id, MAX_TRANSFER_AMOUNT, reason="give", actor="t", key=f"g-{suffix}")

    before = _state(db)
    for too_much in (MAX_TRANSFER_AMOUNT + 1, -(MAX_TRANSFER_AMOUNT + 1)):
        with pytest.raises(InvalidInput, match="above the limit"):
            payments.adjust(db, rider_id, too_much, reason="r", actor="t", key=f"x-{suffix}")
    assert _state(db) == before

    posted = rider_balance(db, rider_id).posted_units
    done = payments.adjust(db, rider_id, sign * units, reason="r", actor="t", key=f"a-{suffix}")
    assert done.units == sign * units
    assert rider_balance(db, rider_id).posted_units == posted + sign * units
    _assert_clean(db)


def _fill(db: Database, rider_id: str, units: int) -> None:
    """Adjust ``units`` into the rider's allowance, one transfer's worth at a time, at once."""

    def work(tx: Tx) -> None:
        left, step = units, 0
        while left:
            part = min(left, MAX_TRANSFER_AMOUNT)
            payments.adjust(tx, rider_id, part, reason="fill", actor="t", key=f"f{step}")
            left, step = left - part, step + 1

    db.write(work)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(headroom=st.integers(min_value=0, max_value=MAX_TRANSFER_AMOUNT))
def test_an_account_column_reaches_its_bound_exactly_and_no_further(
    db_url: str, clock: ManualClock, headroom: int
) -> None:
    with fresh(db_url, clock) as db:
        catalog.add_plan(db, ENERGY)
        catalog.add_rider(db, "R1", ENERGY.id)
        _fill(db, "R1", MAX_ACCOUNT_COLUMN_AMOUNT - headroom)
        if headroom:
            payments.adjust(db, "R1", headroom, reason="to the bound", actor="t", key="last")
        assert rider_balance(db, "R1").posted_units == MAX_ACCOUNT_COLUMN_AMOUNT
        _assert_clean(db)

        # One unit more, by adjustment or by a top-up, would pass the bound of the operator's
        # issued account (debited first) and of the rider's allowance: refused, nothing written.
        before = _state(db)
        with pytest.raises(LedgerError) as refused:
            payments.adjust(db, "R1", 1, reason="one more", actor="t", key="past")
        assert refused.value.code == "overflows_debits_posted"
        with pytest.raises(LedgerError) as refused:
            payments.top_up(db, "R1", 300, "pay-past")
        assert refused.value.code == "overflows_debits_posted"
        assert _state(db) == before

        # A swap at the bound is exact: its hold and usage never add to the rider's credits.
        catalog.add_pack_model(db, "G2", 1700)
        catalog.add_station(db, "ST1", 4)
        catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
        app_token = IdToken(TokenType.APP, "R1")
        offer = swaps.authorize(db, "ST1", app_token)
        assert [(o.serial, o.hold_units) for o in offer.offered] == [("B-1", 1_700)]
        swaps.battery_out(db, "ST1", "out", [BatteryReading(1, "B-1", 10_000, 10_000)], token=app_token)
        back = swaps.battery_in(
            db,
            "ST1",
            "in",
            [BatteryReading(2, "B-1", 1_000, 10_000)],
            token=IdToken(TokenType.BATTERY_SERIAL, "B-1"),
        )
        assert [(p.usage_units, p.revenue_minor) for p in back.packs] == [(1_530, 0)]
        balance = rider_balance(db, "R1")
        assert balance.posted_units == MAX_ACCOUNT_COLUMN_AMOUNT - 1_530
        assert balance.held_units == 0
        _assert_clean(db)


# -- the schema ----------------------------------------------------------------------------------

# value -> whether PostgreSQL stores it as an integer instead of refusing it (it rounds a
# fraction into BIGINT; SQLite would keep the fraction, so it refuses it)
BAD_BALANCES = {
    "1.8e19": False,
    "0.5": True,
    "'lots'": False,
    str(MAX_ACCOUNT_COLUMN_AMOUNT + 1): False,
    "-1": False,
}
BAD_AMOUNTS = {"1.5e19": False, "1.5": True, str(MAX_TRANSFER_AMOUNT + 1): False, "0": False}


def _refused(db: Database, statement: str) -> bool:
    try:
        with db.engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
            connection.execute(sa.text(statement))
    except sa.exc.DBAPIError:
        return True
    return False


def _topped_up(db: Database) -> None:
    catalog.add_plan(db, ENERGY)
    catalog.add_rider(db, "R1", ENERGY.id)
    payments.top_up(db, "R1", 10_000, "pay-1")
    assert not _refused(
        db,
        "INSERT INTO payments (id, rider_id, provider, purpose, amount_minor, currency, status,"
        " created_at, updated_at) VALUES ('P1', 'R1', 'sandbox', 'top_up', 10000, 'KRW',"
        " 'succeeded', '2026-11-02 09:00:00', '2026-11-02 09:00:00')",
    )


def _integers_within_bounds(db: Database) -> bool:
    with db.engine.connect() as connection:
        amounts = connection.execute(sa.select(t.transfers.c.amount)).scalars().all()
        paid = connection.execute(sa.select(t.payments.c.amount_minor)).scalars().all()
    return all(type(v) is int and 0 <= v <= MAX_ACCOUNT_COLUMN_AMOUNT for v in _columns(db)) and all(
        type(v) is int and 1 <= v <= MAX_TRANSFER_AMOUNT for v in [*amounts, *paid]
    )


@pytest.mark.parametrize("value", BAD_BALANCES)
@pytest.mark.parametrize("column", BALANCE_COLUMNS)
def test_the_schema_refuses_an_account_column_that_is_no_integer_within_its_bound(
    db: Database, column: str, value: str
) -> None:
    _topped_up(db)
    before = _state(db)
    refused = _refused(db, f"UPDATE accounts SET {column} = {value}")
    if db.dialect == "postgresql" and BAD_BALANCES[value]:
        assert not refused
    else:
        assert refused
        assert _state(db) == before
    assert _integers_within_bounds(db)


@pytest.mark.parametrize("value", BAD_AMOUNTS)
@pytest.mark.parametrize(("table", "column"), [("transfers", "amount"), ("payments", "amount_minor")])
def test_the_schema_refuses_a_transfer_or_payment_amount_out_of_bounds(
    db: Database, table: str, column: str, value: str
) -> None:
    _topped_up(db)
    refused = _refused(db, f"UPDATE {table} SET {column} = {value}")
    assert refused is not (db.dialect == "postgresql" and BAD_AMOUNTS[value])
    assert _integers_within_bounds(db)


# -- ledger check and the migration, on a database from before the bounds ------------------------

BEFORE_BOUNDS = "0005"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, migrated up to the revision before the bounds' constraints."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        engine = make_engine(url)
        upgrade(engine, BEFORE_BOUNDS)
        engine.dispose()
        yield url
        return
    request.getfixturevalue("pg_url")  # skips, or fails under SWAPD_REQUIRE_POSTGRES, if no server
    with temporary_database("swapd_bounds", migrated_to=BEFORE_BOUNDS) as url:
        yield url


def _execute(engine: sa.Engine, *statements: str) -> None:
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        for statement in statements:
            connection.execute(sa.text(statement))


NOW = "'2026-11-02 09:00:00'"


def _the_reported_rows(engine: sa.Engine) -> None:
    """What the two top-ups of 9,000,000 on the huge-ratio plan left on SQLite: two transfers of
    9 * 10^18 Wh and the operator's issued account at 1.8e19, a float. PostgreSQL refused the
    float; there the column holds 9,000,000,000,000,000,000 (past the bound, inside 64 bits)."""
    sqlite = engine.dialect.name == "sqlite"
    issued_debits = "1.8e19" if sqlite else "9000000000000000000"
    values = f"0, {issued_debits}, 0, 0"
    _execute(
        engine,
        "INSERT INTO accounts (id, ledger, code, owner, flags, debits_pending, debits_posted,"
        f" credits_pending, credits_posted) VALUES (1, 'Wh', 'allowance_issued', '', 0, {values}),"
        " (2, 'Wh', 'allowance', 'R1', 1, 0, 0, 0, 9000000000000000000),"
        " (3, 'Wh', 'allowance', 'R2', 1, 0, 0, 0, " + ("9000000000000000000" if sqlite else "0") + ")",
        "INSERT INTO transfers (id, key, ledger, debit_account_id, credit_account_id, amount, code,"
        " flags, rider_id, actor, memo, created_at) VALUES"
        f" (1, 'topup:p1:units', 'Wh', 1, 2, 9000000000000000000, 'top_up', 0, 'R1', 'p', '', {NOW})"
        + (
            f", (2, 'topup:p2:units', 'Wh', 1, 3, 9000000000000000000, 'top_up', 0, 'R2', 'p', '',"
            f" {NOW})"
            if sqlite
            else ""
        ),
    )


def test_ledger_check_reports_amounts_past_their_bounds_instead_of_failing(old_url: str) -> None:
    engine = make_engine(old_url)
    try:
        _the_reported_rows(engine)
        with engine.connect() as connection:
            report = check_ledger(connection)
    finally:
        engine.dispose()
    assert not report.ok
    outside = "9,000,000,000,000,000,000 is outside"
    if engine.dialect.name == "sqlite":
        assert report.problems == [
            "account 1 (allowance_issued operator Wh): debits_posted 1.8e+19 is not an integer",
            f"account 2 (allowance R1 Wh): credits_posted {outside} 0..1,000,000,000,000,000,000",
            f"account 3 (allowance R2 Wh): credits_posted {outside} 0..1,000,000,000,000,000,000",
            f"transfer 1: amount {outside} 1..9,007,199,254,740,991",
            f"transfer 2: amount {outside} 1..9,007,199,254,740,991",
        ]
        # the two transfers add up past 64 bits: summed exactly, not by SQLite (which fails)
        assert report.ledgers["Wh"].debits_posted == 18 * 10**18
    else:
        assert report.problems == [
            f"account 1 (allowance_issued operator Wh): debits_posted {outside} "
            "0..1,000,000,000,000,000,000",
            f"account 2 (allowance R1 Wh): credits_posted {outside} 0..1,000,000,000,000,000,000",
            f"transfer 1: amount {outside} 1..9,007,199,254,740,991",
        ]


def test_ledger_check_command_reports_them_in_its_json(old_url: str) -> None:
    engine = make_engine(old_url)
    try:
        _the_reported_rows(engine)
    finally:
        engine.dispose()
    result = CliRunner().invoke(app, ["ledger", "check", "--database", old_url, "--json"])
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert (
        "transfer 1: amount 9,000,000,000,000,000,000 is outside 1..9,007,199,254,740,991"
        in (report["problems"])
    )


def test_the_upgrade_keeps_a_ledger_within_its_bounds(old_url: str, clock: ManualClock) -> None:
    engine = make_engine(old_url)
    db = Database(engine, clock)
    try:
        # The rows are written by today's services, at the newest revision, and the database
        # is then taken back to the revision before the bounds: the services of today write
        # columns that revision does not have.
        upgrade(engine)
        catalog.add_plan(db, ENERGY)
        catalog.add_rider(db, "R1", ENERGY.id)
        payments.top_up(db, "R1", 10_000, "pay-1")
        payments.adjust(db, "R1", MAX_TRANSFER_AMOUNT, reason="r", actor="t", key="k")
        downgrade(engine, BEFORE_BOUNDS)
        before = _state(db)
        upgrade(engine)
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version != BEFORE_BOUNDS
        assert _state(db) == before
        _assert_clean(db)
        assert _refused(db, f"UPDATE accounts SET credits_posted = {MAX_ACCOUNT_COLUMN_AMOUNT + 1}")
        # and back: the constraints go, the rows stay
        downgrade(engine, BEFORE_BOUNDS)
        assert _state(db) == before
        assert not _refused(db, "UPDATE transfers SET amount = amount + 0")
    finally:
        db.dispose()


def test_the_upgrade_stops_at_amounts_past_their_bounds_and_names_them(old_url: str) -> None:
    engine = make_engine(old_url)
    try:
        _the_reported_rows(engine)
        with pytest.raises(DomainError, match=r"cannot upgrade: .*\(accounts 1, accounts 2"):
            upgrade(engine)
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == BEFORE_BOUNDS
    finally:
        engine.dispose()
