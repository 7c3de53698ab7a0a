"""Prepared statements (store.prepared) give what Connection.execute gives: the same rows, values
of the same types, the same errors, and defaults filled in, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import OPERATOR, AccountCode
from swapd.services import swaps
from swapd.services.swaps import BatteryReading
from swapd.store import ledger_book as book_module
from swapd.store import repository as repository_module
from swapd.store import schema as t
from swapd.store import swap_rows
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import make_engine
from swapd.store.ledger_book import Book
from swapd.store.prepared import Prepared
from tests import network as net
from tests.conftest import START

PLAN = Plan("energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)


def _prepared_selects() -> dict[str, Prepared]:
    found = {}
    for module in (repository_module, book_module, swap_rows):
        for name, value in vars(module).items():
            if isinstance(value, Prepared) and isinstance(value.statement, sa.Select):
                found[f"{module.__name__}.{name}"] = value
    return found


@pytest.fixture
def swapped(db: Database) -> dict[str, object]:
    """A station, a rider who has taken one pack and returned it for another: rows in every
    table the swap path reads."""
    net.pack_model(db, "M1", nominal_wh=1700)
    net.plans(db, PLAN)
    net.station(db, "ST1", slot_count=3)
    net.rider(db, "R1", plan_id=PLAN.id, top_up_minor=100_000, payment_ref="pay-1")
    net.packs_in_slots(db, "ST1", (1, 2), serial_format="P{slot_no}", model="M1")
    app = IdToken(TokenType.APP, "R1")
    first = swaps.authorize(db, "ST1", app, request_id="1")
    assert first.accepted
    swaps.battery_out(
        db, "ST1", "1", [BatteryReading.parse(first.offered_slots[0], "P1", 100, 100)], token=app
    )
    key = IdToken(TokenType.BATTERY_SERIAL, "P1")
    second = swaps.authorize(db, "ST1", key)
    assert second.accepted
    swaps.battery_in(db, "ST1", "2", [BatteryReading.parse(1, "P1", 61.5, 99)], token=key)

    def names(tx: object) -> dict[str, object]:
        assert hasattr(tx, "repo") and hasattr(tx, "book")
        swap_id = tx.repo.execute(sa.select(sa.func.max(t.swaps.c.id))).scalar_one()
        transfer_id = tx.repo.execute(sa.select(sa.func.min(t.transfers.c.id))).scalar_one()
        account = tx.repo.execute(sa.select(t.accounts).where(t.accounts.c.owner == "R1")).first()
        shared = tx.repo.execute(sa.select(t.accounts).where(t.accounts.c.owner == OPERATOR)).first()
        return {
            "serial": "P1",
            "station_id": "ST1",
            "rider_id": "R1",
            "swap_id": swap_id,
            "plan_id": PLAN.id,
            "slot_no": 1,
            "token_type": "BatterySerial",
            "value": "P1",
            "request_id": "2",
            "event_type": "BatteryIn",
            "transfer_id": transfer_id,
            "resolved_id": transfer_id,
            "transfer_key": "pay-1",
            "account_id": account.id,
            # A transfer's two accounts by id: the rider's (locked on PostgreSQL) and one of the
            # operator's (read without a lock).
            "id_0": account.id,
            "id_1": shared.id,
            "ledger_name": account.ledger,
            "account_code": account.code,
            "account_owner": "R1",
            "now": tx.now,
            # The accounts-at-once statement: three that exist (one the operator's), one that
            # does not, two repeated.
            "ledger_0": account.ledger,
            "code_0": account.code,
            "owner_0": "R1",
            "ledger_1": "KRW",
            "code_1": "prepaid",
            "owner_1": "R1",
            "ledger_2": "nope",
            "code_2": "allowance",
            "owner_2": "R1",
            "ledger_3": "KRW",
            "code_3": "revenue",
            "owner_3": OPERATOR,
            **{
                f"{name}_{i}": value
                for i in (4, 5)
                for name, value in (("ledger", account.ledger), ("code", account.code), ("owner", "R1"))
            },
        }

    return db.read(names)


def test_every_prepared_select_returns_what_sqlalchemy_returns(
    db: Database, swapped: dict[str, object]
) -> None:
    selects = _prepared_selects()
    assert len(selects) >= 15  # the swap path's reads are all covered, not a sample
    nonempty = 0
    with db.engine.connect() as connection, connection.begin():
        for name, prepared in selects.items():
            wanted = [b.key for b in prepared.statement.compile().binds.values() if b.required]
            parameters = {key: swapped[key] for key in wanted}
            expected = connection.execute(prepared.statement, parameters).all()
            got = prepared.run(connection, parameters).all()
            assert [tuple(row) for row in got] == [tuple(row) for row in expected], name
            for mine, theirs in zip(got, expected, strict=True):
                assert [type(v) for v in mine] == [type(v) for v in theirs], name
                assert mine._mapping == dict(theirs._mapping), name
                for key in theirs._fields:
                    assert getattr(mine, key) == getattr(theirs, key), (name, key)
            nonempty += bool(got)
    assert nonempty >= 12  # the comparison saw real rows, not empty results
    # Timestamps come back aware, in UTC, as the UTCDateTime type makes them.
    with db.engine.connect() as connection:
        swap = swap_rows.SWAP.run(connection, {"swap_id": swapped["swap_id"]}).one()
        assert isinstance(swap.created_at, datetime) and swap.created_at.utcoffset() is not None


def test_insert_and_update_through_prepared_statements(db: Database) -> None:
    insert = Prepared(sa.insert(t.pack_models))
    update = Prepared(
        sa.update(t.pack_models)
        .where(t.pack_models.c.code == sa.bindparam("p_code"))
        .values(nominal_wh=sa.bindparam("v_wh"))
    )
    with db.engine.connect() as connection, connection.begin():
        insert.run(connection, {"code": "A", "nominal_wh": 1000})
        insert.run(connection, {"code": "B", "nominal_wh": 2000})
        assert update.run(connection, {"p_code": "A", "v_wh": 1500}).rowcount == 1
        assert update.run(connection, {"p_code": "nope", "v_wh": 1}).rowcount == 0
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(t.pack_models).order_by(t.pack_models.c.code)).all()
    assert [tuple(r) for r in rows] == [("A", 1500), ("B", 2000)]


def test_python_side_defaults_are_still_filled_in(db: Database) -> None:
    """An INSERT leaving out a column with a Python default goes through SQLAlchemy, which fills
    it; the prepared path must not write NULL or fail there."""
    insert = Prepared(sa.insert(t.stations))
    with db.engine.connect() as connection, connection.begin():
        insert.run(connection, {"id": "S9", "slot_count": 4, "charged_soc_bp": 9000, "min_soh_bp": 7000})
    with db.engine.connect() as connection:
        row = connection.execute(sa.select(t.stations).where(t.stations.c.id == "S9")).one()
    assert row.enabled is True
    assert row.created_at is not None and row.created_at.utcoffset() is not None


def test_driver_errors_are_sqlalchemy_errors_and_roll_back(db: Database) -> None:
    insert = Prepared(sa.insert(t.pack_models))
    with db.engine.connect() as connection, connection.begin():
        insert.run(connection, {"code": "A", "nominal_wh": 1000})
    with pytest.raises(sa.exc.IntegrityError), db.engine.connect() as connection, connection.begin():
        insert.run(connection, {"code": "C", "nominal_wh": 1})
        insert.run(connection, {"code": "A", "nominal_wh": 2})
    with db.engine.connect() as connection:
        codes = connection.execute(sa.select(t.pack_models.c.code)).scalars().all()
    assert codes == ["A"]  # C went with the failed transaction


def test_a_naive_timestamp_is_refused_before_the_database(
    db: Database, swapped: dict[str, object]
) -> None:
    with (
        pytest.raises(sa.exc.StatementError, match="naive datetime"),
        db.engine.connect() as connection,
        connection.begin(),
    ):
        repository_module._RESERVE_PACK.run(
            connection, {"p_serial": "P2", "swap_id": 1, "now": datetime(2026, 1, 1)}
        )


@pytest.mark.postgres
def test_a_broken_postgresql_connection_is_invalidated(pg_url: str) -> None:
    """A backend that dies under a prepared statement raises a DBAPIError marked as a lost
    connection, and the pool does not hand that connection out again."""
    engine = sa.create_engine(pg_url, pool_size=1, max_overflow=0)
    killer = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with killer.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # The pool does no pre-ping here: the same dead connection comes back to us.
        with pytest.raises(sa.exc.DBAPIError) as raised, engine.connect() as connection:
            repository_module._PLAN.run(connection, {"plan_id": "x"})
        assert raised.value.connection_invalidated
        with engine.connect() as connection:
            assert repository_module._PLAN.run(connection, {"plan_id": "x"}).first() is None
    finally:
        engine.dispose()
        killer.dispose()


def test_book_load_reads_what_account_reads(db: Database, swapped: dict[str, object]) -> None:
    """Accounts read in one statement by Book.load are the ones Book.account reads one by one
    (balances included); one that does not exist is left for account() to create."""
    names = [
        ("Wh", AccountCode.ALLOWANCE, "R1"),
        ("Wh", AccountCode.OVERDRAWN, "R1"),
        ("KRW", AccountCode.PREPAID, "R1"),
        ("KRW", AccountCode.RECEIVABLE, "R1"),
        ("Wh", AccountCode.ALLOWANCE_CONSUMED, OPERATOR),
        ("KRW", AccountCode.REVENUE, OPERATOR),
    ]
    with db.engine.connect() as connection, connection.begin():
        plain = Book(connection, swapped["now"])  # type: ignore[arg-type]
        expected = [plain.account(*name) for name in names]
        loaded = Book(connection, swapped["now"])  # type: ignore[arg-type]
        run = loaded._run
        statements: list[Prepared] = []
        loaded._run = lambda statement, parameters: (
            statements.append(statement),
            run(statement, parameters),
        )[1]  # type: ignore[method-assign]
        loaded.load(names)
        assert [loaded.account(*name) for name in names] == expected
        # One statement, on PostgreSQL too: the rider's accounts locked, the operator's not.
        assert len(statements) == 1
        if db.engine.dialect.name == "postgresql":
            assert _lockable_elsewhere(db, expected[5].id)  # the operator's revenue: not locked
            assert not _lockable_elsewhere(db, expected[0].id)  # the rider's allowance: locked
        assert expected[0].credits_posted > 0  # a real balance was compared
        assert expected[5].credits_posted > 0  # and the operator's revenue
        with pytest.raises(ValueError):
            loaded.load(names + names[:1])


def _lockable_elsewhere(db: Database, account_id: int) -> bool:
    """Whether another connection can lock the account now (FOR UPDATE NOWAIT)."""
    query = sa.select(t.accounts.c.id).where(t.accounts.c.id == account_id).with_for_update(nowait=True)
    with db.engine.connect() as other, other.begin():
        try:
            other.execute(query)
        except sa.exc.OperationalError:
            return False
    return True


def _statements_on_this_connection(connection: sa.Connection) -> set[str]:
    rows = connection.exec_driver_sql("SELECT name FROM pg_prepared_statements")
    return {str(row[0]) for row in rows}


@pytest.mark.postgres
def test_postgresql_statements_are_prepared_once_per_connection(pg_url: str) -> None:
    """The swap path's statements are prepared by name the first time a connection runs them,
    and a ROLLBACK keeps them (psycopg's own preparing, off, would answer it with DEALLOCATE
    ALL and the next run would fail with 'prepared statement does not exist')."""
    engine = make_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as connection:
            with connection.begin():
                assert repository_module._PLAN.run(connection, {"plan_id": "x"}).first() is None
            prepared = _statements_on_this_connection(connection)
            connection.commit()
            assert any(name.startswith("swapd_") for name in prepared), prepared
            transaction = connection.begin()
            for _ in range(8):  # more than psycopg's default threshold for preparing
                connection.execute(sa.select(t.plans.c.id).where(t.plans.c.id == "y")).all()
            transaction.rollback()
            with connection.begin():
                assert repository_module._PLAN.run(connection, {"plan_id": "x"}).first() is None
            assert _statements_on_this_connection(connection) == prepared
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_statement_the_server_forgot_is_prepared_again_by_the_retry(pg_url: str) -> None:
    db = Database(make_engine(pg_url, pool_size=1), ManualClock(START))
    attempts: list[int] = []
    try:
        assert db.read(lambda tx: tx.repo.plan("x")) is None  # prepared on the one connection

        def forget_then_read(tx: Tx) -> object:
            attempts.append(1)
            if len(attempts) == 1:
                tx.repo.execute(sa.text("DEALLOCATE ALL"))
            return tx.repo.plan("x")

        assert db.write(forget_then_read) is None
        assert len(attempts) == 2  # the first attempt failed on the forgotten statement
    finally:
        db.dispose()


@pytest.mark.postgres
def test_nothing_is_prepared_by_name_when_told_not_to(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SWAPD_PG_PREPARE=off (PgBouncer in transaction mode): the same statements, unnamed."""
    monkeypatch.setenv("SWAPD_PG_PREPARE", "off")
    engine = make_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as connection, connection.begin():
            assert repository_module._PLAN.run(connection, {"plan_id": "x"}).first() is None
            assert _statements_on_this_connection(connection) == set()
    finally:
        engine.dispose()


def test_null_parameters_and_rowcounts_on_each_database(db: Database) -> None:
    """NULL goes through as SQL NULL, and an UPDATE's row count is the rows it changed."""
    insert = Prepared(sa.insert(t.pack_models))
    by_code = Prepared(
        sa.select(t.pack_models.c.code).where(
            sa.or_(t.pack_models.c.code == sa.bindparam("code"), sa.bindparam("code").is_(None))
        )
    )
    update = Prepared(sa.update(t.pack_models).values(nominal_wh=t.pack_models.c.nominal_wh + 1))
    with db.engine.connect() as connection, connection.begin():
        insert.run(connection, {"code": "A", "nominal_wh": 1000})
        insert.run(connection, {"code": "B", "nominal_wh": 1000})
        assert sorted(r.code for r in by_code.run(connection, {"code": None})) == ["A", "B"]
        assert [r.code for r in by_code.run(connection, {"code": "B"})] == ["B"]
        assert update.run(connection, {}).rowcount == 2
