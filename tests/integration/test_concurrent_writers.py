"""Concurrent writers on one database (threads, each with its own engine and connections):
no allowance is spent twice, no pack goes to two riders, no station message applies twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import sqlalchemy as sa

from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import AccountCode, LedgerError, TransferCode, TransferRequest
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import make_engine
from swapd.store.ledger_check import check_ledger
from tests.plans import ENERGY

WORKERS = 8
T = TypeVar("T")


@pytest.fixture
def databases(db_url: str, clock: ManualClock) -> Iterator[list[Database]]:
    """One Database (engine, pool) per worker, as separate server processes would have."""
    opened = [Database(make_engine(db_url), clock) for _ in range(WORKERS)]
    yield opened
    for database in opened:
        database.dispose()


def race(databases: list[Database], work: Callable[[int, Database], T]) -> list[T | BaseException]:
    """Run ``work`` on every worker at once (a barrier lines them up) and collect the outcomes."""
    barrier = threading.Barrier(len(databases))
    results: list[T | BaseException] = [RuntimeError("not run")] * len(databases)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index, databases[index])
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(databases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _ledger_ok(db: Database) -> None:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def _open_possessions(db: Database, serial: str) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count())
                .select_from(t.possessions)
                .where(t.possessions.c.pack_serial == serial, t.possessions.c.at_in.is_(None))
            ).scalar_one()
        )


def test_allowance_is_never_spent_twice(db: Database, databases: list[Database]) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    for n in range(WORKERS):
        catalog.add_station(db, f"ST{n}", 2)
        catalog.register_pack(db, f"B-{n}", "G2", soc=100, soh=100, station_id=f"ST{n}", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 510, "pay-1")  # exactly 1,700 Wh: one full pack
    token = IdToken(TokenType.APP, "R1")

    def take(n: int, worker: Database) -> str:
        decision = swaps.authorize(worker, f"ST{n}", token)
        if not decision.accepted:
            return str(decision.reason)
        swaps.battery_out(
            worker, f"ST{n}", f"o{n}", [BatteryReading(1, f"B-{n}", 10_000, 10_000)], token=token
        )
        return "taken"

    outcomes = race(databases, take)
    assert sorted(map(str, outcomes)) == ["no_credit"] * (WORKERS - 1) + ["taken"]
    balance = rider_balance(db, "R1")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (1_700, 1_700, 0)
    assert len(balance.packs_held) == 1
    _ledger_ok(db)


def test_one_pack_never_goes_to_two_riders(db: Database, databases: list[Database]) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    catalog.add_station(db, "ST1", 4)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    for n in range(WORKERS):
        catalog.add_rider(db, f"R{n}", "energy")
        payments.top_up(db, f"R{n}", 10_000, f"pay-{n}")

    def offer(n: int, worker: Database) -> str:
        decision = swaps.authorize(worker, "ST1", IdToken(TokenType.APP, f"R{n}"))
        return "accepted" if decision.accepted else str(decision.reason)

    outcomes = race(databases, offer)
    assert sorted(map(str, outcomes)) == ["accepted"] + ["no_charged_pack"] * (WORKERS - 1)

    def hand_over(n: int, worker: Database) -> str:
        result = swaps.battery_out(
            worker,
            "ST1",
            f"out-{n}",
            [BatteryReading(1, "B-1", 10_000, 10_000)],
            token=IdToken(TokenType.APP, f"R{n}"),
        )
        return result.packs[0].outcome

    outcomes = race(databases, hand_over)
    assert sorted(map(str, outcomes)) == ["handed_over"] + ["pack_two_places"] * (WORKERS - 1)
    assert _open_possessions(db, "B-1") == 1
    holders = [n for n in range(WORKERS) if rider_balance(db, f"R{n}").packs_held == ("B-1",)]
    assert len(holders) == 1
    _ledger_ok(db)


def test_a_repeated_station_message_applies_once(db: Database, databases: list[Database]) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    catalog.add_station(db, "ST1", 4)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    token = IdToken(TokenType.APP, "R1")

    credited = race(databases, lambda n, worker: payments.top_up(worker, "R1", 10_000, "same-payment"))
    assert sorted(getattr(r, "repeated", r) for r in credited) == [False] + [True] * (WORKERS - 1)
    assert rider_balance(db, "R1").posted_units == 33_333

    swaps.authorize(db, "ST1", token)
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=token)
    returned = race(
        databases,
        lambda n, worker: swaps.battery_in(
            worker, "ST1", "in-1", [BatteryReading(2, "B-1", 5_000, 10_000)]
        ),
    )
    assert sorted(getattr(r, "repeated", r) for r in returned) == [False] + [True] * (WORKERS - 1)
    assert {r.packs[0].usage_units for r in returned if not isinstance(r, BaseException)} == {850}
    usage = [tr for tr in transfers_of(db, "R1") if tr.code is TransferCode.USAGE]
    assert [tr.amount for tr in usage] == [850]
    assert rider_balance(db, "R1").posted_units == 33_333 - 850
    _ledger_ok(db)


def test_mixed_load_keeps_the_ledger_and_pack_places_consistent(
    db: Database, databases: list[Database]
) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    for s in range(2):
        catalog.add_station(db, f"ST{s}", 12)
        for slot in range(1, 9):
            catalog.register_pack(
                db, f"B-{s}-{slot}", "G2", soc=100, soh=100, station_id=f"ST{s}", slot_no=slot
            )
    for n in range(6):
        catalog.add_rider(db, f"R{n}", "energy")

    def work(worker_no: int, worker: Database) -> int:
        done = 0
        for round_no in range(6):
            rider = f"R{(worker_no + round_no) % 6}"  # riders are shared between workers
            station = f"ST{round_no % 2}"
            payments.top_up(worker, rider, 600, f"pay-{worker_no}-{round_no}")
            token = IdToken(TokenType.APP, rider)
            held = rider_balance(worker, rider).packs_held
            if held:
                free = next(s for s in range(9, 13) if s not in _occupied(worker, station))
                swaps.battery_in(
                    worker,
                    station,
                    f"in-{worker_no}-{round_no}",
                    [BatteryReading(free, held[0], 3_000, 10_000)],
                )
            decision = swaps.authorize(worker, station, token)
            if decision.accepted:
                offered = decision.offered[0]
                swaps.battery_out(
                    worker,
                    station,
                    f"out-{worker_no}-{round_no}",
                    [BatteryReading(offered.slot_no, offered.serial, 10_000, 10_000)],
                    token=token,
                )
                done += 1
        return done

    outcomes = race(databases[:4], work)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    # Two workers may pick the same rider's pack to return at once; the loser is told the slot
    # is taken or the pack is elsewhere, which is a refusal, not corruption.
    assert all(isinstance(e, Exception) and "Traceback" not in str(e) for e in errors)
    _ledger_ok(db)
    with db.engine.connect() as connection:
        for pack in connection.execute(sa.select(t.packs)).all():
            slots = connection.execute(
                sa.select(sa.func.count())
                .select_from(t.slots)
                .where(t.slots.c.pack_serial == pack.serial)
            ).scalar_one()
            possessions = _open_possessions(db, pack.serial)
            if pack.status == "in_slot":
                assert (slots, possessions) == (1, 0), pack
            else:
                assert (pack.status, slots, possessions) == ("with_rider", 0, 1), pack


def _occupied(db: Database, station: str) -> set[int]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(t.slots.c.slot_no).where(
                t.slots.c.station_id == station, t.slots.c.pack_serial.is_not(None)
            )
        )
        return {r.slot_no for r in rows}


def test_transfers_between_accounts_by_id_never_overdraw(
    db: Database, databases: list[Database]
) -> None:
    """The ledger's own entry (``Book.transfer`` with account ids, as the money use cases call
    it): the rider's account is locked in the statement that reads the two accounts, so of
    transfers racing for the last of a balance only as many pass as it pays for."""
    catalog.add_plan(db, ENERGY)
    catalog.add_rider(db, "R1", "energy")

    def accounts(tx: Tx) -> tuple[int, int]:
        allowance = tx.book.account("Wh", AccountCode.ALLOWANCE, "R1")
        issued = tx.book.account("Wh", AccountCode.ALLOWANCE_ISSUED)
        consumed = tx.book.account("Wh", AccountCode.ALLOWANCE_CONSUMED)
        tx.book.transfer(_request("fund", issued.id, allowance.id, 3 * 100, TransferCode.TOP_UP))
        return allowance.id, consumed.id

    allowance_id, consumed_id = db.write(accounts)

    def spend(n: int, worker: Database) -> str:
        request = _request(f"use-{n}", allowance_id, consumed_id, 100, TransferCode.USAGE)
        worker.write(lambda tx: tx.book.transfer(request))
        return "spent"

    outcomes = race(databases, spend)
    assert sorted(map(str, outcomes)).count("spent") == 3, outcomes
    refused = [o for o in outcomes if isinstance(o, LedgerError)]
    assert len(refused) == WORKERS - 3 and {o.code for o in refused} == {"exceeds_credits"}
    _ledger_ok(db)


def _request(
    key: str, debit_id: int, credit_id: int, amount: int, code: TransferCode
) -> TransferRequest:
    return TransferRequest(
        key=key,
        ledger="Wh",
        debit_account_id=debit_id,
        credit_account_id=credit_id,
        amount=amount,
        code=code,
        rider_id="R1",
    )
