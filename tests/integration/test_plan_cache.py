"""Plans read by committed transactions are kept by the Database (plans are written once and
never changed), so the swap path reads its rider's plan once; a plan only a failed transaction
saw is never kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
import sqlalchemy as sa

from swapd.services import catalog
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from tests.plans import ENERGY


class Boom(Exception):
    pass


def _plan(db: Database, plan_id: str) -> object:
    return db.read(lambda tx: tx.repo.plan(plan_id))


def _delete_plan_row(db: Database, plan_id: str) -> None:
    # Only a test removes a plan; it shows whether the next read went to the table.
    with db.engine.begin() as connection:
        connection.execute(sa.delete(t.plans).where(t.plans.c.id == plan_id))


def test_a_plan_read_by_a_committed_transaction_is_not_read_again(db: Database) -> None:
    catalog.add_plan(db, ENERGY)
    assert _plan(db, ENERGY.id) == ENERGY
    _delete_plan_row(db, ENERGY.id)
    assert _plan(db, ENERGY.id) == ENERGY  # from the Database, not the table
    # A new Database on the same store has kept nothing.
    fresh = Database(db.engine, db.clock)
    assert _plan(fresh, ENERGY.id) is None


def test_an_unknown_plan_is_not_kept_as_missing(db: Database) -> None:
    assert _plan(db, ENERGY.id) is None
    catalog.add_plan(db, ENERGY)
    assert _plan(db, ENERGY.id) == ENERGY


def _insert_read_and_fail(db: Database) -> Callable[[Tx], None]:
    """A transaction that adds the plan, reads it, then fails."""

    def work(tx: Tx) -> None:
        catalog.add_plan(tx, ENERGY)
        assert tx.repo.plan(ENERGY.id) == ENERGY
        raise Boom()

    return work


def test_a_plan_read_by_a_transaction_that_rolled_back_is_not_kept(db: Database) -> None:
    with pytest.raises(Boom):
        db.write(_insert_read_and_fail(db))
    assert _plan(db, ENERGY.id) is None
    # The same id written again, with other terms, is read as written.
    dearer = replace(ENERGY, price_minor=ENERGY.price_minor * 2)
    catalog.add_plan(db, dearer)
    assert _plan(db, ENERGY.id) == dearer


def test_in_a_call_group_only_calls_that_did_not_fail_keep_what_they_read(db: Database) -> None:
    other = replace(ENERGY, id="other")
    catalog.add_plan(db, other)

    def read_other(tx: Tx) -> object:
        return tx.repo.plan(other.id)

    async def group() -> list[object]:
        # Sent together, the calls share one transaction on SQLite (each in its savepoint).
        return await asyncio.gather(
            db.call(db.write, _insert_read_and_fail(db)),
            db.call(db.write, read_other),
            return_exceptions=True,
        )

    failed, read = asyncio.run(group())
    assert isinstance(failed, Boom)
    assert read == other
    assert _plan(db, ENERGY.id) is None
    _delete_plan_row(db, other.id)
    assert _plan(db, other.id) == other
