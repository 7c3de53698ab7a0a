"""Swap flows end to end over real WebSockets: the worked examples through OCPP."""

from __future__ import annotations

import pytest
from ocpp.v21 import call

from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import TransferCode
from swapd.readmodels import alerts
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.services import catalog, swaps
from swapd.services.payments import top_up
from swapd.store.database import Database
from tests.gateway.conftest import LiveServer, battery, boot, connect, network, swap_event

pytestmark = pytest.mark.anyio


async def test_e1_over_ocpp(db: Database, live_server: LiveServer) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-0001", "G2", soc=98, soh=95, station_id="ST1", slot_no=3)
    catalog.register_pack(db, "B-0002", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    catalog.add_token(db, TokenType.RFID, "CARD-R1", rider_id="R1")
    top_up(db, "R1", 10_000, "pay-1")

    st1 = await connect(live_server, "ST1", passwords["ST1"])
    assert (await boot(st1)).status == "Accepted"
    card = {"idToken": "CARD-R1", "type": "ISO14443"}
    answer = await st1.station.call(call.Authorize(id_token=card))
    assert answer.id_token_info["status"] == "Accepted"
    assert answer.id_token_info["evse_id"] == [3]
    await st1.station.call(swap_event(11, "BatteryOut", card, [battery(3, "B-0001", 98.0, 95.0)]))
    balance = rider_balance(db, "R1")
    assert (balance.available_units, balance.held_units) == (31_750, 1_583)
    await st1.close()

    st2 = await connect(live_server, "ST2", passwords["ST2"])
    await boot(st2)
    key = {"idToken": "B-0001", "type": "BatterySerial"}
    answer = await st2.station.call(call.Authorize(id_token=key))
    info = answer.id_token_info
    assert info["status"] == "Accepted" and info["evse_id"] == [1]
    assert "30,050 Wh" in info["personal_message"]["content"]
    await st2.station.call(swap_event(21, "BatteryIn", key, [battery(5, "B-0001", 20.0, 95.0)]))
    assert rider_balance(db, "R1").posted_units == 32_073
    await st2.station.call(swap_event(21, "BatteryOut", key, [battery(1, "B-0002", 100.0, 100.0)]))
    balance = rider_balance(db, "R1")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (32_073, 1_700, 30_373)
    usage = [t for t in transfers_of(db, "R1") if t.code is TransferCode.USAGE]
    assert [t.amount for t in usage] == [1_260]

    # E5: the station reconnects and resends the BatteryIn; nothing changes.
    await st2.close()
    again = await connect(live_server, "ST2", passwords["ST2"])
    await again.station.call(swap_event(21, "BatteryIn", key, [battery(5, "B-0001", 20.0, 95.0)]))
    assert rider_balance(db, "R1").available_units == 30_373
    assert len([t for t in transfers_of(db, "R1") if t.code is TransferCode.USAGE]) == 1
    await again.close()


async def test_a_card_returning_another_riders_pack_is_flagged(
    db: Database, live_server: LiveServer
) -> None:
    """RFID (S01) with B's card, A's pack in the slot: A is billed, the disagreement is an alert,
    and B's offer is released at once; the station's resend after a reconnect changes nothing."""
    passwords = network(db)
    catalog.register_pack(db, "P-A", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    catalog.register_pack(db, "P-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    for rider_id in ("RA", "RB"):
        catalog.add_rider(db, rider_id, "energy")
        top_up(db, rider_id, 10_000, f"pay-{rider_id}")
    catalog.add_token(db, TokenType.RFID, "CARD-B", rider_id="RB")
    app_a = IdToken(TokenType.APP, "RA")
    assert swaps.authorize(db, "ST2", app_a).accepted
    swaps.battery_out(db, "ST2", "out-a", [swaps.BatteryReading(1, "P-A", 10_000, 10_000)], token=app_a)

    st1 = await connect(live_server, "ST1", passwords["ST1"])
    await boot(st1)
    card = {"idToken": "CARD-B", "type": "ISO14443"}
    answer = await st1.station.call(call.Authorize(id_token=card))
    assert answer.id_token_info["status"] == "Accepted"
    assert rider_balance(db, "RB").held_units == 1_700
    returned = swap_event(31, "BatteryIn", card, [battery(5, "P-A", 20.0)])
    await st1.station.call(returned)
    assert rider_balance(db, "RA").posted_units == 33_333 - 1_360
    assert rider_balance(db, "RB").available_units == 33_333
    await st1.close()

    again = await connect(live_server, "ST1", passwords["ST1"])
    await boot(again)
    await again.station.call(returned)
    await again.close()
    (alert,) = alerts.alerts(db, kind="token_pack_mismatch")
    assert (alert.station_id, alert.pack_serial, alert.rider_id) == ("ST1", "P-A", "RB")
    assert rider_balance(db, "RB").available_units == 33_333


async def test_messages_before_boot_are_refused(db: Database, live_server: LiveServer) -> None:
    passwords = network(db)
    st1 = await connect(live_server, "ST1", passwords["ST1"])
    with pytest.raises(Exception) as refused:
        await st1.station.call(call.Heartbeat(), suppress=False)
    assert "SecurityError" in repr(refused.value)
    assert (await boot(st1)).status == "Accepted"
    assert (await st1.station.call(call.Heartbeat())).current_time
    await st1.close()


async def test_app_startedswap_event(db: Database, live_server: LiveServer) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-0001", "G2", soc=100, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R1", "energy")
    top_up(db, "R1", 10_000, "pay-1")
    st1 = await connect(live_server, "ST1", passwords["ST1"])
    await boot(st1)
    import asyncio

    from swapd.services.app_swaps import request_swap

    result = await asyncio.to_thread(request_swap, db, "ST1", "R1", timeout_s=10)
    assert result.accepted, result
    (request,) = st1.station.swap_requests
    assert request["request_id"] == int(result.request_id)
    token = {"idToken": "R1", "type": "Central"}
    await st1.station.call(
        swap_event(request["request_id"], "BatteryOut", token, [battery(2, "B-0001", 100.0, 100.0)])
    )
    assert rider_balance(db, "R1").packs_held == ("B-0001",)
    await st1.close()
    assert swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R1")).accepted is False
