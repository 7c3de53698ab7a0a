"""A swap requested at a station that no server process holds: StationOffline within seconds,
naming when the station was last seen, instead of a long wait and a false "no charged battery".

Presence is what the server processes record on connect and disconnect (stations.connected_at,
connection_id); these tests drive it through a real server and real OCPP clients where they can."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ocpp.routing import on

from swapd.domain.errors import StationOffline
from swapd.readmodels.money import rider_balance
from swapd.services import app_swaps, stations
from swapd.services import station_commands as commands
from swapd.sim.embedded import embedded_server
from swapd.store.database import Database
from tests import network as net
from tests.gateway.conftest import LiveServer, StationClient, boot, booted, connect

pytestmark = pytest.mark.anyio
NEVER = "station ST1 is not connected (never connected)"
LAST_SEEN = "station ST1 is not connected (last seen 2026-11-02T09:00:00+00:00)"
COMMAND = ("swap", "request", "--station", "ST1", "--rider", "R1")
QUICK_S = 3.0  # "within a few seconds": nothing here waits for a command's whole timeout


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live(db: Database) -> Iterator[LiveServer]:
    with embedded_server(db) as url:
        yield LiveServer(url)


def _network(db: Database) -> str:
    """Station ST1 with a charged pack in slot 2, rider R1 with credit; ST1's password."""
    net.network(db, station_ids=("ST1",))
    net.pack(db, "B-0001", station_id="ST1", slot_no=2)
    net.rider(db, "R1", top_up_minor=10_000, payment_ref="pay-1")
    return net.password(db, "ST1")


def _request(db: Database, timeout_s: float = 30) -> tuple[StationOffline, float]:
    started = time.monotonic()
    with pytest.raises(StationOffline) as raised:
        app_swaps.request_swap(db, "ST1", "R1", timeout_s=timeout_s)
    return raised.value, time.monotonic() - started


async def _until_disconnected(db: Database) -> None:
    for _ in range(200):
        if not stations.presence(db, "ST1").connected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server did not record the disconnection")


def test_a_station_that_never_connected_is_offline_at_once(db: Database) -> None:
    _network(db)
    error, took_s = _request(db)
    assert (error.code, error.message) == ("station_offline", NEVER)
    assert took_s < QUICK_S
    assert rider_balance(db, "R1").held_units == 0  # the offer was abandoned: nothing held


async def test_a_station_that_connected_and_left_is_offline_with_when_it_was_last_seen(
    db: Database, live: LiveServer
) -> None:
    password = _network(db)
    st1 = await booted(live, "ST1", password)
    assert stations.presence(db, "ST1").connected
    await st1.close()
    await _until_disconnected(db)

    error, took_s = await asyncio.to_thread(_request, db)
    assert error.message == LAST_SEEN and took_s < QUICK_S
    assert rider_balance(db, "R1").held_units == 0


class SilentStation(StationClient):
    """Takes RequestBatterySwap and never answers: its socket is closed while the server waits."""

    @on("RequestBatterySwap")  # type: ignore[misc]
    async def on_request_battery_swap(self, id_token: dict[str, Any], request_id: int, **_: Any) -> Any:
        self.swap_requests.append({"id_token": id_token, "request_id": request_id})
        await asyncio.sleep(3600)


async def test_a_station_that_drops_off_before_answering_is_offline_not_a_refusal(
    db: Database, live: LiveServer
) -> None:
    password = _network(db)
    st1 = await connect(live, "ST1", password, client=SilentStation)
    silent = st1.station
    assert (await boot(st1)).status == "Accepted"

    request = asyncio.create_task(asyncio.to_thread(_request, db))
    for _ in range(500):
        if silent.swap_requests:
            break
        await asyncio.sleep(0.02)
    assert silent.swap_requests, "the command did not reach the station"
    await st1.close()
    error, took_s = await request
    assert error.message == LAST_SEEN
    assert took_s < 10  # not the command's 30 s timeout
    assert rider_balance(db, "R1").held_units == 0


PICKUP_S = 0.5  # the pickup wait here, a tenth of the product's PICKUP_TIMEOUT_S


def test_a_station_recorded_connected_that_no_process_holds_is_offline_after_the_pickup_wait(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server process that died holding the station: its record says connected, but no process
    claims the command, so the request ends after the pickup wait, not after its timeout. The
    wait is shortened through wait_for's pickup_s; the request's timeout stays 30 s."""
    _network(db)
    stations.record_connected(db, "ST1", "gone-process")
    monkeypatch.setattr(commands, "wait_for", functools.partial(commands.wait_for, pickup_s=PICKUP_S))
    error, took_s = _request(db, timeout_s=30)
    assert error.message.startswith("station ST1 is not connected (last seen ")
    # At least the pickup wait: the connected record was believed until nobody took the command.
    assert PICKUP_S <= took_s < PICKUP_S + QUICK_S


def test_a_late_disconnect_of_an_old_connection_keeps_the_newer_one(db: Database) -> None:
    _network(db)
    stations.record_connected(db, "ST1", "first")
    stations.record_connected(db, "ST1", "second")  # reconnected, perhaps to another process
    assert stations.record_disconnected(db, "ST1", "first") is False
    assert stations.presence(db, "ST1").connected
    assert stations.record_disconnected(db, "ST1", "second") is True
    assert not stations.presence(db, "ST1").connected


def _swapd(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "swapd.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="80"),
        check=False,
        timeout=60,
    )
    return done, time.monotonic() - started


def test_swap_request_on_the_command_line_with_no_server_fails_in_seconds(
    db_url: str, db: Database
) -> None:
    _network(db)
    done, took_s = _swapd(*COMMAND, "--database", db_url)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.splitlines() == [f"error: {NEVER}"]
    # Under 5 s; on a busy machine Python's start and swapd's imports alone may take 3 s of it.
    # The reference opens the same database through the services (`--help` imports neither).
    _, start_s = _swapd("rider", "list", "--database", db_url)
    assert took_s < max(5.0, start_s + QUICK_S)
