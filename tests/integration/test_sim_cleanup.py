"""Removing a simulation's rows (``swapd.sim.cleanup``) on each database: a run set up next to a
real rider goes without a trace in the ledger, and a run whose transfers are entangled with
others' is refused whole."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from swapd.ledger.model import TransferFlags
from swapd.readmodels import stations
from swapd.services import catalog, payments
from swapd.sim import cleanup, network
from swapd.sim.config import SimConfig
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.ledger_check import check_ledger
from tests.plans import ENERGY

CONFIG = SimConfig(stations=2, slots=4, riders=5)


@pytest.fixture
def real_rider(db: Database) -> None:
    catalog.add_plan(db, ENERGY)
    catalog.add_rider(db, "R1", ENERGY.id)
    payments.top_up(db, "R1", 3_000, "real-payment-1", actor="test")


def _rows(db: Database, table: sa.Table) -> list[tuple[Any, ...]]:
    return db.read(lambda tx: sorted(tuple(r) for r in tx.repo.execute(sa.select(table))))


def _operator_balances(db: Database) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    a = t.accounts.c
    query = sa.select(
        a.ledger, a.code, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted
    ).where(a.owner == "")
    return db.read(lambda tx: {(r[0], r[1]): tuple(r[2:]) for r in tx.repo.execute(query)})


def _ledger_problems(db: Database) -> list[str]:
    with db.engine.connect() as connection:
        return check_ledger(connection).problems


def test_the_simulators_riders_are_not_counted_as_real(db: Database, real_rider: None) -> None:
    network.build(db, CONFIG, random.Random(1))
    assert cleanup.real_riders(db) == 1


def test_a_run_is_removed_and_the_operator_books_are_as_before(db: Database, real_rider: None) -> None:
    # local_list_changes: marks that tell servers a list may be stale, not rows a run leaves.
    left_alone = ("accounts", "audit_log", "local_list_changes")
    tables = [table for table in t.metadata.sorted_tables if table.name not in left_alone]
    before = {table.name: _rows(db, table) for table in tables}
    balances = _operator_balances(db)
    run = network.build(db, CONFIG, random.Random(1))
    # The setup topped riders up and handed packs out: money and holds on the operator's side.
    assert _operator_balances(db) != balances
    assert any(p.listed is False for p in db.read(lambda tx: tx.repo.plans()))

    removed = cleanup.remove_run(db, run.prefix)

    assert (removed.stations, removed.riders, removed.plans, removed.pack_models) == (2, 5, 2, 1)
    assert removed.transfers > 0 and removed.accounts > 0
    assert {table.name: _rows(db, table) for table in tables} == before
    after = _operator_balances(db)
    assert {k: v for k, v in after.items() if k in balances} == balances
    assert all(v == (0, 0, 0, 0) for k, v in after.items() if k not in balances)
    assert _ledger_problems(db) == []
    entries = db.read(
        lambda tx: tx.repo.execute(sa.select(t.audit_log.c.action, t.audit_log.c.target)).all()
    )
    assert [tuple(e) for e in entries] == [("sim.remove", run.prefix)]


def test_a_run_whose_transfer_is_resolved_from_outside_is_not_removed(
    db: Database, real_rider: None
) -> None:
    run = network.build(db, CONFIG, random.Random(1))
    a, x = t.accounts.c, t.transfers.c

    def entangle(tx: Any) -> None:
        # A post of one of the run's holds, between two operator accounts: not the run's.
        hold = tx.repo.execute(
            sa.select(x.id, x.ledger, x.amount)
            .where(
                x.flags == int(TransferFlags.PENDING),
                x.rider_id.startswith(run.prefix),
                x.id.not_in(sa.select(x.pending_id).where(x.pending_id.is_not(None))),
            )
            .limit(1)
        ).one()
        operator = tx.repo.execute(
            sa.select(a.id).where(a.owner == "", a.ledger == hold.ledger).order_by(a.id).limit(2)
        ).scalars()
        debit, credit = list(operator)
        at = datetime.now(UTC)
        keyed = sa.insert(t.transfer_keys).values(key="outside-post", resolves_id=hold.id, created_at=at)
        tx.repo.execute(
            sa.insert(t.transfers).values(
                id=tx.repo.execute(keyed.returning(t.transfer_keys.c.id)).scalar_one(),
                key="outside-post",
                ledger=hold.ledger,
                debit_account_id=debit,
                credit_account_id=credit,
                amount=hold.amount,
                code="usage",
                flags=int(TransferFlags.POST_PENDING),
                pending_id=hold.id,
                rider_id=None,
                actor="test",
                memo="",
                created_at=at,
            )
        )

    db.write(entangle)
    riders = _rows(db, t.riders)
    with pytest.raises(cleanup.CleanupError, match="link its transfers with others"):
        cleanup.remove_run(db, run.prefix)
    assert _rows(db, t.riders) == riders  # nothing removed

    retired = cleanup.retire_run(db, run.prefix)
    assert retired == cleanup.Retired(stations_disabled=2, riders_blocked=5)
    assert [s.station.id for s in stations.station_lines(db) if s.station.enabled] == []
    assert {r.id: r.status.value for r in db.read(lambda tx: tx.repo.riders())}["R1"] == "active"


def test_only_a_simulation_prefix_can_be_removed(db: Database) -> None:
    for prefix in ("R1", "SIM-", ""):
        with pytest.raises(ValueError, match="not a simulation prefix"):
            cleanup.remove_run(db, prefix)
