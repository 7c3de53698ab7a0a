"""Storage: migrations against the table definitions, SQLite's durability settings, and the two
storage commands (``swapd db upgrade``, ``swapd ledger check``), on SQLite and PostgreSQL.

Migration tests need an *empty* database: SQLite gets a new file, PostgreSQL a database of its own
(created and dropped here), so the shared session database of the other tests is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import Result
from sqlalchemy.engine import Engine

from swapd.cli import app
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_PAGE_SIZE,
    WRITE,
    alembic_config,
    downgrade,
    make_engine,
    open_database,
    upgrade,
)
from swapd.store.partitions import partition_tables
from tests.cli_runner import CliRunner
from tests.pg_databases import temporary_database
from tests.plans import ENERGY

HEAD = "0014"
SWAPD_TABLES = sorted(t.metadata.tables)


# -- databases -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all, of each supported kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_url")  # skips, or fails under SWAPD_REQUIRE_POSTGRES, if no server
    with temporary_database("swapd_storage", migrated_to=None) as url:
        yield url


@pytest.fixture
def engine_of(empty_url: str) -> Iterator[Callable[[], Engine]]:
    """make_engine for the empty database; every engine made is disposed at the end."""
    made: list[Engine] = []

    def make() -> Engine:
        made.append(make_engine(empty_url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    downgrade(engine, revision)


def _tables(engine: Engine) -> list[str]:
    """The tables, without PostgreSQL's monthly partitions (swapd.store.partitions)."""
    with engine.connect() as connection:
        partitions = partition_tables(connection)
        return sorted(set(sa.inspect(connection).get_table_names()) - partitions)


def _versions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _rows(connection: sa.Connection, query: sa.Executable) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(query)]


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        partitions = partition_tables(connection)
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, kind, _parent: not (kind == "table" and name in partitions),
            },
        )
        return list(compare_metadata(context, t.metadata))


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything reflection sees, plus SQLite's own DDL text: equal snapshots, same schema."""
    snapshot: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for name in sorted(inspector.get_table_names()):
            if name in partition_tables(connection) and "_y" in name:
                continue  # months made at migration time: which ones depends on the day
            indexes = []
            for index in inspector.get_indexes(name):
                options = index.get("dialect_options", {})
                where = options.get("sqlite_where", options.get("postgresql_where"))
                indexes.append((index["name"], index["column_names"], bool(index["unique"]), str(where)))
            snapshot[name] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)
                ],
                "pk": inspector.get_pk_constraint(name),
                "fks": sorted(map(repr, inspector.get_foreign_keys(name))),
                "indexes": sorted(indexes),
                "uniques": sorted(map(repr, inspector.get_unique_constraints(name))),
                "checks": sorted(map(repr, inspector.get_check_constraints(name))),
            }
        if connection.dialect.name == "sqlite":
            snapshot["sqlite_master"] = connection.execute(
                sa.text("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            ).all()
    return snapshot


# -- 1. migrations -------------------------------------------------------------------------------


def test_migrations_have_one_head_the_latest_revision() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]


def test_upgrade_on_an_empty_database_creates_exactly_the_schema(
    engine_of: Callable[[], Engine],
) -> None:
    engine = engine_of()
    assert _tables(engine) == []
    upgrade(engine)
    assert _tables(engine) == sorted([*SWAPD_TABLES, "alembic_version"])
    assert len(SWAPD_TABLES) == 35
    assert _versions(engine) == [HEAD]
    assert _differences(engine) == []

    # compare_metadata skips CHECK constraints and partial-index predicates; compare them here.
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for table in t.metadata.sorted_tables:
            expected = sorted(
                str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint)
            )
            found = sorted(str(c["name"]) for c in inspector.get_check_constraints(table.name))
            assert found == expected, table.name
        (open_pack,) = [
            ix for ix in inspector.get_indexes("possessions") if ix["name"] == "ux_possessions_open_pack"
        ]
        predicates = {
            str(index.name): _predicate(str(index.info[t.PARTIAL]))
            for table in t.metadata.sorted_tables
            for index in table.indexes
            if t.PARTIAL in index.info
        }
        found_predicates = {
            str(index["name"]): _predicate(str(where))
            for table in t.metadata.sorted_tables
            for index in inspector.get_indexes(table.name)
            if (where := _where_of(index)) is not None
        }
    assert open_pack["column_names"] == ["pack_serial"]
    assert bool(open_pack["unique"]) is True
    assert predicates["ux_possessions_open_pack"] == "at_in is null"
    assert predicates["ix_possessions_at_in"] == "at_in is not null"
    assert set(predicates) == {"ux_possessions_open_pack", "ix_swaps_offered", "ix_possessions_at_in"}
    assert found_predicates == predicates


def _where_of(index: Any) -> object:
    options = index.get("dialect_options", {})
    return options.get("sqlite_where", options.get("postgresql_where"))


def _predicate(where: str) -> str:
    """A partial index's predicate as either database writes it back, without brackets or casts."""
    return re.sub(r"[()]|::text", "", where).lower()


def test_downgrade_to_base_leaves_no_swapd_tables_and_upgrade_again_works(
    engine_of: Callable[[], Engine],
) -> None:
    engine = engine_of()
    upgrade(engine)
    migrated = _schema(engine)

    _downgrade(engine, "base")
    assert _tables(engine) == ["alembic_version"]
    assert _versions(engine) == []

    upgrade(engine)
    assert _versions(engine) == [HEAD]
    assert _differences(engine) == []
    assert _schema(engine) == migrated


def test_upgrade_twice_is_harmless_and_keeps_the_rows(
    engine_of: Callable[[], Engine], clock: ManualClock
) -> None:
    engine = engine_of()
    upgrade(engine)
    db = Database(engine, clock)
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_station(db, "ST1", 3)
    before = _schema(engine)

    upgrade(engine)
    upgrade(engine_of())  # and from a second engine, as a restarted server would

    assert _versions(engine) == [HEAD]
    assert _schema(engine) == before
    assert _differences(engine) == []
    with engine.connect() as connection:
        assert _rows(connection, sa.select(t.pack_models)) == [("G2", 1700)]
        slots = sa.select(t.slots.c.station_id, t.slots.c.slot_no).order_by(t.slots.c.slot_no)
        assert _rows(connection, slots) == [("ST1", 1), ("ST1", 2), ("ST1", 3)]


def test_upgrade_from_0001_keeps_existing_stations(engine_of: Callable[[], Engine]) -> None:
    engine = engine_of()
    upgrade(engine, "0001")
    assert _versions(engine) == ["0001"]
    assert "station_commands" not in _tables(engine)
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        connection.execute(
            sa.text(
                "INSERT INTO stations (id, slot_count, enabled, charged_soc_bp, min_soh_bp, created_at)"
                " VALUES ('ST1', 2, true, 9000, 7000, '2026-11-02 09:00:00')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO slots (station_id, slot_no, state)"
                " VALUES ('ST1', 1, 'empty'), ('ST1', 2, 'empty')"
            )
        )

    upgrade(engine)

    assert _versions(engine) == [HEAD]
    assert _differences(engine) == []
    with engine.connect() as connection:
        station = connection.execute(sa.select(t.stations)).one()._mapping
        slots = connection.execute(sa.select(sa.func.count()).select_from(t.slots)).scalar_one()
    assert (station["id"], station["slot_count"], station["enabled"]) == ("ST1", 2, True)
    assert (station["charged_soc_bp"], station["min_soh_bp"]) == (9000, 7000)
    assert [station[c] for c in ("password_hash", "vendor", "model", "firmware")] == [None] * 4
    assert (station["booted_at"], station["last_seen_at"]) == (None, None)
    assert slots == 2


def test_downgrade_to_0001_keeps_stations_that_have_slots(
    request: pytest.FixtureRequest, engine_of: Callable[[], Engine], clock: ManualClock
) -> None:
    engine = engine_of()
    upgrade(engine)
    catalog.add_station(Database(engine, clock), "ST1", 2)

    _downgrade(engine, "0001")

    assert _versions(engine) == ["0001"]
    assert "station_commands" not in _tables(engine)
    with engine.connect() as connection:
        columns = [c["name"] for c in sa.inspect(connection).get_columns("stations")]
        rows = _rows(connection, sa.text("SELECT id, slot_count FROM stations"))
        slots = connection.execute(sa.text("SELECT count(*) FROM slots")).scalar_one()
    assert columns == ["id", "slot_count", "enabled", "charged_soc_bp", "min_soh_bp", "created_at"]
    assert rows == [("ST1", 2)]
    assert slots == 2


def test_concurrent_upgrades_of_an_empty_database(engine_of: Callable[[], Engine]) -> None:
    """store.engine.upgrade promises it is safe to run from several processes at once."""
    engines = [engine_of() for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        barrier.wait()
        try:
            upgrade(engine)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(engine,), daemon=True) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [thread.is_alive() for thread in threads] == [False] * len(threads)  # none hung
    assert errors == []
    assert _versions(engines[0]) == [HEAD]
    assert _differences(engines[0]) == []


ROUNDS = 150  # without the retry, some round of 8 connections loses the race in most runs


def test_connections_racing_to_open_a_new_sqlite_file(tmp_path: Path) -> None:
    """The first connections to a fresh file race to switch it to WAL; SQLite refuses the losers
    at once ("database is locked") instead of waiting, so the switch must be retried."""
    errors: list[BaseException] = []
    for attempt in range(ROUNDS):
        engines = [make_engine(f"sqlite:///{tmp_path / f'new-{attempt}.db'}") for _ in range(8)]
        barrier = threading.Barrier(len(engines))

        def open_one(engine: Engine, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                with engine.connect() as connection:
                    assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=open_one, args=(e, barrier)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for engine in engines:
            engine.dispose()
    assert errors == []


# -- 2. SQLite durability settings ---------------------------------------------------------------


def _pragmas(connection: sa.Connection) -> dict[str, object]:
    return {
        name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    }


@pytest.mark.parametrize("opener", [make_engine, open_database], ids=["make_engine", "open_database"])
def test_sqlite_connections_are_durable(tmp_path: Path, opener: Callable[[str], Engine]) -> None:
    path = tmp_path / "durable.db"
    engine = opener(f"sqlite:///{path}")
    try:
        # Two connections at once: each new pooled connection gets the settings, not only the first.
        with engine.connect() as first, engine.connect() as second:
            expected = {
                "journal_mode": "wal",
                "synchronous": 2,  # FULL
                "foreign_keys": 1,
                "busy_timeout": 30_000,
            }
            assert _pragmas(first) == expected
            assert _pragmas(second) == expected
        assert SQLITE_BUSY_TIMEOUT_MS == 30_000
    finally:
        engine.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_sqlite_write_transactions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "locks.db"
    engine = open_database(f"sqlite:///{path}")
    raw = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        # A writer holds the lock from BEGIN on, before it has run a single statement.
        with (
            engine.connect().execution_options(**{WRITE: True}) as connection,
            connection.begin(),
            pytest.raises(sqlite3.OperationalError, match="database is locked"),
        ):
            raw.execute("BEGIN IMMEDIATE")
        # A reader's transaction (no WRITE option) never blocks a writer.
        with engine.connect() as connection, connection.begin():
            assert connection.execute(sa.select(sa.func.count()).select_from(t.stations)).scalar() == 0
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
    finally:
        raw.close()
        engine.dispose()


def test_foreign_keys_are_enforced(db: Database) -> None:
    with (
        pytest.raises(sa.exc.IntegrityError),
        db.engine.connect().execution_options(**{WRITE: True}) as connection,
        connection.begin(),
    ):
        connection.execute(sa.insert(t.slots).values(station_id="NOPE", slot_no=1, state="empty"))
    with db.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(t.slots)).scalar() == 0


# -- 3. swapd ledger check -----------------------------------------------------------------------

runner = CliRunner()


def _check(url: str, *args: str) -> Result:
    return runner.invoke(app, ["ledger", "check", "--database", url, *args])


def _activity(db: Database, clock: ManualClock) -> None:
    """A top-up, one completed swap (hold, post, revenue) and one open offer (a pending hold)."""
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    catalog.add_station(db, "ST1", 4)
    catalog.add_station(db, "ST2", 4)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=90, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R1", "energy")
    app_token = IdToken(TokenType.APP, "R1")
    # 10,000 KRW at 300 KRW per 1,000 Wh buys floor(33,333.3) = 33,333 Wh.
    assert payments.top_up(db, "R1", 10_000, "pay-1").units == 33_333
    offer = swaps.authorize(db, "ST1", app_token)
    assert [(o.slot_no, o.serial, o.hold_units) for o in offer.offered] == [(1, "B-1", 1_700)]
    swaps.battery_out(db, "ST1", "s1-out", [BatteryReading(1, "B-1", 10_000, 10_000)], token=app_token)
    clock.set(clock.now() + timedelta(hours=1))
    back = swaps.battery_in(
        db,
        "ST2",
        "s1-in",
        [BatteryReading(1, "B-1", 1_000, 10_000)],
        token=IdToken(TokenType.BATTERY_SERIAL, "B-1"),
    )
    # 90 % of 1,700 Wh = 1,530 Wh used; revenue round(10,000 * 1,530 / 33,333) = 459 KRW.
    ((usage, revenue),) = [(p.usage_units, p.revenue_minor) for p in back.packs]
    assert (usage, revenue) == (1_530, 459)
    # B-2 (90 %) is offered and left open: a pending hold of 1,530 Wh.
    offer = swaps.authorize(db, "ST1", app_token)
    assert [(o.slot_no, o.serial, o.hold_units) for o in offer.offered] == [(2, "B-2", 1_530)]


CLEAN: dict[str, Any] = {
    "ok": True,
    "accounts": 8,
    "transfers": 6,
    "ledgers": {
        "KRW": {
            "debits_posted": 10_459,
            "credits_posted": 10_459,
            "debits_pending": 0,
            "credits_pending": 0,
        },
        # 33,333 issued + 1,530 used; the open hold of B-2 is the only pending amount.
        "Wh": {
            "debits_posted": 34_863,
            "credits_posted": 34_863,
            "debits_pending": 1_530,
            "credits_pending": 1_530,
        },
    },
    "problems": [],
}


def _execute(db: Database, statement: str, **params: object) -> None:
    with db.engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        assert connection.execute(sa.text(statement), params).rowcount == 1


def _account_id(db: Database, code: str, owner: str, ledger: str) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(t.accounts.c.id).where(
                    t.accounts.c.code == code, t.accounts.c.owner == owner, t.accounts.c.ledger == ledger
                )
            ).scalar_one()
        )


def _transfer_id(db: Database, key: str) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(sa.select(t.transfers.c.id).where(t.transfers.c.key == key)).scalar_one()
        )


def test_ledger_check_on_a_consistent_ledger(db: Database, clock: ManualClock) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    _activity(db, clock)

    as_json = _check(url, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert as_json.stderr == ""
    assert json.loads(as_json.stdout) == CLEAN

    human = _check(url)
    assert human.exit_code == 0, human.output
    assert human.stderr == ""
    lines = human.stdout.splitlines()
    assert lines[-2:] == ["8 accounts and 6 transfers checked", "ledger is consistent"]
    rows = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["KRW", "10,459", "10,459", "0", "yes"],
        ["Wh", "34,863", "34,863", "1,530", "yes"],
    ]


def _cached_balance(db: Database) -> list[str]:
    allowance = _account_id(db, "allowance", "R1", "Wh")
    _execute(db, "UPDATE accounts SET credits_posted = 33340 WHERE id = :id", id=allowance)
    return [
        f"account {allowance} (allowance R1 Wh): cached credits_posted 33340 != 33333 from transfers"
    ]


def _transfer_amount(db: Database) -> list[str]:
    _execute(db, "UPDATE transfers SET amount = 10100 WHERE key = 'topup:pay-1:money'")
    prepaid, cash = _account_id(db, "prepaid", "R1", "KRW"), _account_id(db, "cash", "", "KRW")
    assert prepaid < cash
    return [
        f"account {prepaid} (prepaid R1 KRW): cached credits_posted 10000 != 10100 from transfers",
        f"account {cash} (cash operator KRW): cached debits_posted 10000 != 10100 from transfers",
    ]


def _deleted_transfer(db: Database) -> list[str]:
    _execute(db, "DELETE FROM transfers WHERE key = 'ST2:s1-in:B-1:BatteryIn:revenue'")
    prepaid, revenue = _account_id(db, "prepaid", "R1", "KRW"), _account_id(db, "revenue", "", "KRW")
    assert prepaid < revenue
    return [
        f"account {prepaid} (prepaid R1 KRW): cached debits_posted 459 != 0 from transfers",
        f"account {revenue} (revenue operator KRW): cached credits_posted 459 != 0 from transfers",
    ]


def _post_above_its_hold(db: Database) -> list[str]:
    post = _transfer_id(db, "ST2:s1-in:B-1:BatteryIn:post")
    _execute(db, "UPDATE transfers SET amount = 1800 WHERE id = :id", id=post)
    allowance = _account_id(db, "allowance", "R1", "Wh")
    consumed = _account_id(db, "allowance_consumed", "", "Wh")
    assert allowance < consumed
    return [
        f"account {allowance} (allowance R1 Wh): cached debits_posted 1530 != 1800 from transfers",
        f"account {consumed} (allowance_consumed operator Wh): cached credits_posted 1530 != 1800 "
        "from transfers",
        f"transfer {post}: does not match the pending transfer it resolves",
    ]


def _allowance_below_zero(db: Database) -> list[str]:
    _execute(db, "UPDATE transfers SET amount = 3000 WHERE key = 'topup:pay-1:units'")
    allowance = _account_id(db, "allowance", "R1", "Wh")
    issued = _account_id(db, "allowance_issued", "", "Wh")
    assert allowance < issued
    return [
        f"account {allowance} (allowance R1 Wh): cached credits_posted 33333 != 3000 from transfers",
        # 1,530 used + 1,530 held > 3,000 credited
        f"account {allowance} (allowance R1 Wh): debits exceed credits (balance below zero)",
        f"account {issued} (allowance_issued operator Wh): cached debits_posted 33333 != 3000 "
        "from transfers",
    ]


def _credit_on_another_ledger(db: Database) -> list[str]:
    units = _transfer_id(db, "topup:pay-1:units")
    revenue = _account_id(db, "revenue", "", "KRW")
    allowance = _account_id(db, "allowance", "R1", "Wh")
    _execute(db, "UPDATE transfers SET credit_account_id = :r WHERE id = :id", r=revenue, id=units)
    assert allowance < revenue
    return [
        f"account {allowance} (allowance R1 Wh): cached credits_posted 33333 != 0 from transfers",
        f"account {allowance} (allowance R1 Wh): debits exceed credits (balance below zero)",
        f"account {revenue} (revenue operator KRW): cached credits_posted 459 != 33792 from transfers",
        "ledger KRW does not sum to zero: LedgerTotals(debits_posted=10459, credits_posted=43792, "
        "debits_pending=0, credits_pending=0)",
        "ledger Wh does not sum to zero: LedgerTotals(debits_posted=34863, credits_posted=1530, "
        "debits_pending=1530, credits_pending=1530)",
        f"transfer {units}: accounts are on another ledger",
    ]


CORRUPTIONS: dict[str, Callable[[Database], list[str]]] = {
    "cached balance": _cached_balance,
    "transfer amount": _transfer_amount,
    "deleted transfer": _deleted_transfer,
    "post above its hold": _post_above_its_hold,
    "allowance below zero": _allowance_below_zero,
    "credit on another ledger": _credit_on_another_ledger,
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_ledger_check_reports_each_corruption(db: Database, clock: ManualClock, case: str) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    _activity(db, clock)
    problems = CORRUPTIONS[case](db)

    result = _check(url, "--json")
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == problems
    assert (report["accounts"], report["transfers"]) == (8, 5 if case == "deleted transfer" else 6)


def test_ledger_check_human_report_names_the_account_and_both_values(
    db: Database, clock: ManualClock
) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    _activity(db, clock)
    (problem,) = _cached_balance(db)

    result = _check(url)

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [f"mismatch: {problem}"]
    assert "allowance R1 Wh" in problem
    assert "33340" in problem
    assert "33333" in problem
    assert result.stdout.splitlines()[-1] == "8 accounts and 6 transfers checked"
    assert "ledger is consistent" not in result.stdout


UNOPENABLE: dict[str, tuple[str, str]] = {
    "sqlite, no such directory": (
        "sqlite:///{tmp}/no/such/dir/swapd.db",
        "error: no database at {tmp}/no/such/dir/swapd.db (create one with `swapd db upgrade`)",
    ),
    "sqlite, no such file": (
        "sqlite:///{tmp}/missing.db",
        "error: no database at {tmp}/missing.db (create one with `swapd db upgrade`)",
    ),
    "sqlite, a directory": (
        "sqlite:///{tmp}",
        "error: database unavailable: unable to open database file",
    ),
    "sqlite, not migrated": (
        "sqlite:///{tmp}/empty.db",
        "error: database unavailable: no such table: transfers",
    ),
    "unknown scheme": (
        "nosuchdb://x/y",
        "error: bad database URL: Can't load plugin: sqlalchemy.dialects:nosuchdb",
    ),
    "postgresql, nothing listening": (
        "postgresql://postgres@127.0.0.1:1/swapd",
        'error: database unavailable: connection failed: connection to server at "127.0.0.1", port 1 '
        "failed: Connection refused",
    ),
}


@pytest.mark.parametrize("case", UNOPENABLE)
def test_ledger_check_on_a_database_that_cannot_be_opened_exits_2(tmp_path: Path, case: str) -> None:
    template, message = UNOPENABLE[case]
    (tmp_path / "empty.db").touch()
    result = _check(template.format(tmp=tmp_path), "--json")
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    # With --json the one line is a JSON error; its message is the line people get without it.
    (line,) = result.stderr.splitlines()
    assert json.loads(line)["error"]["message"] == message.format(tmp=tmp_path).removeprefix("error: ")
    assert not (tmp_path / "missing.db").exists()  # a check creates no database


@pytest.mark.postgres
def test_ledger_check_on_a_missing_postgresql_database_exits_2(pg_url: str) -> None:
    url = (
        sa.make_url(pg_url).set(database="swapd_no_such_database").render_as_string(hide_password=False)
    )
    result = _check(url)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: database unavailable: connection failed: ")
    assert line.endswith('database "swapd_no_such_database" does not exist')


def test_ledger_check_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "swapd.cli", "ledger", "check", "--database", f"sqlite:///{tmp_path}"],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="80"),
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["error: database unavailable: unable to open database file"]


# -- 4. swapd db upgrade -------------------------------------------------------------------------


def _upgrade_cli(url: str) -> Result:
    return runner.invoke(app, ["db", "upgrade", "--database", url])


def test_db_upgrade_creates_the_schema_and_a_second_run_changes_nothing(
    empty_url: str, engine_of: Callable[[], Engine], clock: ManualClock
) -> None:
    engine = engine_of()
    assert _tables(engine) == []

    first = _upgrade_cli(empty_url)
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    assert " ".join(first.stdout.split()).endswith("is up to date")
    assert _tables(engine) == sorted([*SWAPD_TABLES, "alembic_version"])
    assert _versions(engine) == [HEAD]
    assert _differences(engine) == []
    catalog.add_pack_model(Database(engine, clock), "G2", 1700)
    before = _schema(engine)

    second = _upgrade_cli(empty_url)
    assert second.exit_code == 0, second.output
    assert second.stdout == first.stdout
    assert _versions(engine) == [HEAD]
    assert _schema(engine) == before
    with engine.connect() as connection:
        assert _rows(connection, sa.select(t.pack_models)) == [("G2", 1700)]


def test_db_upgrade_of_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    assert not path.exists()
    result = _upgrade_cli(f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    assert path.is_file()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        names = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        assert [n for (n,) in names] == sorted([*SWAPD_TABLES, "alembic_version"])
    finally:
        raw.close()


def test_db_upgrade_on_an_unopenable_database_exits_2(tmp_path: Path) -> None:
    result = _upgrade_cli(f"sqlite:///{tmp_path}/no/such/dir/swapd.db")
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: directory {tmp_path}/no/such/dir does not exist "
        f"(for database {tmp_path}/no/such/dir/swapd.db)"
    ]


def test_db_upgrade_success_message_is_one_line_on_80_columns(tmp_path: Path) -> None:
    directory = tmp_path / ("a-rather-long-directory-name-" * 2)
    directory.mkdir()
    url = f"sqlite:///{directory / 'swapd.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "swapd.cli", "db", "upgrade", "--database", url],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="80"),
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"database at {url} is up to date"]


@pytest.mark.postgres
def test_db_upgrade_does_not_print_the_database_password(pg_url: str) -> None:
    # The session database is at head already, so this upgrade is a no-op; the server trusts
    # the client, so any password is accepted.
    url = sa.make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    result = _upgrade_cli(url)
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.stdout


def test_a_new_sqlite_file_gets_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    # A swap dirties ~40 scattered B-tree pages, each written whole to the WAL at COMMIT and
    # again at the checkpoint: 1 KiB pages write a fifth of what 4 KiB pages did (bench.swaps).
    engine = open_database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA page_size").scalar_one() == SQLITE_PAGE_SIZE
    finally:
        engine.dispose()
    old = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(old)) as made_before:
        made_before.execute("PRAGMA page_size=4096")
        made_before.execute("CREATE TABLE t (a)")
        made_before.commit()
    engine = open_database(f"sqlite:///{old}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA page_size").scalar_one() == 4096
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0
    finally:
        engine.dispose()
