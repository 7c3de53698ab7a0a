"""Two real ``swapd serve`` processes behind PgBouncer in transaction mode, as docs/DEPLOY.md lays
them out: swaps from two stations at once, one on each process, and a command queued for a third
station that reaches it when it connects.

Transaction pooling hands each transaction whichever server connection is free, so anything a
client leaves on its session breaks: named prepared statements (SWAPD_PG_PREPARE=off turns them
off), SET outside a transaction, LISTEN. The pool here is smaller than swapd's own, so that
consecutive transactions of one client do land on different server connections. LISTEN goes
straight to PostgreSQL (--listen-database); NOTIFY goes through the pooler with its transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from bench._serve import ServeProcess
from ocpp.routing import on
from ocpp.v21 import call, call_result

from swapd.domain.lifecycle import SwapState
from swapd.domain.riders import TokenType
from swapd.readmodels import swaps as swap_model
from swapd.services import catalog, statements, station_commands, stations
from swapd.services.payments import top_up
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import make_engine
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.conftest import _empty_tables
from tests.deploy.processes import Bouncer, pgbouncer, swapd_serve
from tests.gateway.conftest import (
    LiveServer,
    StationClient,
    battery,
    booted,
    connect,
    network,
    swap_event,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SWAPS_PER_RIDER = 4  # the first takes a pack, each later one returns it and takes another
CHARGED_SLOTS = (1, 2, 3, 4)
EMPTY_SLOTS = (5, 6, 7, 8)
NO_PREPARE = {"SWAPD_PG_PREPARE": "off"}
COMMAND_WAIT_S = 30.0


class ResettableStation(StationClient):
    """A station that accepts Reset and remembers it."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection)
        self.resets: list[str] = []

    @on("Reset")  # type: ignore[misc]
    async def on_reset(self, type: str, **_: Any) -> Any:
        self.resets.append(type)
        return call_result.Reset(status="Accepted")


@pytest.fixture
def direct_url(pg_url: str) -> str:
    _empty_tables(pg_url)
    return pg_url


@pytest.fixture
def bouncer(direct_url: str) -> Iterator[Bouncer]:
    with pgbouncer(direct_url) as running:
        yield running


@pytest.fixture
def direct(direct_url: str) -> Iterator[Database]:
    """The primary straight, on the system clock the servers use: the test's own set-up and
    checks."""
    db = Database(make_engine(direct_url))
    yield db
    db.dispose()


def _listening_backends(db: Database) -> int:
    """Server sessions whose last statement was a LISTEN of the gateway (one session a server
    process, for the commands' and the connections' channels). Through the pooler that session
    would be reused by the next transaction (and the LISTEN lost with it); straight to
    PostgreSQL it stays."""
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query IN (:commands, :connections)"
                ),
                {
                    "commands": f"LISTEN {station_commands.CHANNEL}",
                    "connections": f"LISTEN {stations.CONNECTIONS_CHANNEL}",
                },
            ).scalar_one()
        )


def _set_up(db: Database) -> dict[str, str]:
    passwords = network(db)  # ST1 and ST2, 8 slots each; the energy plan
    passwords["ST3"] = net.password(db, net.station(db, "ST3"))
    for station_id, rider_id in (("ST1", "R1"), ("ST2", "R2")):
        for slot in CHARGED_SLOTS:
            catalog.register_pack(
                db, f"{station_id}-P{slot}", "G2", soc=100, soh=100, station_id=station_id, slot_no=slot
            )
        catalog.add_rider(db, rider_id, "energy")
        catalog.add_token(db, TokenType.RFID, f"CARD-{rider_id}", rider_id=rider_id)
        top_up(db, rider_id, 10_000, f"pay-{rider_id}")
    return passwords


async def _ride(server: ServeProcess, station_id: str, password: str, rider_id: str) -> None:
    """SWAPS_PER_RIDER swaps of one rider at one station, over a real socket."""
    station = await booted(LiveServer(server.ws), station_id, password)
    card = {"idToken": f"CARD-{rider_id}", "type": "ISO14443"}
    empty = list(EMPTY_SLOTS)
    held: str | None = None
    for n in range(SWAPS_PER_RIDER):
        answer = await station.station.call(call.Authorize(id_token=card), suppress=False)
        assert answer.id_token_info["status"] == "Accepted", answer
        (slot,) = answer.id_token_info["evse_id"]
        request_id = 100 + n
        if held is not None:
            back = empty.pop(0)
            returned = swap_event(request_id, "BatteryIn", card, [battery(back, held, 20.0)])
            await station.station.call(returned, suppress=False)
        taken = f"{station_id}-P{slot}"
        out = swap_event(request_id, "BatteryOut", card, [battery(slot, taken, 100.0)])
        await station.station.call(out, suppress=False)
        empty.append(slot)
        held = taken
    await station.close()


async def _listen_once(url: str, ready: asyncio.Event) -> str:
    """The payload of the first notification on the commands channel, LISTENing straight."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(f"LISTEN {station_commands.CHANNEL}")
        ready.set()
        async for notification in connection.notifies():
            return notification.payload
    raise AssertionError("unreachable")


def _command_state(db: Database, command_id: int) -> str:
    with db.engine.connect() as connection:
        return str(
            connection.execute(
                sa.select(t.station_commands.c.state).where(t.station_commands.c.id == command_id)
            ).scalar_one()
        )


async def test_swaps_and_a_queued_command_work_through_pgbouncer_in_transaction_mode(
    direct_url: str,
    bouncer: Bouncer,
    direct: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passwords = _set_up(direct)
    pooled_url = bouncer.url(direct_url)
    flags = ("--database", pooled_url, "--listen-database", direct_url)
    with (
        swapd_serve(tmp_path / "a.log", *flags, env=NO_PREPARE) as server_a,
        swapd_serve(tmp_path / "b.log", *flags, env=NO_PREPARE) as server_b,
    ):
        # Two processes, two stations, at the same time: their transactions interleave on the
        # pooler's few server connections.
        await asyncio.gather(
            _ride(server_a, "ST1", passwords["ST1"], "R1"),
            _ride(server_b, "ST2", passwords["ST2"], "R2"),
        )
        for rider_id in ("R1", "R2"):
            done = swap_model.swaps(direct, rider_id=rider_id, state=SwapState.COMPLETED.value)
            assert len(done) == SWAPS_PER_RIDER, (rider_id, done)
        with direct.engine.connect() as connection:
            report = check_ledger(connection)
        assert report.ok, report.problems
        # Both dispatchers still LISTEN on a session of their own after all that traffic.
        assert _listening_backends(direct) == 2

        # A command queued through the pooler for a station that is away: its NOTIFY arrives.
        ready = asyncio.Event()
        heard = asyncio.create_task(
            _listen_once(
                sa.make_url(direct_url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False),
                ready,
            )
        )
        await asyncio.wait_for(ready.wait(), timeout=10)
        monkeypatch.setenv("SWAPD_PG_PREPARE", "off")
        pooled = Database(make_engine(pooled_url))
        try:
            command_id = await asyncio.to_thread(
                station_commands.enqueue,
                pooled,
                "ST3",
                "Reset",
                {"type": "OnIdle"},
                timeout_s=30,
                queue_s=600,
            )
            # The statements export through the pooler too: SET LOCAL and a server-side cursor,
            # both inside its one transaction.
            now = datetime.now(UTC)
            exported = await asyncio.to_thread(
                statements.export_csv, pooled, statements.Month(now.year, now.month), tmp_path / "s.csv"
            )
            assert exported.riders == 2 and exported.totals["topup_minor"] == 20_000
        finally:
            pooled.dispose()
        assert await asyncio.wait_for(heard, timeout=10) == "ST3"

        # The station connects to one of the processes and boots: the command reaches it.
        st3 = await connect(LiveServer(server_b.ws), "ST3", passwords["ST3"], client=ResettableStation)
        await st3.station.call(
            call.BootNotification(
                charging_station={"model": "SwapCab", "vendor_name": "swapd-tests"}, reason="PowerUp"
            )
        )
        deadline = time.monotonic() + COMMAND_WAIT_S
        while _command_state(direct, command_id) != station_commands.CommandState.ANSWERED:
            assert time.monotonic() < deadline, _command_state(direct, command_id)
            await asyncio.sleep(0.1)
        assert isinstance(st3.station, ResettableStation)
        assert st3.station.resets == ["OnIdle"]
        await st3.close()

    for server in (server_a, server_b):
        log = server.log_text()
        assert "Traceback" not in log, log[-3000:]
        assert "prepared statement" not in log, log[-3000:]
        assert "command_listen_reconnect" not in log, log[-3000:]
