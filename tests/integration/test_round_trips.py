"""Round trips of one swap on PostgreSQL: each costs some 70 us of CPU on the two sides here, as
much as a statement's own work, so the swap path keeps them few (store.prepared_pg: deferred
writes in pipelines, BEGIN with SAVEPOINT, no ping of a pooled connection in use)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import AccountCode, TransferCode, TransferRequest
from swapd.services import swaps
from swapd.services.swaps import BatteryReading
from swapd.store import prepared_pg
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import make_engine
from tests import network as net
from tests.conftest import START, _empty_tables

pytestmark = pytest.mark.postgres

PLAN = Plan("energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)
# A battery-as-key swap's three calls (Authorize, BatteryIn, BatteryOut), each its group's only
# one, made 53 round trips before statements were deferred (counted with pg_stat_statements:
# statements, savepoint commands, COMMITs and a ping a transaction); 37 after; 34 since each
# call's BEGIN and SAVEPOINT go with its first statement; 29 since an Authorize reads the
# rider, the key pack, the offers, the packs held and the station's in one; 24 since a BatteryIn
# reads its pack's holder, the pack, the slot, the possession and the swap in one.
MAX_ROUND_TRIPS_A_SWAP = 24


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each round trip to PostgreSQL carried, from now on in this test."""
    trips: list[str] = []

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            trips.append(name)
            return original(*args, **kwargs)

        return counted

    run_pg = prepared_pg._run_pg

    def run_one(connection: Any, compiled: Any, statement: Any, given: Any) -> Any:
        driver, state = prepared_pg._connection_state(connection)
        idle = driver.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if not state.queue and not idle:  # else it goes in a pipeline, counted there
            trips.append("statement")
        return run_pg(connection, compiled, statement, given)

    monkeypatch.setattr(prepared_pg, "_run_pg", run_one)
    monkeypatch.setattr(prepared_pg, "_pipeline", counting("pipeline", prepared_pg._pipeline))
    commands = prepared_pg.run_commands

    def run_commands(connection: Any, *statements: str) -> None:
        _, state = prepared_pg._connection_state(connection)
        if not state.queue:
            trips.append(" ".join(statements))
        commands(connection, *statements)

    monkeypatch.setattr(prepared_pg, "run_commands", run_commands)
    return trips


def _swap(db: Database, serial_in: str, slot_in: int, request: str) -> None:
    """The rider returns ``serial_in`` into ``slot_in`` and takes the pack offered."""
    key = IdToken(TokenType.BATTERY_SERIAL, serial_in)

    async def calls() -> None:
        offer = await db.call(swaps.authorize, db, "ST1", key)
        assert offer.accepted, offer
        reading = BatteryReading.parse(slot_in, serial_in, 40, 99)
        returned = await db.call(swaps.battery_in, db, "ST1", request, [reading], token=key)
        assert returned.packs[0].outcome == "returned", returned
        slot, serial = offer.offered[0].slot_no, offer.offered[0].serial
        out = BatteryReading.parse(slot, serial, 100, 100)
        taken = await db.call(swaps.battery_out, db, "ST1", request, [out], token=key)
        assert taken.packs[0].rider_id == "R1", taken

    asyncio.run(calls())


def test_a_battery_as_key_swap_makes_few_round_trips(pg_url: str, round_trips: list[str]) -> None:
    _empty_tables(pg_url)
    db = Database(make_engine(pg_url), ManualClock(START), call_threads=1)
    try:
        net.pack_model(db, "M1", nominal_wh=1700)
        net.plans(db, PLAN)
        net.station(db, "ST1", slot_count=4)
        net.rider(db, "R1", plan_id=PLAN.id, top_up_minor=100_000, payment_ref="pay-1")
        net.packs_in_slots(db, "ST1", (1, 2, 3), serial_format="P{slot_no}", model="M1")
        app = IdToken(TokenType.APP, "R1")
        first = swaps.authorize(db, "ST1", app, request_id="1")
        swaps.battery_out(
            db, "ST1", "1", [BatteryReading.parse(first.offered_slots[0], "P1", 100, 100)], token=app
        )
        _swap(db, "P1", 4, "warm")  # every statement of the path prepared on the connection
        held = db.read(lambda tx: [p.serial for p in tx.repo.packs_of_rider("R1")])
        round_trips.clear()
        _swap(db, held[0], first.offered_slots[0], "counted")
    finally:
        db.dispose()
    assert len(round_trips) <= MAX_ROUND_TRIPS_A_SWAP, round_trips


# A transfer on its own (Database.write, as the money use cases and bench.ledger_transfers run
# it) made 6 round trips: BEGIN, the debit account, its lock, the credit account, the transfer,
# the operator's balance with COMMIT. Now BEGIN and both accounts go in one.
MAX_ROUND_TRIPS_A_TRANSFER = 3


def test_a_transfer_makes_few_round_trips(pg_url: str, round_trips: list[str]) -> None:
    _empty_tables(pg_url)
    db = Database(make_engine(pg_url), ManualClock(START), call_threads=1)
    try:
        net.plans(db, PLAN)
        net.rider(db, "R1", plan_id=PLAN.id, top_up_minor=100_000, payment_ref="pay-1")

        def accounts(tx: Tx) -> tuple[int, int]:
            allowance = tx.book.existing("Wh", AccountCode.ALLOWANCE, "R1")
            consumed = tx.book.account("Wh", AccountCode.ALLOWANCE_CONSUMED)
            assert allowance is not None
            return allowance.id, consumed.id

        debit_id, credit_id = db.write(accounts)

        def use(key: str) -> Callable[[Tx], Any]:
            request = TransferRequest(
                key, "Wh", debit_id, credit_id, 100, TransferCode.USAGE, rider_id="R1"
            )
            return lambda tx: tx.book.transfer(request)

        db.write(use("warm"))  # its statements prepared on the connection
        round_trips.clear()
        transfer = db.write(use("counted"))
    finally:
        db.dispose()
    assert transfer.key == "counted"
    assert len(round_trips) <= MAX_ROUND_TRIPS_A_TRANSFER, round_trips
