"""The simulator's stations take the console's management commands, so that `swapd demo`'s
console can be tried on them: every command answered, reports and firmware progress recorded."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from swapd.services import station_management as manage
from swapd.sim import network as net
from swapd.sim.config import SimConfig
from swapd.sim.embedded import embedded_server
from swapd.sim.physics import SimClock
from swapd.sim.station import SimStation
from swapd.sim.stats import Stats
from swapd.store.database import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_simulated_station_answers_every_management_command(db: Database) -> None:
    network = net.build(db, SimConfig(stations=1, riders=2, hours=1.0, speed=60.0), random.Random(1))
    spec = network.stations[0]
    stats = Stats()
    with embedded_server(db) as url:
        station = SimStation(
            spec,
            url,
            SimClock(60.0),
            stats,
            response_timeout_s=10.0,
            meter_interval_s=300.0,
            heartbeat_interval_s=300.0,
        )
        await station.start()
        try:
            by, sid = "ops", spec.id
            records = [
                await asyncio.to_thread(manage.reset, db, sid, hard=False, requested_by=by),
                await asyncio.to_thread(
                    lambda: manage.change_availability(
                        db, sid, operative=False, slot_no=1, requested_by=by
                    )
                ),
                await asyncio.to_thread(manage.trigger, db, sid, "status", requested_by=by),
                await asyncio.to_thread(
                    lambda: manage.get_variables(
                        db, sid, [("ChargingStation", "SlotCount")], requested_by=by
                    )
                ),
                await asyncio.to_thread(manage.unlock, db, sid, 2, requested_by=by),
                await asyncio.to_thread(
                    lambda: manage.display_message(
                        db, sid, "Back at 9", minutes=30, requested_by=by, now=datetime.now(UTC)
                    )
                ),
            ]
            report = await asyncio.to_thread(lambda: manage.base_report(db, sid, requested_by=by))
            firmware = await asyncio.to_thread(
                lambda: manage.update_firmware(
                    db,
                    sid,
                    url="https://fw.example/x.bin",
                    retrieve_at=datetime.now(UTC),
                    requested_by=by,
                )
            )
            assert [r.state for r in [*records, report, firmware]] == ["answered"] * 8
            assert records[3].response["getVariableResult"][0]["attributeValue"] == str(len(spec.slots))  # type: ignore[index]
            for _ in range(200):
                if manage.command(db, firmware.id).status == "Installed" and manage.inventory(db, sid):
                    break
                await asyncio.sleep(0.05)
            assert manage.command(db, firmware.id).status == "Installed"
            assert manage.command(db, report.id).status == "Complete"
            assert {v.variable for v in manage.inventory(db, sid)} >= {"SlotCount", "HeartbeatInterval"}
        finally:
            await station.stop()
