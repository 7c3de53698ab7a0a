"""Every amount and balance stays an integer inside its bound, on SQLite and PostgreSQL.

The report this answers: a plan selling 10^12 Wh for one minor unit let a top-up of 10,000,000
answer 500 (OverflowError) and two of 9,000,000 leave a float (1.8e19) in an account column on
SQLite, after which ``ledger check`` itself failed with "integer overflow".
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from swapd.domain.errors import DomainError, InvalidInput
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.ledger.check import check_ledger
from swapd.ledger.model import LedgerError
from swapd.services import catalog, payments
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.engine import WRITE, make_engine

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
