"""Duplicated, reordered and replayed OCPP messages, and one pack at two stations at once.

Twin riders: R1, R2 and R3 hold identical packs and have paid the same, and ST1..ST3 hold
identical stock. R1 swaps in order at ST1; the others go through the same swap with the fault
under test. The books must come out identical, which a double charge or a lost event breaks.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from faults.client import StationClient, battery, meter_soc, swap_event

from swapd.readmodels import money, stations
from swapd.readmodels.packs import all_packs
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.ledger_check import check_ledger
from tests.faults.conftest import Net, alerts, booted, run, table_counts

SOC_IN_PCT = 40.0
RETURN_SLOT = 5


def token(rider_id: str) -> dict[str, str]:
    return {"idToken": f"{rider_id}-PACK", "type": "BatterySerial"}


def books(db: Database, rider_id: str) -> tuple[int, ...]:
    b = money.rider_balance(db, rider_id)
    return (
        b.posted_units,
        b.held_units,
        b.available_units,
        b.overdrawn_units,
        b.prepaid_minor,
        b.receivable_minor,
        len(b.packs_held),
    )


def ledger_ok(db: Database) -> bool:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.problems == []
    return report.ok


async def authorize(client: StationClient, rider_id: str) -> dict[str, Any]:
    answer = await client.call("Authorize", {"idToken": token(rider_id)})
    return dict(answer["idTokenInfo"])


def swap_in(rider_id: str, request_id: int) -> dict[str, Any]:
    data = [battery(RETURN_SLOT, f"{rider_id}-PACK", SOC_IN_PCT, 100)]
    return swap_event("BatteryIn", request_id, token(rider_id), data)


def swap_out(rider_id: str, request_id: int, station_id: str, slot_no: int) -> dict[str, Any]:
    data = [battery(slot_no, f"{station_id}-P{slot_no}", 100, 100)]
    return swap_event("BatteryOut", request_id, token(rider_id), data)


async def in_order(net: Net, station_id: str, rider_id: str) -> int:
    """The reference: Authorize, BatteryIn, BatteryOut, each once; the slot taken."""
    client = await booted(net, station_id)
    info = await authorize(client, rider_id)
    assert info["status"] == "Accepted"
    slot_no = int(info["evseId"][0])
    assert await client.call("BatterySwap", swap_in(rider_id, 1)) == {}
    assert await client.call("BatterySwap", swap_out(rider_id, 1, station_id, slot_no)) == {}
    await client.close()
    return slot_no


def test_duplicated_and_reordered_swap_events_change_nothing(db: Database, net: Net) -> None:
    async def scenario() -> None:
        slot_no = await in_order(net, "ST1", "R1")
        reference = books(db, "R1")
        client = await booted(net, "ST2")
        first = await authorize(client, "R2")
        assert await authorize(client, "R2") == first  # a repeated Authorize gets the same offer
        assert first["evseId"] == [slot_no]
        # BatteryOut overtakes BatteryIn, and each is delivered twice (a resend after a lost
        # answer), one of them on a new connection.
        assert await client.call("BatterySwap", swap_out("R2", 9, "ST2", slot_no)) == {}
        assert await client.call("BatterySwap", swap_in("R2", 9)) == {}
        counts = table_counts(db)
        client.abort()
        assert await client.call("BatterySwap", swap_out("R2", 9, "ST2", slot_no)) == {}
        assert await client.call("BatterySwap", swap_in("R2", 9)) == {}
        assert table_counts(db) == counts
        await client.close()
        assert books(db, "R2") == reference
        assert money.rider_balance(db, "R2").packs_held == (f"ST2-P{slot_no}",)
        slots = {s.slot_no: s.pack_serial for s in stations.station_view(db, "ST2").slots}
        assert slots[RETURN_SLOT] == "R2-PACK" and slots[slot_no] is None

    run(scenario())
    assert ledger_ok(db)


def test_offline_queue_replayed_with_original_timestamps(db: Database, net: Net) -> None:
    """ST3 was offline: it let R3 swap on its own authority and queued the messages, with the
    times they happened (two hours ago). On reconnect it replays the queue in order; BatterySwap
    carries no timestamp, so energy metering (SoC-based) must come out as if it were online."""
    queued_at = datetime.now(UTC) - timedelta(hours=2)

    def ts(minutes: int) -> str:
        return (
            (queued_at + timedelta(minutes=minutes)).isoformat(timespec="seconds").replace("+00:00", "Z")
        )

    async def scenario() -> None:
        slot_no = await in_order(net, "ST1", "R1")
        reference = books(db, "R1")
        client = await booted(net, "ST3")
        occupied = {
            "timestamp": ts(0),
            "connectorStatus": "Occupied",
            "evseId": RETURN_SLOT,
            "connectorId": 1,
        }
        available = {
            "timestamp": ts(1),
            "connectorStatus": "Available",
            "evseId": slot_no,
            "connectorId": 1,
        }
        queue: list[tuple[str, dict[str, Any]]] = [
            ("StatusNotification", occupied),
            ("BatterySwap", swap_in("R3", 77)),
            ("BatterySwap", swap_out("R3", 77, "ST3", slot_no)),
            ("StatusNotification", available),
            ("MeterValues", meter_soc(RETURN_SLOT, 55.0, ts(30))),
        ]
        for action, payload in queue:
            await client.call(action, payload)
        await client.close()
        assert books(db, "R3") == reference
        balance = money.rider_balance(db, "R3")
        assert balance.packs_held == (f"ST3-P{slot_no}",)
        view = {s.slot_no: s for s in stations.station_view(db, "ST3").slots}
        assert view[RETURN_SLOT].pack_serial == "R3-PACK"
        assert view[slot_no].pack_serial is None
        # The replay is on record, so an operator can see the swap happened offline.
        assert ("unoffered_handover", "ST3", f"ST3-P{slot_no}") in alerts(db)

    run(scenario())
    assert ledger_ok(db)


def test_a_replayed_older_soc_reading_does_not_overwrite_a_newer_one(db: Database, net: Net) -> None:
    now = datetime.now(UTC)

    def iso(at: datetime) -> str:
        return at.isoformat(timespec="seconds").replace("+00:00", "Z")

    async def scenario() -> None:
        client = await booted(net, "ST1")
        await client.call("MeterValues", meter_soc(1, 50.0, iso(now)))
        await client.call("MeterValues", meter_soc(1, 100.0, iso(now - timedelta(hours=1))))
        await client.close()

    run(scenario())
    packs = {p.serial: p for p in all_packs(db)}
    assert packs["ST1-P1"].soc_bp == 5_000


def test_one_pack_presented_at_two_stations_at_once(db: Database, net: Net) -> None:
    async def scenario() -> list[dict[str, Any]]:
        one, two = await asyncio.gather(booted(net, "ST1"), booted(net, "ST2"))
        answers = await asyncio.gather(authorize(one, "R4"), authorize(two, "R4"))
        await asyncio.gather(one.close(), two.close())
        return list(answers)

    answers = run(scenario())
    statuses = sorted(a["status"] for a in answers)
    assert statuses.count("Accepted") == 1, statuses
    kinds = [(kind, serial) for kind, _station, serial in alerts(db)]
    assert any(serial == "R4-PACK" for _kind, serial in kinds), kinds
    assert open_offers(db, "R4") == 1


def open_offers(db: Database, rider_id: str) -> int:
    def work(tx: Any) -> int:
        query = sa.select(sa.func.count()).where(
            t.swaps.c.rider_id == rider_id, t.swaps.c.state == "offered"
        )
        return int(tx.repo.execute(query).scalar_one())

    return db.read(work)


def test_one_pack_returned_at_two_stations_at_once(db: Database, net: Net) -> None:
    """The same serial in a slot at ST1 and at ST2 at the same moment: one return is charged,
    the other is an alert, and the pack is in one place."""

    async def scenario() -> None:
        one, two = await asyncio.gather(booted(net, "ST1"), booted(net, "ST2"))
        answers = await asyncio.gather(
            one.call("BatterySwap", swap_in("R4", 5)), two.call("BatterySwap", swap_in("R4", 5))
        )
        assert list(answers) == [{}, {}]
        await asyncio.gather(one.close(), two.close())

    run(scenario())
    found = [(kind, serial) for kind, _station, serial in alerts(db)]
    assert found.count(("pack_two_places", "R4-PACK")) == 1, found
    packs = {p.serial: p for p in all_packs(db)}
    assert packs["R4-PACK"].status.value == "in_slot"
    balance = money.rider_balance(db, "R4")
    assert balance.packs_held == () and balance.held_units == 0
    charged = [t for t in money.transfers_of(db, "R4") if t.key.endswith(":BatteryIn:post")]
    assert len(charged) == 1, charged
    assert ledger_ok(db)
