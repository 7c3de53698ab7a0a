"""The rider web app at /app over HTTP: sign-up and sign-in, the balance, a top-up through the
sandbox provider's page, a swap refused with its reason, history and receipts scoped to the
rider, and what makes it installable. The browser's view: tests/web/test_browser.py."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from swapd.domain.riders import IdToken, TokenType
from swapd.gateway.server import create_app
from swapd.services import swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database, ManualClock
from tests import network as net

PASSWORD = "correct horse battery"


@pytest.fixture
def app_client(db: Database) -> Iterator[TestClient]:
    net.network(db)
    net.pack(db, "B-1", station_id="ST1", slot_no=1)
    with TestClient(create_app(db), base_url="http://swapd.test") as client:
        yield client


def sign_up(client: TestClient, email: str = "r@example.com") -> None:
    form = {"email": email, "password": PASSWORD, "plan": "energy"}
    answer = client.post("/app/signup", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert (
        "swapd_rider" in answer.headers["set-cookie"] and "SameSite=lax" in answer.headers["set-cookie"]
    )


def rider_id(db: Database, email: str = "r@example.com") -> str:
    from swapd.services import identity

    found = identity.user_by_email(db, email).rider_id
    assert found is not None
    return found


def test_signing_up_shows_the_balance_and_a_top_up_pays_through_the_sandbox(
    app_client: TestClient, db: Database
) -> None:
    welcome = app_client.get("/app")
    assert "Sign up" in welcome.text and 'href="/app/manifest.webmanifest"' in welcome.text
    sign_up(app_client)
    home = app_client.get("/app")
    assert 'id="available">0 Wh' in home.text
    key = re.search(r'name="key" value="([^"]+)"', home.text)
    assert key is not None
    started = app_client.post(
        "/app/topup", data={"amount": "10,000", "key": key.group(1)}, follow_redirects=False
    )
    assert started.status_code == 303
    page = started.headers["location"]
    assert "/api/v1/sandbox/checkout/" in page
    pay_form = app_client.get(page).text
    action = re.search(r'action="([^"]+/pay[^"]*)"', pay_form)
    assert action is not None, pay_form
    target = urljoin(page, html.unescape(action.group(1)))  # relative to the payment page
    back = app_client.post(target, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"].endswith("/app")
    assert 'id="available">33,333 Wh' in app_client.get("/app").text
    again = app_client.post(
        "/app/topup", data={"amount": "10000", "key": key.group(1)}, follow_redirects=False
    )
    # The same form again: the same payment, paid already, so nothing to pay and no second credit.
    assert again.headers["location"] == "/app"
    assert 'id="available">33,333 Wh' in app_client.get("/app").text


def test_a_swap_at_a_station_that_is_not_connected_is_refused_with_its_reason(
    app_client: TestClient,
) -> None:
    sign_up(app_client)
    answer = app_client.post("/app/swap", data={"station": "ST1"})
    assert answer.status_code == 400
    assert "Not enough allowance: please top up" in answer.text


def test_history_and_receipts_are_the_riders_own(
    app_client: TestClient, db: Database, clock: ManualClock
) -> None:
    sign_up(app_client)
    me = rider_id(db)
    net.rider(db, "OTHER", top_up_minor=10_000, payment_ref="pay-other")
    from swapd.services import payments

    payments.top_up(db, me, 10_000, "pay-me")
    token = IdToken(TokenType.APP, me)
    offer = swaps.authorize(db, "ST1", token)
    swaps.battery_out(db, "ST1", "1", [BatteryReading(1, "B-1", 9_800, 9_500)], token=token)
    clock.set(clock.now() + timedelta(hours=2))
    back = swaps.battery_in(db, "ST2", "2", [BatteryReading(5, "B-1", 2_000, 9_300)])
    assert back.swap_id is not None
    history = app_client.get("/app/swaps").text
    assert (
        f'href="/app/swaps/{offer.swap_id}"' in history
        and f'href="/app/swaps/{back.swap_id}"' in history
    )
    receipt = app_client.get(f"/app/swaps/{back.swap_id}").text
    assert "B-1" in receipt and "1,260 Wh" in receipt and "₩378" in receipt and "20%" in receipt
    other = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "OTHER"))
    assert other.swap_id is None or app_client.get(f"/app/swaps/{other.swap_id}").status_code == 404
    assert app_client.get("/app/swaps/999999").status_code == 404


def test_every_app_page_has_a_short_plain_title_and_each_section_once(app_client: TestClient) -> None:
    """The home page's right-sized setting was once pasted into its <title> as well."""
    assert "<title>swapd</title>" in app_client.get("/app").text  # signed out: the welcome
    sign_up(app_client)
    for path in ("/app", "/app/swaps", "/app/stations", "/app/statements", "/app/cards"):
        page = app_client.get(path)
        assert page.status_code == 200, path
        (title,) = re.findall(r"<title>(.*?)</title>", page.text, re.S)
        assert "<" not in title and len(title) < 80, (path, title)
        ids = re.findall(r'<section[^>]* id="([^"]+)"', page.text)
        assert len(ids) == len(set(ids)), (path, ids)
        assert page.text.count("<section") == page.text.count("</section>"), path


def test_staff_cannot_use_the_app_and_the_app_is_installable(
    app_client: TestClient, db: Database
) -> None:
    from swapd.services import identity
    from swapd.services.identity import Role

    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    refused = app_client.post("/app/login", data={"email": "ops@example.com", "password": PASSWORD})
    assert refused.status_code == 401 and "swapd_rider" not in refused.headers.get("set-cookie", "")
    manifest = app_client.get("/app/manifest.webmanifest").json()
    assert manifest["start_url"] == "/app" and manifest["display"] == "standalone"
    assert app_client.get("/app/sw.js").headers["content-type"].startswith("text/javascript")
    cross = app_client.post(
        "/app/login",
        data={"email": "x@example.com", "password": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403


def test_the_rider_downloads_receipts_and_statements_as_pdf(
    app_client: TestClient, db: Database, clock: ManualClock
) -> None:
    import io

    from pypdf import PdfReader

    from swapd.services import payments

    sign_up(app_client)
    me = rider_id(db)
    payments.top_up(db, me, 10_000, "pay-me")
    token = IdToken(TokenType.APP, me)
    offer = swaps.authorize(db, "ST1", token)
    swaps.battery_out(db, "ST1", "1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=token)
    receipt = app_client.get(f"/app/swaps/{offer.swap_id}.pdf")
    assert receipt.headers["content-type"] == "application/pdf"
    assert "attachment" in receipt.headers["content-disposition"]
    assert "Taken B-1" in PdfReader(io.BytesIO(receipt.content)).pages[0].extract_text()
    months = app_client.get("/app/statements").text
    month = f"{clock.now():%Y-%m}"
    assert f'href="/app/statements/{month}.pdf"' in months
    app_client.cookies.set("swapd_lang", "ko")
    statement = app_client.get(f"/app/statements/{month}.pdf")
    text = PdfReader(io.BytesIO(statement.content)).pages[0].extract_text()
    assert f"명세서 {month}" in text and "₩10,000" in text
    assert app_client.get("/app/statements/2026-13.pdf").status_code == 404
    assert app_client.get("/app/swaps/999999.pdf").status_code == 404


def test_stations_with_charged_packs_nearest_first_and_cards(
    app_client: TestClient, db: Database
) -> None:
    net.locate(db, "ST1", name="Gangnam", lat_microdeg=37_497_900, lon_microdeg=127_027_600)
    net.locate(db, "ST2", name="Hongdae", lat_microdeg=37_557_200, lon_microdeg=126_924_500)
    sign_up(app_client)
    listed = app_client.get("/app/stations").text
    assert listed.index("Gangnam") < listed.index("Hongdae")  # ST1 has a charged pack, ST2 none
    near_hongdae = app_client.get("/app/stations", params={"lat": "37.5570", "lon": "126.9240"}).text
    assert "Hongdae" in near_hongdae and "Gangnam" not in near_hongdae  # 11 km away: beyond 5 km
    assert re.search(r"\d+ m ·", near_hongdae)
    assert app_client.get("/app/stations", params={"lat": "999", "lon": "x"}).status_code == 200
    added = app_client.post("/app/cards", data={"uid": "04a1b2c3"}, follow_redirects=False)
    assert added.status_code == 303
    assert "04A1B2C3" in app_client.get("/app/cards").text
    sign_up(app_client, "second@example.com")
    taken = app_client.post("/app/cards", data={"uid": "04A1B2C3"})
    assert taken.status_code == 400 and "registered to another account" in taken.text


def test_a_scanned_station_code_opens_the_app_with_the_station_filled_in(
    app_client: TestClient, db: Database
) -> None:
    welcome = app_client.get("/app?station=ST1")
    assert "Sign in to swap at station ST1" in welcome.text
    assert 'name="next" value="/app?station=ST1"' in welcome.text
    form = {
        "email": "qr@example.com",
        "password": PASSWORD,
        "plan": "energy",
        "next": "/app?station=ST1",
    }
    signed = app_client.post("/app/signup", data=form, follow_redirects=False)
    assert signed.headers["location"] == "/app?station=ST1"
    assert 'name="station" required maxlength="40"' in app_client.get(signed.headers["location"]).text
    assert 'value="ST1"' in app_client.get("/app?station=ST1").text
    assert 'value="&lt;x&gt;"' not in app_client.get("/app?station=<x>").text  # not a station id
