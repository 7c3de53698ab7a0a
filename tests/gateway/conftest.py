"""A real ``swapd serve`` app on a free port in a background thread, and OCPP station clients."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result

from swapd.gateway.server import MAX_FRAME_BYTES, Gateway, create_app
from swapd.store.database import Database


@dataclass
class LiveServer:
    url: str
    gateway: Gateway


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    db: Database, *, certfile: str | None = None, keyfile: str | None = None
) -> Iterator[LiveServer]:
    """The app ``swapd serve`` runs, under uvicorn on a free port, in a background thread."""
    gateway = Gateway(db)
    port = _free_port()
    config = uvicorn.Config(
        create_app(db, gateway=gateway),
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME_BYTES,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    scheme = "wss" if certfile else "ws"
    try:
        yield LiveServer(f"{scheme}://127.0.0.1:{port}", gateway)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(db: Database) -> Iterator[LiveServer]:
    with serve_in_thread(db) as server:
        yield server


class StationClient(ChargePoint):  # type: ignore[misc]
    """A minimal OCPP 2.1 station that answers RequestBatterySwap as told."""

    request_swap_status = "Accepted"
    swap_requests: list[dict[str, Any]]

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
    server: LiveServer, station_id: str, password: str, *, subprotocol: str = "ocpp2.1"
) -> Connected:
    ws = await websockets.connect(
        f"{server.url}/ocpp/{station_id}",
        subprotocols=[websockets.Subprotocol(subprotocol)],
        additional_headers=basic_auth(station_id, password),
    )
    station = StationClient(station_id, ws)
    station.swap_requests = []
    task = asyncio.create_task(station.start())
    return Connected(station, ws, task)


async def boot(connected: Connected) -> Any:
    return await connected.station.call(
        call.BootNotification(
            charging_station={"model": "SwapCab", "vendor_name": "swapd-tests"}, reason="PowerUp"
        )
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
