"""A real streaming replica: a primary made with initdb and its copy by ``pg_basebackup -R``
(scripts/replica_pair.py), about two seconds to start. Reports and statements read the replica,
money writes and reads the primary; a write on the primary shows on the replica once it has
replayed it, and not while its replay is paused.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from scripts.replica_pair import Pair, can_run, streaming_pair

from swapd.services import catalog, identity, statements
from swapd.services.identity import Role
from swapd.services.payments import top_up
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import make_engine, upgrade
from swapd.store.replica import ReplicaWriteError, read_database, replica_lag_s
from tests import network as net
from tests.deploy.processes import swapd_serve
from tests.integration.cli_process import succeeded, swapd

pytestmark = pytest.mark.postgres

REPLAY_TIMEOUT_S = 30.0
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    if not can_run():
        if os.environ.get("SWAPD_REQUIRE_POSTGRES"):
            pytest.fail("SWAPD_REQUIRE_POSTGRES is set but PostgreSQL's server programs are missing")
        pytest.skip("no PostgreSQL server programs (initdb, pg_basebackup) here")
    with streaming_pair() as running:
        engine = make_engine(running.primary_url)
        upgrade(engine)
        engine.dispose()
        yield running


@pytest.fixture
def primary(pair: Pair) -> Iterator[Database]:
    db = Database(make_engine(pair.primary_url))
    yield db
    db.dispose()


@pytest.fixture
def replica(pair: Pair, primary: Database) -> Iterator[Database]:
    reads = read_database(primary, pair.replica_url)
    assert reads is not primary
    yield reads
    reads.dispose()


def _replayed(primary: Database, replica: Database) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with primary.engine.connect() as connection:
        written = connection.exec_driver_sql("SELECT pg_current_wal_lsn()::text").scalar_one()
    deadline = time.monotonic() + REPLAY_TIMEOUT_S
    while True:
        with replica.engine.connect() as connection:
            behind = connection.exec_driver_sql(
                "SELECT pg_wal_lsn_diff(%(lsn)s::pg_lsn, pg_last_wal_replay_lsn()) > 0",
                {"lsn": written},
            ).scalar_one()
        if not behind:
            return
        assert time.monotonic() < deadline, "the replica did not replay the primary's writes"
        time.sleep(0.02)


def _replay(replica: Database, *, paused: bool) -> None:
    function = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
    with replica.engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT {function}()")


def _rider(db: Database, rider_id: str) -> None:
    if not db.read(lambda tx: tx.repo.execute(sa.select(t.plans.c.id)).first()):
        net.pack_model(db)
        net.plans(db)
    catalog.add_rider(db, rider_id, "energy")


def _month() -> statements.Month:
    now = datetime.now(UTC)
    return statements.Month(now.year, now.month)


def test_statements_read_the_replica_after_it_replays_and_money_never_goes_there(
    pair: Pair, primary: Database, replica: Database, tmp_path: Path
) -> None:
    _rider(primary, "R1")
    top_up(primary, "R1", 10_000, "pay-r1-1")
    _replayed(primary, replica)
    month = _month()
    assert statements.statement(replica, "R1", month) == statements.statement(primary, "R1", month)
    assert statements.statement(replica, "R1", month).topups_count == 1
    lag_s = replica_lag_s(replica)
    assert lag_s is not None and 0.0 <= lag_s < REPLAY_TIMEOUT_S
    assert replica_lag_s(primary) is None  # not a standby

    # Money never goes to the replica: its Database refuses writes, and PostgreSQL would too.
    with pytest.raises(ReplicaWriteError):
        top_up(replica, "R1", 5_000, "pay-r1-wrong")
    with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"), replica.engine.begin() as c:
        c.execute(sa.update(t.riders).values(status="blocked").where(t.riders.c.id == "R1"))
    # Nor through a read URL that names the primary by mistake: every transaction is READ ONLY.
    misnamed = read_database(primary, pair.primary_url)
    try:
        assert replica_lag_s(misnamed) is None  # no standby
        with (
            pytest.raises(sa.exc.DBAPIError, match="read-only transaction"),
            misnamed.engine.begin() as c,
        ):
            c.execute(sa.update(t.riders).values(status="blocked").where(t.riders.c.id == "R1"))
    finally:
        misnamed.dispose()

    # While the replica lags (its replay paused), the statement there is the older picture.
    _replay(replica, paused=True)
    try:
        top_up(primary, "R1", 5_000, "pay-r1-2")
        assert statements.statement(primary, "R1", month).topups_count == 2
        assert statements.statement(replica, "R1", month).topups_count == 1
        summary = statements.export_csv(replica, month, tmp_path / "lagging.csv")
        assert summary.totals["topup_minor"] == 10_000
        # The command line's export reads the replica it is given, the primary only without.
        flags = ("--month", str(month), "--out", str(tmp_path), "--json")
        given = (*flags, "--database", pair.primary_url)
        exported = json.loads(
            succeeded(swapd("statements", "export", *given, "--read-database", pair.replica_url))
        )
        assert exported["totals"]["topup_minor"] == 10_000
        exported = json.loads(succeeded(swapd("statements", "export", *given)))
        assert exported["totals"]["topup_minor"] == 15_000
    finally:
        _replay(replica, paused=False)
    _replayed(primary, replica)
    assert statements.statement(replica, "R1", month).topups_count == 2
    summary = statements.export_csv(replica, month, tmp_path / "replayed.csv")
    assert summary.totals["topup_minor"] == 15_000


def _transfer_rows(csv_text: str, rider_id: str) -> int:
    return sum(1 for line in csv_text.splitlines() if f",{rider_id}," in line)


def test_serve_sends_exports_to_the_replica_and_reports_its_lag(
    pair: Pair, primary: Database, replica: Database, tmp_path: Path
) -> None:
    _rider(primary, "R2")
    top_up(primary, "R2", 10_000, "pay-r2-1")
    identity.add_staff(primary, "admin@example.com", PASSWORD, Role.ADMIN)
    flags = ("--database", pair.primary_url, "--read-database", pair.replica_url)
    with (
        swapd_serve(tmp_path / "serve.log", *flags) as server,
        httpx.Client(base_url=server.http) as http,
    ):
        health = http.get("/healthz").json()
        assert health["replica"]["status"] == "ok", health
        assert "swapd_replica_lag_seconds" in http.get("/metrics").text
        login = http.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text  # the session is read on the primary
        staff = {"Authorization": f"Bearer {login.json()['token']}"}
        _replayed(primary, replica)
        before = _transfer_rows(http.get("/api/v1/ops/exports/transfers.csv", headers=staff).text, "R2")
        assert before > 0

        _replay(replica, paused=True)
        try:
            top_up(primary, "R2", 5_000, "pay-r2-2")
            # The export reads the replica, which has not replayed the top-up...
            lagging = http.get("/api/v1/ops/exports/transfers.csv", headers=staff).text
            assert _transfer_rows(lagging, "R2") == before
            # ...and a rider's page, where money actions start, reads the primary, which has.
            rider = http.get("/api/v1/ops/riders/R2", headers=staff).json()
            assert rider["balance"]["prepaid_minor"] == 15_000, rider
        finally:
            _replay(replica, paused=False)
        _replayed(primary, replica)
        replayed = http.get("/api/v1/ops/exports/transfers.csv", headers=staff).text
        assert _transfer_rows(replayed, "R2") > before
    assert "Traceback" not in server.log_text()
