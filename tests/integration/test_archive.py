"""Monthly partitions and `swapd archive`, on each database: a month written to files and taken
out leaves `ledger check` clean (balances = checkpoint + the transfers left); a month with an
open hold is refused; a second run changes nothing; a transfer key or a station event is unique
across months, and still recognised once its month is archived."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from swapd.cli import app
from swapd.domain.errors import Conflict
from swapd.ledger.model import (
    OPERATOR,
    AccountCode,
    LedgerError,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferRequest,
)
from swapd.store import archive as archive_module
from swapd.store import schema as t
from swapd.store.archive import ArchiveRefused, archive
from swapd.store.database import Database, ManualClock, Tx
from swapd.store.engine import downgrade, make_engine, upgrade
from swapd.store.ledger_check import check_ledger
from swapd.store.partitions import Month, ensure_months, months_of, partition_tables
from tests.cli_runner import CliRunner
from tests.conftest import copy_of_migrated_sqlite
from tests.pg_databases import temporary_database

JAN, FEB, MAR = (datetime(2026, m, 10, 12, tzinfo=UTC) for m in (1, 2, 3))
LEDGER = "Wh"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own (archiving drops partitions: not the session's shared one)."""
    if request.param == "sqlite":
        yield copy_of_migrated_sqlite(request.getfixturevalue("migrated_sqlite_file"), tmp_path)
        return
    request.getfixturevalue("pg_url")  # skips, or fails, without a server
    with temporary_database("swapd_archive", migrated_to=None) as url:
        yield url


@pytest.fixture
def history(own_url: str) -> Iterator[tuple[Database, ManualClock]]:
    """The database with the months of 2026 made (PostgreSQL), on a clock in January."""
    engine = make_engine(own_url)
    upgrade(engine)
    with engine.begin() as connection:
        ensure_months(connection, MAR, since=Month(2026, 1))
    clock = ManualClock(JAN)
    db = Database(engine, clock)
    yield db, clock
    db.dispose()


def _write(db: Database, work: Callable[[Tx], Any]) -> Any:
    return db.write(work)


def _transfer(
    db: Database,
    key: str,
    units: int,
    *,
    flags: TransferFlags = TransferFlags.NONE,
    pending: Transfer | None = None,
    grant: bool = False,
) -> Transfer:
    def work(tx: Tx) -> Transfer:
        book = tx.book
        allowance = book.account(LEDGER, AccountCode.ALLOWANCE, "R1")
        issued = book.account(LEDGER, AccountCode.ALLOWANCE_ISSUED, OPERATOR)
        consumed = book.account(LEDGER, AccountCode.ALLOWANCE_CONSUMED, OPERATOR)
        debit, credit = (issued, allowance) if grant else (allowance, consumed)
        code = TransferCode.TOP_UP if grant else TransferCode.USAGE
        return book.transfer(
            TransferRequest(
                key,
                LEDGER,
                debit.id,
                credit.id,
                units,
                code,
                flags,
                pending_id=None if pending is None else pending.id,
                rider_id="R1",
            )
        )

    result: Transfer = _write(db, work)
    return result


def _event(db: Database, request_id: str, at: datetime) -> None:
    def work(tx: Tx) -> None:
        tx.repo.insert_station_event("ST1", request_id, "BatteryIn", at, {"request": request_id})

    _write(db, work)


def _event_result(db: Database, request_id: str) -> Any:
    return db.read(lambda tx: tx.repo.station_event("ST1", request_id, "BatteryIn"))


def _ledger_ok(db: Database) -> int:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems
    return report.transfers


def _count(db: Database, table: sa.Table) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _two_months(db: Database, clock: ManualClock) -> Transfer:
    """January: a grant, a hold, an event; February: the hold posted, a grant, an event."""
    _transfer(db, "grant-1", 1_000, grant=True)
    hold = _transfer(db, "hold-1", 300, flags=TransferFlags.PENDING)
    _event(db, "r1", JAN)
    clock.set(FEB)
    _transfer(db, "post-1", 200, flags=TransferFlags.POST_PENDING, pending=hold)
    _transfer(db, "grant-2", 500, grant=True)
    _event(db, "r2", FEB)
    clock.set(MAR)
    return hold


def test_an_archived_month_leaves_the_ledger_check_clean_and_its_files_whole(
    history: tuple[Database, ManualClock], tmp_path: Path
) -> None:
    db, clock = history
    _two_months(db, clock)
    assert _ledger_ok(db) == 4

    report = archive(db.engine, Month(2026, 2), tmp_path, now=MAR)

    assert [(f.table, f.month, f.row_count) for f in report.archived] == [
        ("transfers", "2026-01", 2),
        ("station_events", "2026-01", 1),
    ]
    assert _ledger_ok(db) == 2  # the two of February, plus the checkpoints of January
    assert _count(db, t.transfer_keys) == 4  # identities stay
    assert _count(db, t.station_events) == 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (tmp_path / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data.decode().splitlines()) == entry["row_count"] + 1  # and the header
    with db.engine.connect() as connection:
        assert "transfers_y2026m01" not in partition_tables(connection)
        if connection.dialect.name == "postgresql":
            assert Month(2026, 1) not in months_of(connection, "transfers")
            assert Month(2026, 2) in months_of(connection, "transfers")


def test_archiving_again_changes_nothing(history: tuple[Database, ManualClock], tmp_path: Path) -> None:
    db, clock = history
    _two_months(db, clock)
    archive(db.engine, Month(2026, 2), tmp_path, now=MAR)
    with db.engine.connect() as connection:
        checkpoints = connection.execute(sa.select(t.ledger_checkpoints)).all()

    again = archive(db.engine, Month(2026, 2), tmp_path, now=MAR)

    assert again.archived == []
    assert again.already == ["station_events 2026-01", "transfers 2026-01"]
    with db.engine.connect() as connection:
        assert connection.execute(sa.select(t.ledger_checkpoints)).all() == checkpoints
    _ledger_ok(db)


def test_a_month_with_an_open_hold_is_refused_and_nothing_moves(
    history: tuple[Database, ManualClock], tmp_path: Path
) -> None:
    db, clock = history
    _transfer(db, "grant-1", 1_000, grant=True)
    _transfer(db, "hold-1", 300, flags=TransferFlags.PENDING)
    clock.set(MAR)

    with pytest.raises(ArchiveRefused, match="hold still open"):
        archive(db.engine, Month(2026, 2), tmp_path, now=MAR)

    assert _count(db, t.transfers) == 2
    assert _count(db, t.archived_months) == 0
    assert not (tmp_path / "manifest.json").exists()
    _ledger_ok(db)


def test_the_current_month_is_not_archived(
    history: tuple[Database, ManualClock], tmp_path: Path
) -> None:
    db, _ = history
    with pytest.raises(ArchiveRefused, match="after the current month"):
        archive(db.engine, Month(2026, 4), tmp_path, now=MAR)


def test_a_repeat_of_an_archived_transfer_or_event_is_refused_not_applied_again(
    history: tuple[Database, ManualClock], tmp_path: Path
) -> None:
    db, clock = history
    _two_months(db, clock)
    archive(db.engine, Month(2026, 2), tmp_path, now=MAR)
    balances = _count(db, t.transfers)

    with pytest.raises(LedgerError) as refused:
        _transfer(db, "grant-1", 1_000, grant=True)
    assert refused.value.code == "transfer_archived"
    with pytest.raises(Conflict, match="archived"):
        _event_result(db, "r1")
    assert _event_result(db, "r2") == {"request": "r2"}
    assert _count(db, t.transfers) == balances
    _ledger_ok(db)


def test_a_transfer_key_or_station_event_is_unique_across_months(
    history: tuple[Database, ManualClock],
) -> None:
    db, clock = history
    first = _transfer(db, "grant-1", 1_000, grant=True)
    hold = _transfer(db, "hold-1", 300, flags=TransferFlags.PENDING)
    _event(db, "r1", JAN)
    _transfer(db, "post-1", 200, flags=TransferFlags.POST_PENDING, pending=hold)
    clock.set(FEB)

    assert _transfer(db, "grant-1", 1_000, grant=True) == first  # the repeat, answered
    with pytest.raises(sa.exc.IntegrityError):
        _event(db, "r1", FEB)  # the same event in another month (partition)

    def second_resolution(tx: Tx) -> None:  # beneath the book's own check: the key table's
        tx.repo.execute(
            sa.insert(t.transfer_keys).values(key="void-1", resolves_id=hold.id, created_at=FEB)
        )

    with pytest.raises(sa.exc.IntegrityError):
        _write(db, second_resolution)
    assert _count(db, t.transfers) == 3
    assert _count(db, t.station_events) == 1
    _ledger_ok(db)


def test_the_cli_archives_and_the_ledger_check_stays_clean(
    history: tuple[Database, ManualClock], own_url: str, tmp_path: Path
) -> None:
    db, clock = history
    _two_months(db, clock)
    runner = CliRunner()
    out = tmp_path / "archive"
    args = ["archive", "--before", "2026-02", "--out", str(out), "--database", own_url, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [f["month"] for f in json.loads(result.stdout)["archived"]] == ["2026-01", "2026-01"]
    check = runner.invoke(app, ["ledger", "check", "--database", own_url])
    assert check.exit_code == 0, check.output
    again = runner.invoke(app, args)
    assert json.loads(again.stdout)["archived"] == []


def test_a_bad_month_is_one_line(own_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["archive", "--before", "2026-1", "--out", str(tmp_path), "--database", own_url]
    )
    assert result.exit_code == 2
    assert "YYYY-MM" in result.stderr


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    request.getfixturevalue("pg_url")
    with temporary_database("swapd_parts", migrated_to=None) as url:
        yield url


_OLD_ROWS = (
    "INSERT INTO accounts (id, ledger, code, owner, flags, debits_pending, debits_posted,"
    " credits_pending, credits_posted) VALUES (1, 'Wh', 'allowance_issued', '', 0, 0, 700, 0, 0),"
    " (2, 'Wh', 'allowance', 'R1', 1, 0, 0, 0, 700)",
    "INSERT INTO transfers (id, key, ledger, debit_account_id, credit_account_id, amount, code,"
    " flags, rider_id, actor, memo, created_at) VALUES"
    " (1, 'grant-old', 'Wh', 1, 2, 700, 'top_up', 0, 'R1', 'p', '', '2025-06-03 10:00:00+00:00')",
    "INSERT INTO station_events (station_id, request_id, event_type, received_at, result)"
    " VALUES ('ST1', 'old', 'BatteryIn', '2025-06-03 10:00:00+00:00', '{}')",
)


def test_the_migration_keeps_the_rows_both_ways_and_partitions_them_on_postgresql(
    blank_url: str,
) -> None:
    engine = make_engine(blank_url)
    try:
        upgrade(engine, "0011")
        with engine.begin() as connection:
            for statement in _OLD_ROWS:
                connection.exec_driver_sql(statement)
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(sa.select(t.transfer_keys.c.key)).scalars().all() == ["grant-old"]
            assert len(connection.execute(sa.select(t.station_event_keys)).all()) == 1
            assert check_ledger(connection).ok
            if connection.dialect.name == "postgresql":
                assert Month(2025, 6) in months_of(connection, "transfers")
                moved = connection.exec_driver_sql("SELECT count(*) FROM transfers_y2025m06")
                assert moved.scalar() == 1
        downgrade(engine, "0011")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT key FROM transfers").scalars().all() == [
                "grant-old"
            ]
            assert partition_tables(connection) == set()
            uniques = sa.inspect(connection).get_unique_constraints("transfers")
            assert sorted(u["name"] for u in uniques) == [
                "uq_transfers_key",
                "uq_transfers_pending_id",
            ]
        upgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("blank_url", ["postgresql"], indirect=True)  # partitions are PostgreSQL's
def test_rows_in_the_default_partition_move_into_their_month_when_it_is_made(
    blank_url: str,
) -> None:
    engine = make_engine(blank_url)
    upgrade(engine)
    far = datetime(2031, 5, 10, tzinfo=UTC)
    db = Database(engine, ManualClock(far))
    try:
        first = _transfer(db, "grant-far", 1_000, grant=True)
        with engine.connect() as connection:
            waiting = connection.exec_driver_sql("SELECT count(*) FROM transfers_default")
            assert waiting.scalar() == 1
        with engine.begin() as connection:
            made = ensure_months(connection, far)
        assert "transfers_y2031m05" in made
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM transfers_default").scalar() == 0
            assert connection.exec_driver_sql("SELECT count(*) FROM transfers_y2031m05").scalar() == 1
        assert _transfer(db, "grant-far", 1_000, grant=True) == first
        _ledger_ok(db)
    finally:
        db.dispose()


def test_a_run_that_fails_before_its_commit_leaves_nothing_and_runs_again(
    history: tuple[Database, ManualClock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, clock = history
    _two_months(db, clock)

    def crash(*_args: object) -> None:
        raise OSError("the machine went down while the month was being removed")

    with monkeypatch.context() as patched:
        patched.setattr(archive_module, "_remove", crash)
        with pytest.raises(OSError, match="went down"):
            archive(db.engine, Month(2026, 2), tmp_path, now=MAR)
    assert (tmp_path / "transfers" / "transfers_2026-01.csv").exists()  # the files were written
    assert _count(db, t.archived_months) == 0 and _count(db, t.ledger_checkpoints) == 0
    assert _ledger_ok(db) == 4  # nothing of the month went

    again = archive(db.engine, Month(2026, 2), tmp_path, now=MAR)
    assert [f.row_count for f in again.archived] == [2, 1]
    assert _ledger_ok(db) == 2
