"""More swap flows over real WebSockets: E2, E4 (two packs), E6, timeouts, operator tokens,
slot states and charging transactions."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from ocpp.v21 import call

from swapd.domain.riders import TokenType
from swapd.ledger.model import TransferCode
from swapd.readmodels.alerts import recent_alerts as alerts
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.readmodels.stations import station_view
from swapd.services import catalog
from swapd.services.payments import top_up
from swapd.store import schema as t
from swapd.store.database import Database
from tests.gateway.conftest import LiveServer, battery, booted, network, swap_event
from tests.plans import BUNDLE

pytestmark = pytest.mark.anyio


def _slot_packs(db: Database, station_id: str) -> dict[int, str | None]:
    return {slot.slot_no: slot.pack_serial for slot in station_view(db, station_id).slots}


async def test_e2_refused_without_credit_then_accepted_after_top_up(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=96, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R2", "energy")
    catalog.add_token(db, TokenType.RFID, "CARD-R2", rider_id="R2")
    top_up(db, "R2", 300, "pay-1")  # floor(300 * 1000 / 300) = 1,000 Wh
    st1 = await booted(live_server, "ST1", passwords["ST1"])
    card = {"idToken": "CARD-R2", "type": "ISO14443"}

    refused = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert refused["status"] == "NoCredit"
    assert "evse_id" not in refused
    assert refused["personal_message"]["content"]
    balance = rider_balance(db, "R2")
    assert (balance.posted_units, balance.held_units) == (1_000, 0)
    assert [tr.code for tr in transfers_of(db, "R2")] == [TransferCode.TOP_UP, TransferCode.TOP_UP]

    top_up(db, "R2", 1_000, "pay-2")  # + floor(1,000 * 1000 / 300) = 3,333 Wh
    accepted = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert accepted["status"] == "Accepted"
    assert accepted["evse_id"] == [1]  # the fullest pack: 1,700 Wh held of 4,333
    assert "2,633 Wh" in accepted["personal_message"]["content"]
    await st1.close()


async def test_e4_two_packs_out_and_back_by_serial(db: Database, live_server: LiveServer) -> None:
    passwords = network(db, BUNDLE)
    for slot in (1, 2, 3):
        catalog.register_pack(db, f"B-{slot}", "G2", soc=100, soh=100, station_id="ST1", slot_no=slot)
    catalog.register_pack(db, "B-9", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.register_pack(db, "B-8", "G2", soc=100, soh=100, station_id="ST2", slot_no=2)
    catalog.add_rider(db, "R4", "bundle", vehicle_packs=2)
    catalog.add_token(db, TokenType.RFID, "CARD-R4", rider_id="R4")
    top_up(db, "R4", 12_500, "bundle-1")

    st1 = await booted(live_server, "ST1", passwords["ST1"])
    card = {"idToken": "CARD-R4", "type": "ISO14443"}
    info = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert info["status"] == "Accepted" and len(info["evse_id"]) == 2
    out = [battery(slot, f"B-{slot}", 100.0) for slot in info["evse_id"]]
    await st1.station.call(swap_event(7, "BatteryOut", card, out))
    balance = rider_balance(db, "R4")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (10, 2, 8)
    taken = sorted(f"B-{slot}" for slot in info["evse_id"])
    assert sorted(balance.packs_held) == taken
    await st1.close()

    st2 = await booted(live_server, "ST2", passwords["ST2"])
    key = {"idToken": taken[0], "type": "BatterySerial"}
    info = (await st2.station.call(call.Authorize(id_token=key))).id_token_info
    assert info["status"] == "Accepted" and sorted(info["evse_id"]) == [1, 2]
    back = [battery(5, taken[0], 10.0), battery(6, taken[1], 15.0)]
    await st2.station.call(swap_event(31, "BatteryIn", key, back))
    balance = rider_balance(db, "R4")
    # Both returned packs posted (10 - 2 = 8); the new offer of two packs holds 2 more.
    assert (balance.posted_units, balance.held_units, balance.packs_held) == (8, 2, ())
    usage = [tr.amount for tr in transfers_of(db, "R4") if tr.code is TransferCode.USAGE]
    assert sum(usage) == 2
    assert _slot_packs(db, "ST2")[5] == taken[0] and _slot_packs(db, "ST2")[6] == taken[1]
    await st2.station.call(
        swap_event(31, "BatteryOut", key, [battery(1, "B-9", 100.0), battery(2, "B-8", 100.0)])
    )
    balance = rider_balance(db, "R4")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (8, 2, 6)
    assert sorted(balance.packs_held) == ["B-8", "B-9"]
    await st2.close()


async def test_e6_foreign_and_unassigned_packs_are_refused_with_an_alert(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-DEPOT", "G2", soc=50, soh=100)  # known, held by nobody
    catalog.add_rider(db, "R1", "energy")
    top_up(db, "R1", 10_000, "pay-1")
    before = transfers_of(db, "R1")
    st1 = await booted(live_server, "ST1", passwords["ST1"])

    for serial, status in (("X-FOREIGN", "Unknown"), ("B-DEPOT", "Invalid")):
        key = {"idToken": serial, "type": "BatterySerial"}
        info = (await st1.station.call(call.Authorize(id_token=key))).id_token_info
        assert info["status"] == status, serial
        assert info["personal_message"]["content"].startswith("BatteryUnknown: ")
        assert "evse_id" not in info
        # A station that sends the BatteryIn anyway changes nothing but raises an alert.
        await st1.station.call(swap_event(90, "BatteryIn", key, [battery(4, serial, 30.0)]))

    assert transfers_of(db, "R1") == before
    assert _slot_packs(db, "ST1")[4] is None
    kinds = {(a["kind"], a["pack_serial"]) for a in alerts(db)}
    assert ("foreign_pack", "X-FOREIGN") in kinds
    assert ("pack_not_assigned", "B-DEPOT") in kinds
    await st1.close()


async def test_battery_out_timeout_releases_the_hold(db: Database, live_server: LiveServer) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    catalog.add_token(db, TokenType.RFID, "CARD-R1", rider_id="R1")
    top_up(db, "R1", 10_000, "pay-1")
    st1 = await booted(live_server, "ST1", passwords["ST1"])
    card = {"idToken": "CARD-R1", "type": "ISO14443"}
    info = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert info["evse_id"] == [1]
    assert rider_balance(db, "R1").held_units == 1_700

    for _ in range(2):  # the resend after a reconnect changes nothing
        await st1.station.call(swap_event(5, "BatteryOutTimeout", card, [battery(1, "B-1", 100.0)]))
        balance = rider_balance(db, "R1")
        assert (balance.posted_units, balance.held_units, balance.packs_held) == (33_333, 0, ())
    assert _slot_packs(db, "ST1")[1] == "B-1"
    codes = [tr.code for tr in transfers_of(db, "R1")]
    assert codes.count(TransferCode.USAGE) == 0
    # The pack is free again: the next rider's request is offered it.
    again = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert again["evse_id"] == [1]
    await st1.close()


async def test_operator_tokens_withdraw_and_restock_without_billing(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_token(db, TokenType.RFID, "STAFF-1", rider_id=None, operator=True)
    st1 = await booted(live_server, "ST1", passwords["ST1"])
    staff = {"idToken": "STAFF-1", "type": "ISO14443"}
    assert (await st1.station.call(call.Authorize(id_token=staff))).id_token_info["status"] == "Accepted"

    await st1.station.call(swap_event(1, "BatteryOut", staff, [battery(1, "B-1", 100.0)]))
    assert _slot_packs(db, "ST1")[1] is None
    assert "B-1" not in station_view(db, "ST1").packs

    own = {"idToken": "ST2", "type": "Central"}  # the station's own token restocks at ST2
    st2 = await booted(live_server, "ST2", passwords["ST2"])
    await st2.station.call(swap_event(2, "BatteryIn", own, [battery(3, "B-1", 80.0)]))
    assert _slot_packs(db, "ST2")[3] == "B-1"
    assert station_view(db, "ST2").packs["B-1"].soc_bp == 8_000
    with db.engine.connect() as connection:
        written = connection.execute(t.transfers.select()).all()
    assert written == []
    await st1.close()
    await st2.close()


async def test_slot_states_and_charging_soc(db: Database, live_server: LiveServer) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=40, soh=100, station_id="ST1", slot_no=2)
    st1 = await booted(live_server, "ST1", passwords["ST1"])
    await st1.station.call(
        call.StatusNotification(
            timestamp="2026-11-26T09:00:00Z", connector_status="Unavailable", evse_id=7, connector_id=1
        )
    )
    await st1.station.call(
        call.NotifyEvent(
            generated_at="2026-11-26T09:00:00Z",
            seq_no=0,
            event_data=[
                {
                    "event_id": 1,
                    "timestamp": "2026-11-26T09:00:00Z",
                    "trigger": "Delta",
                    "actual_value": "Unavailable",
                    "event_notification_type": "HardWiredNotification",
                    "component": {"name": "Connector", "evse": {"id": 8, "connector_id": 1}},
                    "variable": {"name": "AvailabilityState"},
                }
            ],
        )
    )
    states = {s.slot_no: s.state.value for s in station_view(db, "ST1").slots}
    assert states[7] == "unavailable" and states[8] == "unavailable" and states[1] == "available"

    answer = await st1.station.call(
        call.TransactionEvent(
            event_type="Updated",
            timestamp="2026-11-26T09:05:00Z",
            trigger_reason="MeterValuePeriodic",
            seq_no=1,
            transaction_info={"transaction_id": "tx-2"},
            evse={"id": 2, "connector_id": 1},
            meter_value=[
                {
                    "timestamp": "2026-11-26T09:05:00Z",
                    "sampled_value": [{"value": 87.5, "measurand": "SoC"}],
                }
            ],
        )
    )
    assert answer.id_token_info == {"status": "Accepted"}
    assert station_view(db, "ST1").packs["B-1"].soc_bp == 8_750
    await st1.close()


async def test_swap_request_from_the_cli_reaches_the_connected_station(
    db: Database, live_server: LiveServer
) -> None:
    """`swapd swap request` runs in its own process; the server process holds the socket."""
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=4)
    catalog.add_rider(db, "R1", "energy")
    top_up(db, "R1", 10_000, "pay-1")
    st1 = await booted(live_server, "ST1", passwords["ST1"])
    swapd = shutil.which("swapd") or str(Path(sys.executable).parent / "swapd")
    url = db.engine.url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        swapd, "swap", "request", "--station", "ST1", "--rider", "R1", "--database", url, "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert (answer["accepted"], answer["slots"], answer["rider"]) == (True, [4], "R1")
    (request,) = st1.station.swap_requests
    assert request["request_id"] == int(answer["request_id"])
    assert request["id_token"] == {"id_token": "R1", "type": "Central"}
    assert rider_balance(db, "R1").held_units == 1_700
    await st1.close()
