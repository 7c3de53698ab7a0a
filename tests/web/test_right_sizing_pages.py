"""Right-sizing on the web: the console's swap page says which rule chose the pack and the
station page shows the station's pack policy; the rider app asks with a button, and keeps the
rider's consent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from swapd.domain.riders import IdToken, TokenType
from swapd.gateway.server import create_app
from swapd.services import identity, pack_policy, payments, swaps
from swapd.services.identity import Role
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database
from tests import network as net

PASSWORD = "correct horse battery"


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    net.network(db)
    net.pack(db, "FULL", station_id="ST1", slot_no=1)
    net.pack(db, "HALF", soc_pct=48, station_id="ST1", slot_no=4)
    edit = pack_policy.PackSettingsEdit(set_floor=True, floor_bp=3_000, preset="balanced")
    pack_policy.edit_station_settings(db, "test", "ST1", edit, "pilot")
    with TestClient(create_app(db), base_url="http://swapd.test") as test_client:
        yield test_client


def test_the_swap_page_shows_the_rule_and_the_station_page_the_policy(
    client: TestClient, db: Database
) -> None:
    net.rider(db, "R9")
    payments.top_up(db, "R9", 300, "pay-r9")
    pack_policy.set_rider_consent(db, "R9", "always")
    offer = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R9"))
    assert offer.accepted and offer.right_sized
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    signed = client.post("/login", data={"email": "ops@example.com", "password": PASSWORD})
    assert signed.status_code in (200, 303)
    page = client.get(f"/swaps/{offer.swap_id}").text
    assert 'id="choice"' in page
    assert "highest state of charge the allowance covers" in page
    assert "Right-sized for the allowance" in page and "standing" in page
    station = client.get("/stations/ST1").text
    assert "Right-sized packs" in station and "down to 30" in station
    assert "cycles 3" in station


def test_the_rider_app_asks_and_keeps_the_riders_setting(client: TestClient, db: Database) -> None:
    form = {"email": "r@example.com", "password": PASSWORD, "plan": "energy"}
    assert client.post("/app/signup", data=form, follow_redirects=False).status_code == 303
    rider_id = identity.user_by_email(db, "r@example.com").rider_id
    assert rider_id is not None
    payments.top_up(db, rider_id, 300, "pay-app")  # 1,000 Wh
    home = client.get("/app").text
    assert 'id="right-size-setting"' in home and '<option value="ask" selected>' in home

    asked = client.post("/app/swap", data={"station": "ST1"}, headers={"origin": "http://swapd.test"})
    assert 'id="right-size-ask"' in asked.text
    assert "Only 1,000 Wh left: take slot 4 at 48 %?" in asked.text
    assert 'name="accept_right_sized" value="1"' in asked.text
    assert 'name="station" value="ST1"' in asked.text

    saved = client.post(
        "/app/right-size",
        data={"consent": "never"},
        headers={"origin": "http://swapd.test"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert pack_policy.rider_consent(db, rider_id).value == "never"
    bad = client.post(
        "/app/right-size", data={"consent": "maybe"}, headers={"origin": "http://swapd.test"}
    )
    assert bad.status_code == 400 and "always, ask, never" in bad.text


def test_the_console_counts_the_swaps_right_sizing_saved(client: TestClient, db: Database) -> None:
    """Per station and day: a rider who took a right-sized pack (saved), one who never takes one
    (refused for credit all the same), and the fleet's wear."""
    net.rider(db, "R8")
    payments.top_up(db, "R8", 300, "pay-r8")  # 1,000 Wh: short of a full pack
    pack_policy.set_rider_consent(db, "R8", "always")
    app = IdToken(TokenType.APP, "R8")
    offer = swaps.authorize(db, "ST1", app, request_id="rs-1")
    assert offer.accepted and offer.right_sized
    (taken,) = offer.offered
    swaps.battery_out(
        db, "ST1", "rs-1", [BatteryReading.parse(taken.slot_no, taken.serial, 48, 100)], token=app
    )
    net.rider(db, "R7")
    payments.top_up(db, "R7", 300, "pay-r7")
    pack_policy.set_rider_consent(db, "R7", "never")
    assert not swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R7")).accepted
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    client.post("/login", data={"email": "ops@example.com", "password": PASSWORD})
    page = client.get("/right-sizing").text
    assert page.count("<h1>") == 1 and "<title>Right-sizing" in page
    (row,) = re.findall(
        r'<tr><td>\d{4}-\d\d-\d\d</td><td><a href="/stations/ST1">ST1</a></td>(.*?)</tr>', page, re.S
    )
    cells = re.findall(r"<td>(\d+)</td>", row)
    assert cells == ["1", "0", "0", "1"]  # saved, asked, declined, refused for credit
    assert "Cycle spread" in page
    korean = client.get("/right-sizing", headers={"accept-language": "ko"}).text
    assert "살린 교환" in korean
