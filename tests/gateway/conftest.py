"""A real ``swapd serve`` app on a free port in a background thread, and OCPP station clients."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result

from swapd.domain.plans import Plan
from swapd.sim.embedded import embedded_server
from swapd.store.database import Database
from tests import network as net


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_server(db: Database) -> Iterator[LiveServer]:
    """The app ``swapd serve`` runs, under uvicorn on a free port, in a background thread."""
    with embedded_server(db) as url:
        yield LiveServer(url)


class StationClient(ChargePoint):  # type: ignore[misc]
    """A minimal OCPP 2.1 station that answers RequestBatterySwap as told."""

    request_swap_status = "Accepted"

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection)
        self.swap_requests: list[dict[str, Any]] = []

    @on("RequestBatterySwap")  # type: ignore[misc]
    async def on_request_battery_swap(self, id_token: dict[str, Any], request_id: int, **_: Any) -> Any:
        self.swap_requests.append({"id_token": id_token, "request_id": request_id})
        return call_result.RequestBatterySwap(status=self.request_swap_status)


def basic_auth(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Connected:
    station: StationClient
    ws: Any
    task: asyncio.Task[None]

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def connect(
    server: LiveServer,
    station_id: str,
    password: str,
    *,
    subprotocol: str = "ocpp2.1",
    client: type[StationClient] = StationClient,
) -> Connected:
    ws = await websockets.connect(
        f"{server.url}/ocpp/{station_id}",
        subprotocols=[websockets.Subprotocol(subprotocol)],
        additional_headers=basic_auth(station_id, password),
    )
    station = client(station_id, ws)
    task = asyncio.create_task(station.start())
    return Connected(station, ws, task)


async def boot(connected: Connected) -> Any:
    return await connected.station.call(
        call.BootNotification(
            charging_station={"model": "SwapCab", "vendor_name": "swapd-tests"}, reason="PowerUp"
        )
    )


async def booted(server: LiveServer, station_id: str, password: str) -> Connected:
    connected = await connect(server, station_id, password)
    assert (await boot(connected)).status == "Accepted"
    return connected


def network(db: Database, *plans: Plan) -> dict[str, str]:
    """tests/network.py's network with passwords: the stations' passwords by station."""
    return net.network(db, *plans, with_passwords=True)


def swap_event(request_id: int, event: str, token: dict[str, str], data: list[dict[str, Any]]) -> Any:
    return call.BatterySwap(battery_data=data, event_type=event, id_token=token, request_id=request_id)


def battery(slot: int, serial: str, soc: float, soh: float = 100.0) -> dict[str, Any]:
    # Plain dicts with the wire names: the ocpp package camel-cases 'soc' to 'SoC' otherwise.
    return {"evseId": slot, "serialNumber": serial, "soC": soc, "soH": soh}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
