"""A right-sized offer over OCPP 2.1: the station asks with a standard NoCredit answer whose
personal message carries the question, and the rider's second Authorize is Accepted with the
slot to open; the station does nothing non-standard."""

from __future__ import annotations

import pytest
from ocpp.v21 import call

from swapd.domain.riders import TokenType
from swapd.services import catalog, pack_policy
from swapd.services.payments import top_up
from swapd.store.database import Database
from tests.gateway.conftest import LiveServer, battery, boot, connect, network, swap_event

pytestmark = pytest.mark.anyio


async def test_the_station_asks_then_opens_the_right_sized_pack(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    catalog.register_pack(db, "FULL", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "HALF", "G2", soc=48, soh=100, station_id="ST1", slot_no=4)
    catalog.add_rider(db, "R9", "energy")
    top_up(db, "R9", 300, "pay-r9")  # 1,000 Wh: a full G2 holds 1,700
    edit = pack_policy.PackSettingsEdit(set_floor=True, floor_bp=3_000)
    pack_policy.edit_station_settings(db, "test", "ST1", edit, "pilot")
    catalog.add_token(db, TokenType.RFID, "CARD-R9", rider_id="R9")

    st1 = await connect(live_server, "ST1", passwords["ST1"])
    await boot(st1)
    card = {"idToken": "CARD-R9", "type": "ISO14443"}
    asked = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert asked["status"] == "NoCredit" and "evse_id" not in asked
    assert asked["personal_message"]["content"].startswith("Only 1,000 Wh left: take slot 4 at 48 %?")
    taken = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert taken["status"] == "Accepted" and taken["evse_id"] == [4]
    assert taken["personal_message"]["content"].startswith("Right-sized for your allowance: take slot 4")
    await st1.station.call(swap_event(21, "BatteryOut", card, [battery(4, "HALF", 48.0, 100.0)]))
    again = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert again["status"] == "NoCredit"  # 184 Wh left: nothing above the floor fits now
    await st1.close()
