"""Which reads may go to the read replica, checked fast and without PostgreSQL: no route that
changes anything or moves money depends on the replica, and with a "replica" that is a snapshot
of the database taken a moment earlier, the reports show the snapshot while sign-in, money and
the pages an action lands on show the database as it is now.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from swapd import api
from swapd.api.deps import get_read_db
from swapd.gateway.server import create_app
from swapd.services import catalog, identity
from swapd.services.identity import Role
from swapd.services.payments import top_up
from swapd.sim.embedded import free_port
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine
from swapd.store.replica import ReadOnlyDatabase, ReplicaWriteError, read_database
from tests import network as net
from tests.conftest import START, copy_of_migrated_sqlite

PASSWORD = "correct horse battery"
# GET routes that money decisions or a caller's own next step read: never the replica.
ON_THE_PRIMARY = {
    "/me/balance",
    "/me/packs",
    "/me/swaps",
    "/ops/riders/{rider_id}",
    "/ops/stations/{station_id}",
    "/ops/stations/{station_id}/commands",
    "/ops/stations/{station_id}/commands/{command_id}",
}


def _reads_replica(dependant: Dependant) -> bool:
    return any(d.call is get_read_db or _reads_replica(d) for d in dependant.dependencies)


def _api_routes() -> list[APIRoute]:
    """Every route of every module of swapd.api, as its module declares it (``/ops/...``)."""
    routes = []
    for info in pkgutil.iter_modules(api.__path__):
        module = importlib.import_module(f"{api.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            routes.extend(r for r in router.routes if isinstance(r, APIRoute))
    return routes


def test_only_reads_that_decide_nothing_depend_on_the_replica() -> None:
    routes = _api_routes()
    replica_routes = [route for route in routes if _reads_replica(route.dependant)]
    assert len(replica_routes) >= 10  # the lists and exports: see swapd.api.deps.get_read_db
    for route in replica_routes:
        assert route.methods == {"GET"}, route.path
        assert route.path not in ON_THE_PRIMARY, route.path
    assert {route.path for route in routes} >= ON_THE_PRIMARY


@pytest.fixture
def primary(migrated_sqlite_file: Path, tmp_path: Path) -> Iterator[Database]:
    (tmp_path / "primary").mkdir()
    db = Database(
        make_engine(copy_of_migrated_sqlite(migrated_sqlite_file, tmp_path / "primary")),
        ManualClock(START),
    )
    yield db
    db.dispose()


def _snapshot(db: Database, path: Path) -> ReadOnlyDatabase:
    """A copy of ``db`` as it is now (SQLite's online backup), opened as the read replica: a
    replica that stopped replaying here."""
    source = db.engine.url.database
    assert source is not None
    with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return ReadOnlyDatabase(make_engine(f"sqlite:///{path}"), db.clock)


def test_reports_read_the_replica_and_money_sign_in_and_own_pages_read_the_primary(
    primary: Database, tmp_path: Path
) -> None:
    net.network(primary)
    catalog.add_rider(primary, "R1", "energy")
    top_up(primary, "R1", 10_000, "pay-1")
    replica = _snapshot(primary, tmp_path / "replica.db")
    try:
        # Written after the snapshot: only the primary has these.
        top_up(primary, "R1", 5_000, "pay-2")
        identity.add_staff(primary, "admin@example.com", PASSWORD, Role.ADMIN)
        with TestClient(create_app(primary, read_db=replica), base_url="http://swapd.test") as client:
            login = client.post(
                "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            admin = {"Authorization": f"Bearer {login.json()['token']}"}

            exported = client.get("/api/v1/ops/exports/transfers.csv", headers=admin)
            assert exported.status_code == 200, exported.text
            assert "topup:pay-1:" in exported.text  # the replica's picture
            assert "topup:pay-2:" not in exported.text
            listed = client.get("/api/v1/ops/riders", headers=admin).json()
            assert [r["id"] for r in listed["items"]] == ["R1"]

            rider = client.get("/api/v1/ops/riders/R1", headers=admin).json()
            assert rider["balance"]["prepaid_minor"] == 15_000  # the primary's
            refund = client.post(
                "/api/v1/ops/riders/R1/refunds",
                json={"amount_minor": 1_000, "reason": "double charge"},
                headers={**admin, "Idempotency-Key": "refund-1"},
            )
            assert refund.status_code == 201, refund.text  # on the replica: ReplicaWriteError
    finally:
        replica.dispose()


def test_the_replica_refuses_writes_and_without_one_reads_stay_on_the_primary(
    primary: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWAPD_READ_DATABASE_URL", raising=False)
    assert read_database(primary, None) is primary
    replica = _snapshot(primary, tmp_path / "replica.db")
    try:
        with pytest.raises(ReplicaWriteError):
            catalog.add_rider(replica, "R9", "energy")
    finally:
        replica.dispose()


def test_console_lists_read_the_replica_and_a_riders_page_the_primary(
    primary: Database, tmp_path: Path
) -> None:
    net.network(primary)
    catalog.add_rider(primary, "R1", "energy")
    replica = _snapshot(primary, tmp_path / "replica.db")
    try:
        # After the snapshot: a rider, and the staff account whose session signs in.
        catalog.add_rider(primary, "R2", "energy")
        identity.add_staff(primary, "ops@example.com", PASSWORD, Role.OPERATOR)
        with TestClient(create_app(primary, read_db=replica), base_url="http://swapd.test") as client:
            signed_in = client.post(
                "/login",
                data={"email": "ops@example.com", "password": PASSWORD, "next": "/riders"},
                follow_redirects=False,
            )
            assert signed_in.status_code == 303, signed_in.text
            riders = client.get("/riders")
            assert riders.status_code == 200
            assert "R1" in riders.text and "R2" not in riders.text  # the replica's list
            page = client.get("/riders/R2")
            assert page.status_code == 200 and "R2" in page.text  # the primary's page
    finally:
        replica.dispose()


def test_healthz_stays_ok_when_the_replica_is_down_and_says_so(primary: Database) -> None:
    down = ReadOnlyDatabase(make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"))
    try:
        with TestClient(create_app(primary, read_db=down)) as client:
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.json()["replica"]["status"] == "unavailable", health.json()
            assert "swapd_replica_lag_seconds -1.0" in client.get("/metrics").text
    finally:
        down.dispose()
