"""Several server processes on one PostgreSQL database: two ``swapd serve`` on two ports (what
``--workers`` runs behind one port), and ``swapd serve --workers 2`` itself.

A station continues on whichever process it reaches: a swap started on one is finished on the
other, without booting again; a command posted to one process's API reaches the station through
the process that holds its socket; a station connected twice keeps only its newest socket.

Each test runs real ``swapd serve`` processes; the two servers are shared by the module.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from bench._serve import ServeProcess, free_port, launch, stop, wait_until_serving
from ocpp.v21 import call

from swapd.domain.riders import TokenType
from swapd.gateway import workers
from swapd.gateway.presence import DISABLED, REPLACED, SWEEP_INTERVAL_S
from swapd.services import catalog, identity, stations
from swapd.services.identity import Role
from swapd.services.payments import top_up
from swapd.store import schema as t
from swapd.store.database import Database
from tests import network as net
from tests.api.conftest import PASSWORD, bearer
from tests.gateway.conftest import Connected, LiveServer, battery, connect, swap_event
from tests.gateway.offline_station import StationState, go_online
from tests.gateway.test_station_management import ManagedStation
from tests.integration.crashing_worker import EXIT_CODE, crash
from tests.pg_databases import require_postgres, temporary_database

pytestmark = pytest.mark.anyio
postgres = pytest.mark.postgres

START_TIMEOUT_S = 120.0  # Python's start on a loaded two-core machine, twice over
STOP_TIMEOUT_S = 45.0
_emails = itertools.count(1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shared_url() -> Iterator[str]:
    """A PostgreSQL database of this module's own (its servers outlive any one test)."""
    require_postgres()
    with temporary_database("swapd_workers", migrated_to="head") as url:  # before any server starts
        database = Database.open(url)
        net.network(database, station_ids=())  # the pack model and the energy plan
        database.dispose()
        yield url


@contextmanager
def _serving(url: str, *args: str, servers: int = 1, processes: int = 1) -> Iterator[list[ServeProcess]]:
    """``servers`` ``swapd serve ARGS`` processes on ``url``, started together; the block begins
    once each has its ``processes`` started, and ends with each stopped and its log removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWAPD_", "STRIPE_"))}
    env["SWAPD_DATABASE_URL"] = url
    started: list[ServeProcess] = []
    try:
        for _ in range(servers):
            handle, log = tempfile.mkstemp(prefix="swapd-workers-test-", suffix=".log")
            os.close(handle)
            started.append(launch(args, env=env, log_path=Path(log)))
        for server in started:
            wait_until_serving(server, workers=processes, timeout_s=START_TIMEOUT_S)
        yield started
    finally:
        for server in started:
            stop(server, timeout_s=STOP_TIMEOUT_S)
            server.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def two_servers(shared_url: str) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two ``swapd serve`` processes on the one database, each on its own port."""
    with _serving(shared_url, servers=2) as (first, second):
        yield first, second


@pytest.fixture
def shared_db(shared_url: str) -> Iterator[Database]:
    database = Database.open(shared_url)
    yield database
    database.dispose()


@dataclass
class Station:
    """A station added for one test (the database is the module's), and its password."""

    id: str
    password: str

    async def connect(self, server: ServeProcess, *, boot: bool = True) -> Connected:
        """Its socket to ``server``, as a ManagedStation; booted first unless ``boot`` is False
        (a station that reconnects, or one that boots later)."""
        connected = await connect(LiveServer(server.ws), self.id, self.password, client=ManagedStation)
        if boot:
            await _boot(connected)
        return connected


def _stations(db: Database, *station_ids: str) -> list[Station]:
    """Stations of this test only, each with a password of its own."""
    added = []
    for station_id in station_ids:
        catalog.add_station(db, station_id, 8)
        added.append(Station(station_id, stations.set_password(db, station_id)))
    return added


async def _boot(connected: Connected) -> None:
    answer = await connected.station.call(
        call.BootNotification(
            charging_station={"model": "SwapCab", "vendor_name": "swapd-tests"}, reason="PowerUp"
        )
    )
    assert answer.status == "Accepted"


@asynccontextmanager
async def _operator(db: Database, http: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of one server's API, logged in as an operator."""
    email = f"operator-workers{next(_emails)}-{uuid.uuid4().hex[:6]}@example.com"
    await asyncio.to_thread(identity.add_staff, db, email, PASSWORD, Role.OPERATOR)
    async with httpx.AsyncClient(base_url=http, timeout=60) as client:
        answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers.update(bearer(answer.json()["token"]))
        yield client


def _connection_id(db: Database, station_id: str) -> str | None:
    return db.read(
        lambda tx: tx.repo.execute(
            sa.select(t.stations.c.connection_id).where(t.stations.c.id == station_id)
        ).scalar()
    )


async def _until(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.05)


@postgres
async def test_a_swap_started_on_one_server_is_finished_on_the_other(
    two_servers: tuple[ServeProcess, ServeProcess], shared_db: Database
) -> None:
    a, b = two_servers
    (station,) = _stations(shared_db, "WK-SWAP")
    catalog.register_pack(shared_db, "WK-B1", "G2", soc=100, soh=100, station_id="WK-SWAP", slot_no=1)
    catalog.add_rider(shared_db, "WK-R1", "energy")
    catalog.add_token(shared_db, TokenType.RFID, "CARD-WK-R1", rider_id="WK-R1")
    top_up(shared_db, "WK-R1", 10_000, "wk-pay-1")
    card = {"idToken": "CARD-WK-R1", "type": "ISO14443"}

    on_a = await station.connect(a)
    offer = (await on_a.station.call(call.Authorize(id_token=card))).id_token_info
    assert offer["status"] == "Accepted" and offer["evse_id"] == [1]
    await on_a.close()

    # On B, without a BootNotification: B knows from the database that the station booted.
    on_b = await station.connect(b, boot=False)
    out = swap_event(41, "BatteryOut", card, [battery(1, "WK-B1", 100.0)])
    assert await on_b.station.call(out) is not None
    await on_b.station.call(out)  # the retransmit a station sends after a reconnect: no change
    swaps = shared_db.read(
        lambda tx: tx.repo.execute(
            sa.select(t.swaps.c.state).where(t.swaps.c.station_id == "WK-SWAP")
        ).all()
    )
    assert [row.state for row in swaps] == ["completed"]
    pack = shared_db.read(
        lambda tx: tx.repo.execute(
            sa.select(t.packs.c.status, t.packs.c.rider_id).where(t.packs.c.serial == "WK-B1")
        ).one()
    )
    assert (pack.status, pack.rider_id) == ("with_rider", "WK-R1")
    await on_b.close()


@postgres
async def test_a_command_posted_to_one_server_reaches_the_station_on_the_other(
    two_servers: tuple[ServeProcess, ServeProcess], shared_db: Database
) -> None:
    a, b = two_servers
    (station,) = _stations(shared_db, "WK-CMD")
    on_b = await station.connect(b)
    async with _operator(shared_db, a.http) as api_a:
        answer = await api_a.post(
            "/api/v1/ops/stations/WK-CMD/commands", json={"command": "unlock", "slot": 2}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["action"], body["state"], body["answer_status"]) == (
        "UnlockConnector",
        "answered",
        "Unlocked",
    )
    managed: ManagedStation = on_b.station  # type: ignore[assignment]
    assert [action for action, _ in managed.received] == ["UnlockConnector"]
    await on_b.close()


@postgres
async def test_a_station_connected_to_both_keeps_only_its_newest_socket(
    two_servers: tuple[ServeProcess, ServeProcess], shared_db: Database
) -> None:
    a, b = two_servers
    (station,) = _stations(shared_db, "WK-TWICE")
    old = await station.connect(a)
    first = _connection_id(shared_db, "WK-TWICE")
    new = await station.connect(b, boot=False)
    await _until(lambda: _connection_id(shared_db, "WK-TWICE") not in (None, first), 30)

    # A closes its socket as one server closes a replaced one: at once (the NOTIFY), well
    # before its sweep would have.
    started = time.monotonic()
    await asyncio.wait_for(old.ws.wait_closed(), timeout=SWEEP_INTERVAL_S * 3)
    assert (old.ws.close_code, old.ws.close_reason) == (1000, REPLACED)
    assert time.monotonic() - started < SWEEP_INTERVAL_S
    # The newest socket stays, and commands go through it whichever server is asked.
    async with _operator(shared_db, a.http) as api_a:
        answer = await api_a.post(
            "/api/v1/ops/stations/WK-TWICE/commands", json={"command": "unlock", "slot": 1}
        )
    assert answer.status_code == 200 and answer.json()["state"] == "answered", answer.text
    managed: ManagedStation = new.station  # type: ignore[assignment]
    assert [action for action, _ in managed.received] == ["UnlockConnector"]
    assert new.ws.close_code is None
    await new.close()
    old.task.cancel()


@postgres
async def test_a_station_disabled_through_one_server_is_closed_by_the_other(
    two_servers: tuple[ServeProcess, ServeProcess], shared_db: Database
) -> None:
    a, b = two_servers
    (station,) = _stations(shared_db, "WK-OFF")
    on_b = await station.connect(b)
    await _until(lambda: _connection_id(shared_db, "WK-OFF") is not None, 30)
    async with _operator(shared_db, a.http) as api_a:
        answer = await api_a.post(
            "/api/v1/ops/stations/WK-OFF/disable", json={"reason": "vandalised cabinet"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["connected"] is False
        started = time.monotonic()
        await asyncio.wait_for(on_b.ws.wait_closed(), timeout=SWEEP_INTERVAL_S * 3)
        assert (on_b.ws.close_code, on_b.ws.close_reason) == (1008, DISABLED)
        assert time.monotonic() - started < SWEEP_INTERVAL_S  # the NOTIFY, not the sweep
        await _until(lambda: _connection_id(shared_db, "WK-OFF") is None, 30)
        listed = (await api_a.get("/api/v1/ops/stations/WK-OFF")).json()
        assert listed["connected"] is False and listed["enabled"] is False
    on_b.task.cancel()


@postgres
async def test_a_station_that_moves_to_the_other_server_keeps_its_local_list_version(
    two_servers: tuple[ServeProcess, ServeProcess], shared_db: Database
) -> None:
    a, b = two_servers
    (station,) = _stations(shared_db, "WK-LIST")
    catalog.add_rider(shared_db, "WK-RL", "energy")
    top_up(shared_db, "WK-RL", 10_000, "wk-pay-rl")
    state = StationState(station.id, station.password, {})
    on_a = await go_online(LiveServer(a.ws), state)
    async with _operator(shared_db, a.http) as api_a:
        answer = await api_a.post("/api/v1/ops/stations/WK-LIST/local-list", json={"full": True})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["update_type"], state.version) == ("Full", 1)
    await on_a.close()
    await _until(lambda: _connection_id(shared_db, "WK-LIST") is None, 30)

    catalog.add_token(shared_db, TokenType.RFID, "CARD-WK-RL", rider_id="WK-RL")
    sent_before = len(state.updates)
    on_b = await go_online(LiveServer(b.ws), state)
    # B asks the version, finds the one A sent (recorded in the database) and sends only what
    # changed since: a differential update, not the whole list again.
    await _until(lambda: state.status_of("ISO14443", "CARD-WK-RL") == "Accepted", 60)
    assert [(kind, version) for _, kind, version in state.updates[sent_before:]] == [("Differential", 2)]
    await on_b.close()


@postgres
async def test_workers_share_one_port_spread_the_stations_and_stop_together(
    shared_url: str, shared_db: Database
) -> None:
    ids = [f"WK-N{n:02d}" for n in range(16)]
    added = _stations(shared_db, *ids)
    with _serving(shared_url, "--workers", "2", processes=2) as (server,):
        connected = [await station.connect(server, boot=False) for station in added]
        for station in connected:
            await _boot(station)

        # Every station is served, and answers a command posted to whichever worker.
        async with _operator(shared_db, server.http) as api:
            for station_id in ids:
                answer = await api.post(
                    f"/api/v1/ops/stations/{station_id}/commands",
                    json={"command": "unlock", "slot": 1},
                )
                assert answer.status_code == 200 and answer.json()["state"] == "answered", answer.text
            metrics = (await api.get("/metrics")).text
        by_worker = Counter(
            line["worker"] for line in server.log_records() if line["event"] == "station_connected"
        )
        assert sorted(by_worker) == [0, 1] and sum(by_worker.values()) == 16, by_worker
        # /metrics counts every worker, whichever answers.
        assert "swapd_connected_stations 16.0" in metrics.splitlines()
        assert 'swapd_station_commands_total{action="UnlockConnector",outcome="answered"} 16.0' in (
            metrics.splitlines()
        )

        # A worker killed is started again; the stations it held are no longer counted.
        dead = next(
            line["pid"]
            for line in server.log_records()
            if line["event"] == "worker_started" and line["worker"] == 1
        )
        os.kill(dead, signal.SIGKILL)
        await _until(lambda: server.started_workers() == 3, START_TIMEOUT_S)
        died = [line for line in server.log_records() if line["event"] == "worker_died"]
        assert [(line["worker"], line["pid"], line["exit_code"]) for line in died] == [
            (1, dead, -signal.SIGKILL)
        ]
        async with httpx.AsyncClient(base_url=server.http, timeout=60) as client:
            metrics = (await client.get("/metrics")).text
        assert f"swapd_connected_stations {by_worker[0]:.1f}" in metrics.splitlines()

        assert stop(server, timeout_s=STOP_TIMEOUT_S) == 0
        for station in connected:
            await asyncio.wait_for(station.ws.wait_closed(), timeout=10)
            station.task.cancel()
        events = [line["event"] for line in server.log_records()]
        assert sum(1 for e in events if e.startswith("Finished server process")) == 2  # 0, new 1
        assert events[-1] == "workers_stopped"


def test_workers_on_sqlite_are_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWAPD_", "STRIPE_"))}
    result = subprocess.run(
        [sys.executable, "-m", "swapd.cli", "serve", "--database", "./x.db", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --workers 2 needs PostgreSQL: "), lines
    assert "one writer" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing opened


def test_a_worker_that_keeps_dying_is_started_again_until_the_supervisor_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "RESTART_DELAY_S", 0.05)
    settings = workers.WorkerSettings(None, "127.0.0.1", free_port(), None, None, None, None, True)
    supervisor = workers.Supervisor(settings, 1, target=crash)
    assert supervisor.run() == 1
    assert supervisor.restarts == workers.MAX_RESTARTS
    assert [p.exitcode for p in supervisor.workers.values()] == [EXIT_CODE]


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie nobody reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@postgres
def test_workers_stop_themselves_when_their_supervisor_is_killed(shared_url: str) -> None:
    with _serving(shared_url, "--workers", "2", processes=2) as (server,):
        pids = [line["pid"] for line in server.log_records() if line["event"] == "worker_started"]
        assert len(pids) == 2 and all(_running(pid) for pid in pids)
        server.process.kill()  # SIGKILL: the supervisor cannot forward anything
        server.process.wait()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(_running(pid) for pid in pids):
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            time.sleep(0.1)
        events = [line["event"] for line in server.log_records()]
        assert sum(1 for e in events if e.startswith("Finished server process")) == 2  # gracefully
