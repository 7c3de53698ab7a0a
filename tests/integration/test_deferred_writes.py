"""Deferred writes (store.prepared.Prepared.defer): on PostgreSQL a write whose result nobody
reads goes with the transaction's next round trip, in order, and is never lost, committed
unsent, or sent after its rollback; its error (or failed check) is raised at that round trip.
Elsewhere it runs at once. And a group of calls (store.database) keeps its promises with it:
a call whose deferred write fails fails alone, and a lone call's writes go with the COMMIT."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from swapd.domain.errors import Conflict, Retry
from swapd.store import prepared as prepared_module
from swapd.store import prepared_pg
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import make_engine
from swapd.store.prepared import Prepared, PreparedResult
from tests.conftest import START

_INSERT_MODEL = Prepared(sa.insert(t.pack_models))
_MODEL = Prepared(
    sa.select(t.pack_models.c.code, t.pack_models.c.nominal_wh).where(
        t.pack_models.c.code == sa.bindparam("code")
    )
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pipelines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of statements of each pipeline sent from now on (PostgreSQL)."""
    sizes: list[int] = []
    pipeline = prepared_pg._pipeline

    def counted(connection: Any, driver: Any, state: Any, steps: Any, commands: Any) -> Any:
        sizes.append(len(steps) + len(commands))
        return pipeline(connection, driver, state, steps, commands)

    monkeypatch.setattr(prepared_pg, "_pipeline", counted)
    return sizes


def _committed_codes(url: str) -> set[str]:
    other = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with other.connect() as connection:
            return set(connection.execute(sa.select(t.pack_models.c.code)).scalars())
    finally:
        other.dispose()


def _model(code: str, nominal_wh: int = 1000) -> dict[str, Any]:
    return {"code": code, "nominal_wh": nominal_wh}


def test_a_deferred_write_is_seen_by_the_next_statement_of_its_transaction(
    engine: sa.Engine, pipelines: list[int]
) -> None:
    with engine.connect() as connection, connection.begin():
        _INSERT_MODEL.defer(connection, _model("A"))
        _INSERT_MODEL.defer(connection, _model("B"))
        row = _MODEL.run(connection, {"code": "B"}).one()
    assert row.nominal_wh == 1000
    if engine.dialect.name == "postgresql":
        assert pipelines == [3]  # both writes and the read: one round trip


def test_writes_still_deferred_at_the_commit_are_committed_with_it(
    engine: sa.Engine, db_url: str, pipelines: list[int]
) -> None:
    with engine.connect() as connection, connection.begin():
        _MODEL.run(connection, {"code": "none"})
        _INSERT_MODEL.defer(connection, _model("C"))
        prepared_module.commit(connection)
    assert _committed_codes(db_url) == {"C"}
    if engine.dialect.name == "postgresql":
        assert pipelines == [1, 2]  # BEGIN with the read; the write and the COMMIT


def test_statements_run_together_see_what_waits_and_answer_in_order(
    engine: sa.Engine, pipelines: list[int]
) -> None:
    with engine.connect() as connection, connection.begin():
        _INSERT_MODEL.defer(connection, _model("T", nominal_wh=1200))
        results = prepared_module.run_together(
            connection,
            [(_MODEL, {"code": "T"}), (_MODEL, {"code": "none"}), (_MODEL, {"code": "T"})],
        )
    assert [[tuple(row) for row in result.all()] for result in results] == [
        [("T", 1200)],
        [],
        [("T", 1200)],
    ]
    if engine.dialect.name == "postgresql":
        assert pipelines == [4]  # the write and the three reads: one round trip


def test_a_commit_through_sqlalchemy_sends_what_waits_first(engine: sa.Engine, db_url: str) -> None:
    with engine.connect() as connection, connection.begin():
        _INSERT_MODEL.defer(connection, _model("D"))
    assert _committed_codes(db_url) == {"D"}


def test_a_statement_through_sqlalchemy_does_not_overtake_a_deferred_write(
    engine: sa.Engine,
) -> None:
    with engine.connect() as connection, connection.begin():
        _INSERT_MODEL.defer(connection, _model("E"))
        codes = set(connection.execute(sa.select(t.pack_models.c.code)).scalars())
    assert codes == {"E"}


def test_a_rolled_back_write_is_never_sent_even_on_the_connections_next_transaction(
    db_url: str, pipelines: list[int]
) -> None:
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as connection:
            with connection.begin() as transaction:
                _MODEL.run(connection, {"code": "none"})
                _INSERT_MODEL.defer(connection, _model("LOST"))
                transaction.rollback()
            with connection.begin():
                _MODEL.run(connection, {"code": "none"})
        with engine.connect() as connection, connection.begin():  # the same pooled connection
            _INSERT_MODEL.defer(connection, _model("KEPT"))
    finally:
        engine.dispose()
    assert _committed_codes(db_url) == {"KEPT"}


def test_a_write_left_deferred_when_the_connection_goes_back_to_the_pool_is_dropped(
    db_url: str,
) -> None:
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as connection:
            connection.begin()
            _MODEL.run(connection, {"code": "none"})
            _INSERT_MODEL.defer(connection, _model("ABANDONED"))
            # closed without commit: the pool rolls the transaction back
        with engine.connect() as connection, connection.begin():
            _MODEL.run(connection, {"code": "none"})
    finally:
        engine.dispose()
    assert _committed_codes(db_url) == set()


def test_a_deferred_writes_error_is_raised_at_the_next_round_trip_naming_its_statement(
    engine: sa.Engine,
) -> None:
    with engine.connect() as connection, connection.begin():
        _INSERT_MODEL.run(connection, _model("DUP"))
    with engine.connect() as connection:
        with connection.begin():
            with pytest.raises(sa.exc.IntegrityError) as raised:
                _INSERT_MODEL.defer(connection, _model("DUP"))  # SQLite: raised here, at once
                _MODEL.run(connection, {"code": "DUP"})  # PostgreSQL: raised here
            connection.rollback()
        assert "INSERT INTO pack_models" in str(raised.value.statement)
        with connection.begin():  # the connection is still good
            assert _MODEL.run(connection, {"code": "DUP"}).one().nominal_wh == 1000


def test_a_failed_check_is_raised_at_the_next_round_trip_after_every_result_is_in(
    engine: sa.Engine,
) -> None:
    seen: list[int] = []

    def exactly_one(result: PreparedResult) -> None:
        seen.append(result.rowcount)
        if result.rowcount != 1:
            raise Retry("no row")

    update = Prepared(
        sa.update(t.pack_models)
        .where(t.pack_models.c.code == sa.bindparam("p_code"))
        .values(nominal_wh=sa.bindparam("v_wh"))
    )
    with engine.connect() as connection, connection.begin():
        _INSERT_MODEL.run(connection, _model("F"))
        with pytest.raises(Retry):
            update.defer(connection, {"p_code": "F", "v_wh": 2000}, exactly_one)
            update.defer(connection, {"p_code": "missing", "v_wh": 1}, exactly_one)
            prepared_module.flush(connection)
        # Every statement of the round trip ran: the connection is in step with the server.
        assert _MODEL.run(connection, {"code": "F"}).one().nominal_wh == 2000
    assert seen == [1, 0]


def test_a_commit_sent_with_a_refused_check_keeps_nothing(engine: sa.Engine, db_url: str) -> None:
    def refused(result: PreparedResult) -> None:
        raise Retry("refused")

    with pytest.raises(Retry), engine.connect() as connection, connection.begin():
        _MODEL.run(connection, {"code": "none"})
        _INSERT_MODEL.defer(connection, _model("CHECKED"), refused)
        _INSERT_MODEL.defer(connection, _model("AFTER"))
        prepared_module.commit(connection)
    assert _committed_codes(db_url) == set()


@pytest.fixture
def call_db(db_url: str) -> Iterator[Database]:
    db = Database(make_engine(db_url), ManualClock(START), call_threads=1)
    yield db
    db.dispose()


def _alone(db: Database, function: Any, *args: Any) -> object:
    """``function(*args)`` as the only call of its group (``Database.call``): its result, or
    the exception it ended with."""

    async def one_call() -> list[object]:
        return await asyncio.gather(db.call(function, *args), return_exceptions=True)

    return asyncio.run(one_call())[0]


def _insert_deferred(code: str) -> Any:
    def work(tx: Tx) -> str:
        _INSERT_MODEL.defer(tx.repo.conn, _model(code))
        return code

    return work


def test_a_lone_calls_failing_deferred_write_fails_that_call_and_commits_nothing(
    call_db: Database, db_url: str
) -> None:
    call_db.write(_insert_deferred("TAKEN"))
    outcome = _alone(call_db, call_db.write, _insert_deferred("TAKEN"))
    assert isinstance(outcome, sa.exc.IntegrityError)
    assert _committed_codes(db_url) == {"TAKEN"}


def test_a_lone_call_whose_first_writes_deferred_statement_fails_commits_nothing(
    call_db: Database, db_url: str
) -> None:
    """The first write has answered its caller when its deferred statement fails (sent with the
    second write): only the whole transaction can undo it, so nothing of the call is kept."""
    call_db.write(_insert_deferred("TAKEN"))

    def two_writes() -> str:
        call_db.write(_insert_deferred("TAKEN"))
        try:
            return call_db.write(_insert_deferred("SECOND"))
        except sa.exc.IntegrityError:
            return "swallowed"  # a caller that catches it must not commit the rest

    outcome = _alone(call_db, two_writes)
    # PostgreSQL: the group failed; SQLite: the first write failed at once.
    assert isinstance(outcome, sa.exc.IntegrityError)
    assert _committed_codes(db_url) == {"TAKEN"}


def _in_one_group(db: Database, *works: Any) -> list[object]:
    """Each of ``works`` as a ``write`` of its own call, all of them in one group (queued behind
    a call that holds the call thread): each call's result, or the exception it ended with."""
    hold, release = threading.Event(), threading.Event()

    def slow() -> str:
        hold.set()
        release.wait(5)
        return "slow"

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(db.call(slow))
        await asyncio.to_thread(hold.wait, 5)
        queued = [asyncio.ensure_future(db.call(db.write, work)) for work in works]
        await asyncio.sleep(0.05)  # all of them are queued behind the slow call: one group
        release.set()
        return await asyncio.gather(first, *queued, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes[0] == "slow"
    return outcomes[1:]


def test_in_a_group_a_call_whose_deferred_write_fails_fails_alone(
    call_db: Database, db_url: str
) -> None:
    call_db.write(_insert_deferred("TAKEN"))
    codes = ("GOOD", "TAKEN", "ALSO")
    outcomes = _in_one_group(call_db, *(_insert_deferred(code) for code in codes))
    assert outcomes[0] == "GOOD" and outcomes[2] == "ALSO"
    assert isinstance(outcomes[1], sa.exc.IntegrityError)
    assert _committed_codes(db_url) == {"TAKEN", "GOOD", "ALSO"}


def test_in_a_group_calls_failing_before_or_after_their_savepoint_left_fail_alone(
    call_db: Database, db_url: str, pipelines: list[int]
) -> None:
    """On PostgreSQL a call's SAVEPOINT (and the RELEASE of the call before) waits to go with
    its first statement. A call that fails before sending anything never sends it, and the
    calls around it are kept; one that fails after it is rolled back to it."""
    attempts: list[int] = []

    def refused_at_once(tx: Tx) -> str:
        raise Conflict("refused before any statement")

    def retried_once(tx: Tx) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise Retry("again, before any statement")
        return str(_insert_deferred("RETRIED")(tx))

    def refused_after_a_read(tx: Tx) -> str:
        _INSERT_MODEL.defer(tx.repo.conn, _model("HALF"))
        _MODEL.run(tx.repo.conn, {"code": "HALF"})  # the write, and the savepoint, sent
        raise Conflict("refused after its statements")

    works = [
        _insert_deferred("GOOD"),
        refused_at_once,
        retried_once,
        refused_after_a_read,
        _insert_deferred("ALSO"),
    ]
    outcomes = _in_one_group(call_db, *works)
    assert outcomes[0] == "GOOD" and outcomes[2] == "RETRIED" and outcomes[4] == "ALSO"
    assert isinstance(outcomes[1], Conflict) and isinstance(outcomes[3], Conflict)
    assert len(attempts) == 2
    assert _committed_codes(db_url) == {"GOOD", "RETRIED", "ALSO"}
    if call_db.dialect == "postgresql":
        # GOOD, RETRIED, the HALF write with its read, ALSO (each call's writes flushed before
        # the next call's), the operator balances with the COMMIT.
        assert len(pipelines) == 5, pipelines
