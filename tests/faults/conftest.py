"""A small network behind a live server for the targeted fault tests: stations ST1..ST3 with
identical charged stock, and riders who each hold one identical pack, so that two riders put
through the same swap in different ways must end with identical books."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from faults.client import StationClient

from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, swaps
from swapd.services.swaps import BatteryReading
from swapd.sim.embedded import embedded_server
from swapd.store import schema as t
from swapd.store.database import Database
from tests import network
from tests.plans import ENERGY

STATIONS = ("ST1", "ST2", "ST3")
SLOTS = 8
STOCK_SLOTS = 4  # slots 1-4 hold charged packs; 5-8 are empty for returns
RIDERS = ("R1", "R2", "R3", "R4")
TOP_UP_MINOR = 100_000
RIDER_SOC_OUT_PCT = 100


@dataclass
class Net:
    url: str  # ws:// of the live server
    passwords: dict[str, str]

    def client(self, station_id: str) -> StationClient:
        return StationClient(self.url, station_id, self.passwords[station_id])

    def pack_of(self, rider_id: str) -> str:
        return f"{rider_id}-PACK"


def _hand_out(db: Database, rider_id: str, serial: str) -> None:
    """The rider's pack, handed over at a depot through the app path (S02)."""
    catalog.register_pack(
        db, serial, "G2", soc=RIDER_SOC_OUT_PCT, soh=100, station_id="DEPOT", slot_no=1
    )
    token = IdToken(TokenType.APP, rider_id)
    request_id = f"setup-{rider_id}"
    decision = swaps.authorize(db, "DEPOT", token, request_id=request_id)
    assert decision.accepted and [o.serial for o in decision.offered] == [serial], decision
    reading = BatteryReading.parse(1, serial, RIDER_SOC_OUT_PCT, 100)
    swaps.battery_out(db, "DEPOT", request_id, [reading], token=token)


def build(db: Database) -> dict[str, str]:
    network.pack_model(db)
    network.plans(db, ENERGY)
    network.station(db, "DEPOT", slot_count=2)
    passwords = {}
    for station_id in STATIONS:
        network.station(db, station_id, slot_count=SLOTS)
        passwords[station_id] = network.password(db, station_id)
        network.packs_in_slots(db, station_id, range(1, STOCK_SLOTS + 1))
    for rider_id in RIDERS:
        network.rider(db, rider_id, top_up_minor=TOP_UP_MINOR, payment_ref=f"{rider_id}-pay")
        _hand_out(db, rider_id, f"{rider_id}-PACK")
    return passwords


@pytest.fixture
def net(db: Database) -> Iterator[Net]:
    passwords = build(db)
    with embedded_server(db) as url:
        yield Net(url, passwords)


async def booted(net: Net, station_id: str) -> StationClient:
    client = net.client(station_id)
    await client.open()
    await client.boot()
    return client


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def table_counts(db: Database) -> dict[str, int]:
    def work(tx: Any) -> dict[str, int]:
        return {
            table.name: int(tx.repo.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in (t.swaps, t.station_events, t.possessions, t.transfers, t.alerts)
        }

    return db.read(work)


def alerts(db: Database) -> list[tuple[str, str | None, str | None]]:
    def work(tx: Any) -> list[tuple[str, str | None, str | None]]:
        rows = tx.repo.execute(sa.select(t.alerts.c.kind, t.alerts.c.station_id, t.alerts.c.pack_serial))
        return [(r.kind, r.station_id, r.pack_serial) for r in rows]

    return db.read(work)
