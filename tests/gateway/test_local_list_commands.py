"""Sending a station its local list by hand: ``swapd station local-list ST1 [--full]`` and
``POST /api/v1/ops/stations/{id}/local-list``, to a station connected to a running server."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from swapd.cli import app
from swapd.domain.riders import TokenType
from swapd.gateway.server import create_app
from swapd.services import catalog, local_lists
from swapd.services.identity import Role
from swapd.store import schema as t
from swapd.store.database import Database
from tests.api.conftest import staff
from tests.cli_runner import CliRunner
from tests.gateway.conftest import LiveServer
from tests.gateway.offline_station import go_online
from tests.gateway.test_offline_swaps import eventually, seed, station_state

pytestmark = pytest.mark.anyio


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _connected(db: Database) -> bool:
    query = sa.select(t.stations.c.connection_id).where(t.stations.c.id == "ST1")
    return db.read(lambda tx: tx.repo.execute(query).scalar()) is not None


async def test_the_cli_sends_the_whole_list_then_only_what_changed(
    db: Database, live_server: LiveServer
) -> None:
    state = station_state(seed(db))
    online = await go_online(live_server, state)
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["station", "local-list", "ST1", *args, "--database", _url(db)])
        return result.exit_code, result.output

    code, output = await asyncio.to_thread(cli, "--full", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert (result["update_type"], result["version"], result["entries"]) == ("Full", 1, 7)
    assert state.version == 1 and len(state.entries) == 7

    catalog.add_token(db, TokenType.RFID, "CARD-A", rider_id="RA")
    # The server sends the card by itself; then there is nothing left to send.
    await eventually(lambda: state.status_of("ISO14443", "CARD-A") == "Accepted", "CARD-A sent")
    # ... and recorded (the CLI's clock is not the test server's manual one: it must not find
    # the server's push under way, which it would take for a lease run out).
    await eventually(lambda: local_lists.station_list(db, "ST1").version == 2, "v2 recorded")
    code, output = await asyncio.to_thread(cli)
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "ST1's list is current: version 2, 8 entries"
    await online.close()
    await eventually(lambda: not _connected(db), "ST1 recorded as gone")

    code, output = await asyncio.to_thread(cli, "--full")
    # One line of error (the server's own log lines share this process's output here).
    assert code == 2, output
    assert output.strip().splitlines()[-1] == (
        "error: station ST1 is not connected: its list goes when it is (swapd serve)"
    )


async def test_the_api_sends_a_station_its_list(db: Database, live_server: LiveServer) -> None:
    state = station_state(seed(db))
    online = await go_online(live_server, state)
    with TestClient(create_app(db)) as client:
        operator = staff(client, db, Role.OPERATOR)
        support = staff(client, db, Role.SUPPORT)
        path = "/api/v1/ops/stations/ST1/local-list"
        refused = await asyncio.to_thread(
            client.post, path, json={"full": True}, headers=support.headers
        )
        assert refused.status_code == 403
        answer = await asyncio.to_thread(
            client.post, path, json={"full": True}, headers=operator.headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["update_type"], body["version"], body["messages"], body["entries"]) == (
            "Full",
            1,
            1,
            7,
        )
        assert state.status_of("BatterySerial", "A-0") == "Accepted"
        unknown = await asyncio.to_thread(
            client.post, "/api/v1/ops/stations/NOPE/local-list", json={}, headers=operator.headers
        )
        assert unknown.status_code == 404
    await online.close()
