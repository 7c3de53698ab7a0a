"""Group commit: concurrent service calls of one process share a COMMIT (SQLite: every write of
the process; SQLite and PostgreSQL: the event loop's calls, ``Database.call``), and each one
still commits or writes nothing on its own."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from swapd.domain.errors import Conflict
from swapd.services import catalog
from swapd.store import ledger_book
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import make_engine, upgrade
from tests.conftest import START

THREADS = 16


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'group.db'}"
    engine = make_engine(url)
    upgrade(engine)
    return Database(engine, ManualClock(START))


@pytest.fixture
def call_db(db_url: str) -> Database:
    """A Database on each supported kind with one call thread, so that calls queued behind a
    busy one run as one group on PostgreSQL too."""
    return Database(make_engine(db_url), ManualClock(START), call_threads=1)


def _count(db: Database, table: sa.Table) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    return int(db.read(lambda tx: tx.repo.execute(query).scalar()))


def test_concurrent_writes_are_grouped_and_all_durable(sqlite_db: Database) -> None:
    commits = []
    sa.event.listen(sqlite_db.engine, "commit", lambda _conn: commits.append(1))
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            barrier.wait()
            for j in range(5):
                catalog.add_pack_model(sqlite_db, f"M{i:02d}-{j}", 1000 + i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _count(sqlite_db, t.pack_models) == THREADS * 5
    # Calls that arrived together shared transactions: fewer commits than calls.
    assert len(commits) < THREADS * 5


def test_a_failing_call_rolls_back_alone_inside_a_group(sqlite_db: Database) -> None:
    catalog.add_pack_model(sqlite_db, "TAKEN", 1000)
    hold = threading.Event()
    release = threading.Event()
    results: dict[str, object] = {}

    def slow(tx: Tx) -> None:
        # Holds the commit lock so that the next calls queue up and run as one group.
        hold.set()
        release.wait(5)
        tx.repo.execute(sa.insert(t.pack_models).values(code="FIRST", nominal_wh=1))

    def call(name: str, code: str) -> None:
        try:
            catalog.add_pack_model(sqlite_db, code, 1000)
            results[name] = "ok"
        except Conflict as error:
            results[name] = error

    first = threading.Thread(target=lambda: sqlite_db.write(slow))
    first.start()
    assert hold.wait(5)
    queued = [
        threading.Thread(target=call, args=("good", "GOOD")),
        threading.Thread(target=call, args=("bad", "TAKEN")),  # exists: Conflict
        threading.Thread(target=call, args=("also_good", "ALSO")),
    ]
    for thread in queued:
        thread.start()
    release.set()
    first.join()
    for thread in queued:
        thread.join()
    assert results["good"] == "ok" and results["also_good"] == "ok"
    assert isinstance(results["bad"], Conflict)
    codes = sqlite_db.read(lambda tx: {m.code for m in tx.repo.pack_models()})
    assert codes == {"TAKEN", "FIRST", "GOOD", "ALSO"}


def test_a_write_inside_a_write_is_refused_not_deadlocked(sqlite_db: Database) -> None:
    def nested(tx: Tx) -> None:
        catalog.add_pack_model(sqlite_db, "INNER", 1000)

    with pytest.raises(RuntimeError, match="inside another write"):
        sqlite_db.write(nested)
    assert _count(sqlite_db, t.pack_models) == 0


def test_calls_from_an_event_loop_run_in_groups_and_fail_alone(call_db: Database) -> None:
    """Database.call: calls queued while the call thread is busy run as one group (one COMMIT);
    a failing call gets its own error, the others their results, and every answer comes after
    the COMMIT that made it durable."""
    catalog.add_pack_model(call_db, "TAKEN", 1000)
    commits: list[int] = []
    sa.event.listen(call_db.engine, "commit", lambda _conn: commits.append(1))
    hold = threading.Event()
    release = threading.Event()

    def slow() -> str:
        hold.set()
        release.wait(5)
        return "slow"

    def committed(code: str) -> bool:
        # Read on a connection of its own: it sees only what a COMMIT made durable.
        other = make_engine(str(call_db.engine.url))
        with other.connect() as connection:
            found = connection.execute(
                sa.select(t.pack_models.c.code).where(t.pack_models.c.code == code)
            )
            seen = found.first() is not None
        other.dispose()
        return seen

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(call_db.call(slow))
        await asyncio.to_thread(hold.wait, 5)
        queued = [
            asyncio.ensure_future(call_db.call(catalog.add_pack_model, call_db, code, 1000))
            for code in ("GOOD", "TAKEN", "ALSO")
        ]
        await asyncio.sleep(0.05)  # all three are queued behind the slow call
        before = len(commits)
        release.set()
        outcomes = await asyncio.gather(first, *queued, return_exceptions=True)
        # The slow call's group, then one group for the three queued calls: two COMMITs, not four.
        assert len(commits) - before == 2
        assert committed("GOOD") and committed("ALSO")
        return outcomes

    try:
        outcomes = asyncio.run(scenario())
    finally:
        call_db.dispose()
    assert outcomes[0] == "slow"
    assert outcomes[1].code == "GOOD" and outcomes[3].code == "ALSO"  # type: ignore[union-attr]
    assert isinstance(outcomes[2], Conflict)


@pytest.mark.postgres
def test_calls_on_postgresql_run_in_groups_on_several_threads(pg_url: str) -> None:
    """Several call threads, each with a group of its own: every call answered, each once."""
    db = Database(make_engine(pg_url), ManualClock(START), call_threads=3)

    async def scenario() -> list[object]:
        return await asyncio.gather(
            *(db.call(catalog.add_pack_model, db, f"PG{i}", 1000) for i in range(40)),
            db.call(catalog.add_pack_model, db, "PG0", 1000),
            return_exceptions=True,
        )

    try:
        outcomes = asyncio.run(scenario())
        codes = db.read(lambda tx: {m.code for m in tx.repo.pack_models()})
    finally:
        with db.engine.begin() as connection:
            connection.execute(sa.delete(t.pack_models).where(t.pack_models.c.code.like("PG%")))
        db.dispose()
    assert {f"PG{i}" for i in range(40)} <= codes
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1  # PG0 twice: one of them refused


def test_operator_balances_are_written_once_a_group_from_the_calls_that_did_not_fail(
    call_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call's changes to the operator's shared accounts are added up over its group and
    written once before the COMMIT; a call that fails adds nothing, and the rider accounts
    (whose limits decide) are written by each call at once, each call reading the one before."""
    from swapd.ledger.model import AccountCode, TransferCode, TransferRequest

    def setup(tx: Tx) -> tuple[int, int, int]:
        issued = tx.book.account("Wh", AccountCode.ALLOWANCE_ISSUED)
        consumed = tx.book.account("Wh", AccountCode.ALLOWANCE_CONSUMED)
        allowance = tx.book.account("Wh", AccountCode.ALLOWANCE, "R1")
        tx.book.transfer(
            TransferRequest("fund", "Wh", issued.id, allowance.id, 1_000, TransferCode.TOP_UP)
        )
        return issued.id, consumed.id, allowance.id

    _, consumed_id, allowance_id = call_db.write(setup)

    def use(key: str, amount: int) -> int:
        def work(tx: Tx) -> int:
            tx.book.transfer(
                TransferRequest(key, "Wh", allowance_id, consumed_id, amount, TransferCode.USAGE)
            )
            # The rider's balance is read back within the group, call after call.
            return tx.book.get(allowance_id).credit_balance

        return call_db.write(work)

    def fail_after_using(tx: Tx) -> None:
        tx.book.transfer(
            TransferRequest("lost", "Wh", allowance_id, consumed_id, 500, TransferCode.USAGE)
        )
        raise RuntimeError("the call fails after its transfer")

    updates: list[int] = []  # the account of each balance UPDATE, in order
    add_to_account = ledger_book._add_to_account

    def counted(connection: sa.Connection, account_id: int, delta: object) -> None:
        updates.append(account_id)
        add_to_account(connection, account_id, delta)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger_book, "_add_to_account", counted)
    hold, release = threading.Event(), threading.Event()

    def slow() -> None:
        hold.set()
        release.wait(5)

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(call_db.call(slow))
        await asyncio.to_thread(hold.wait, 5)
        queued = [
            asyncio.ensure_future(call_db.call(use, "u1", 10)),
            asyncio.ensure_future(call_db.call(call_db.write, fail_after_using)),
            asyncio.ensure_future(call_db.call(use, "u2", 20)),
            asyncio.ensure_future(call_db.call(use, "u3", 30)),
        ]
        await asyncio.sleep(0.05)  # all four are queued behind the slow call: one group
        updates.clear()
        release.set()
        return await asyncio.gather(first, *queued, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        call_db.dispose()
    assert outcomes[1:] == [990, outcomes[2], 970, 940]
    assert isinstance(outcomes[2], RuntimeError)

    consumed = call_db.read(lambda tx: tx.book.get(consumed_id).credit_balance)
    allowance = call_db.read(lambda tx: tx.book.get(allowance_id).credit_balance)
    assert (consumed, allowance) == (60, 940)  # not the failed call's 500
    operator_updates = [a for a in updates if a == consumed_id]
    assert len(operator_updates) == 1, updates  # once for the group, not once a call
    # The rider's row by each call at once: the three that succeeded and the one rolled back;
    # on PostgreSQL within the transfer's own statement (store/ledger_pg.py), not apart.
    rider_updates = 0 if call_db.dialect == "postgresql" else 3 + 1
    assert len(updates) - len(operator_updates) == rider_updates
