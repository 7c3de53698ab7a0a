"""The operator console over HTTP (no browser): sign-in, the pages, their language, the live
slot stream, and the guards (staff only, same origin). Browser tests: tests/web/test_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from swapd import i18n
from swapd.gateway.server import create_app
from swapd.readmodels import overview as overview_model
from swapd.services import identity
from swapd.services.identity import Role
from swapd.store.database import Database, ManualClock
from swapd.web import console, fleet_pages, riders_pages, station_manage, swaps_pages
from tests import network as net

PASSWORD = "correct horse battery"
TEMPLATES = Path(console.__file__).parent / "templates"
DOCUMENTS = Path(console.__file__).parents[1] / "documents"


@pytest.fixture
def web(db: Database) -> Iterator[TestClient]:
    net.network(db)
    net.pack(db, "B-1", station_id="ST1", slot_no=1)
    net.pack(db, "B-2", station_id="ST1", slot_no=2, soc_pct=40)
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    with TestClient(create_app(db), base_url="http://swapd.test") as client:
        yield client


def sign_in(client: TestClient, email: str = "ops@example.com", password: str = PASSWORD) -> None:
    answer = client.post(
        "/login",
        data={"email": email, "password": password, "next": "/stations"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/stations"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_pages_need_a_staff_sign_in(web: TestClient) -> None:
    answer = web.get("/", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login?next=/")
    assert web.get("/stations/ST1/live").status_code == 401
    wrong = web.post("/login", data={"email": "ops@example.com", "password": "nope"})
    assert wrong.status_code == 401 and "wrong email or password" in wrong.text
    sign_in(web)
    page = web.get("/")
    assert page.status_code == 200 and "Stations online" in page.text
    web.post("/logout")
    assert web.get("/", follow_redirects=False).status_code == 303


def test_a_rider_cannot_sign_in_to_the_console(web: TestClient) -> None:
    web.post(
        "/api/v1/auth/signup", json={"email": "r@example.com", "password": PASSWORD, "plan_id": "energy"}
    )
    answer = web.post("/login", data={"email": "r@example.com", "password": PASSWORD})
    assert answer.status_code == 401
    assert "swapd_console" not in answer.headers.get("set-cookie", "")


def test_a_post_from_another_site_is_refused(web: TestClient) -> None:
    answer = web.post(
        "/login",
        data={"email": "ops@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 403


def test_the_station_page_shows_each_slot(web: TestClient) -> None:
    sign_in(web)
    page = web.get("/stations/ST1")
    assert page.status_code == 200
    slots = dict(re.findall(r'<li class="slot (\w+)" id="slot-(\d+)"', page.text))
    found = {int(no): status for status, no in slots.items()}
    statuses = dict(
        sorted(
            (int(no), st) for st, no in re.findall(r'<li class="slot (\w+)" id="slot-(\d+)"', page.text)
        )
    )
    assert statuses[1] == "ready" and statuses[2] == "charging" and statuses[3] == "empty"
    assert len(statuses) == net.SLOT_COUNT and found
    assert "B-1" in page.text and "40%" in page.text
    listing = web.get("/stations", params={"q": "st2"})
    assert ">ST2<" in listing.text and ">ST1<" not in listing.text
    assert web.get("/stations/NOPE").status_code == 404


def test_the_live_stream_sends_the_grid(web: TestClient) -> None:
    sign_in(web)
    with web.stream("GET", "/stations/ST1/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert lines[0] == "event: slots"
    cells = json.loads(lines[1].removeprefix("data: "))
    assert [c["status"] for c in cells[:3]] == ["ready", "charging", "empty"]
    assert cells[0]["pack_serial"] == "B-1"


def test_korean_follows_the_cookie_or_the_browser(web: TestClient) -> None:
    sign_in(web)
    assert "개요" in web.get("/", headers={"Accept-Language": "ko-KR,ko;q=0.9"}).text
    web.get("/lang/ko?next=/stations")
    page = web.get("/stations/ST1")
    assert 'lang="ko"' in page.text and "충전 완료 배터리" in page.text and "준비됨" in page.text
    web.get("/lang/en")
    assert "Charged packs ready" in web.get("/stations/ST1").text
    # Only a path on this site is a place to go back to.
    assert web.get("/lang/ko?next=//evil.example", follow_redirects=False).headers["location"] == "/"


def test_every_message_of_the_console_has_a_korean_translation() -> None:
    used = set(console.STATUS_TEXT.values()) | {role.value for role in Role if role is not Role.RIDER}
    used |= set(swaps_pages.STATE_TEXT.values()) | set(riders_pages.DONE_TEXT.values())
    used |= set(riders_pages.STATUS_TEXT.values()) | set(fleet_pages.PACK_STATUS_TEXT.values())
    used |= set(station_manage.STATE_TEXT.values()) | {"queued"}
    sources = [*TEMPLATES.rglob("*.html"), *DOCUMENTS.glob("*.py")]
    for source in sources:
        text = source.read_text()
        used |= set(re.findall(r'_\("([^"]+)"\)', text)) | set(re.findall(r"_\('([^']+)'\)", text))
    assert len(used) > 30
    assert sorted(used - i18n.catalog_ids("ko")) == []


def test_money_and_numbers_follow_the_language() -> None:
    ko, en = i18n.Translator("ko"), i18n.Translator("en")
    assert ko.money(12_500, "KRW") == "₩12,500" and en.money(12_500, "KRW") == "₩12,500"
    assert en.money(1_050, "USD") == "$10.50"
    assert ko.percent_bp(9_850) == "98.5%" and en.number(1_234_567) == "1,234,567"
    assert i18n.negotiate(None, "ko-KR,ko;q=0.9,en;q=0.8") == "ko"
    assert i18n.negotiate("en", "ko") == "en" and i18n.negotiate("xx", "fr") == "en"


def test_only_admins_refund_and_a_form_sent_twice_refunds_once(web: TestClient, db: Database) -> None:
    net.rider(db, "R1", top_up_minor=10_000)
    identity.add_staff(db, "admin@example.com", PASSWORD, Role.ADMIN)
    sign_in(web)  # an operator
    form = {"amount": "1000", "reason": "test", "key": "k-123456789"}
    assert web.post("/riders/R1/refund", data=form).status_code == 403
    blocked = web.post("/riders/R1/block", data={"reason": "lost card"}, follow_redirects=False)
    assert blocked.headers["location"] == "/riders/R1?done=blocked"
    assert "The rider is blocked." in web.get("/riders/R1?done=blocked").text
    web.post("/logout")
    sign_in(web, "admin@example.com")
    for _ in range(2):
        done = web.post("/riders/R1/refund", data=form, follow_redirects=False)
        assert done.status_code == 303
    page = web.get("/riders/R1").text
    assert "₩9,000" in page  # one refund of 1,000, not two
    bad = web.post("/riders/R1/refund", data={**form, "amount": "10.5", "key": "k-987654321"})
    assert bad.status_code == 400 and "not a positive amount of KRW" in bad.text
    stale = web.post("/riders/R1/adjust", data={"units": "5", "reason": "r"})
    assert stale.status_code == 400 and "this form has expired" in stale.text


def test_the_swap_feed_and_one_swap(web: TestClient, db: Database) -> None:
    from swapd.domain.riders import IdToken, TokenType
    from swapd.services import swaps
    from swapd.services.swaps import BatteryReading

    net.rider(db, "R1", top_up_minor=10_000)
    token = IdToken(TokenType.APP, "R1")
    offer = swaps.authorize(db, "ST1", token)
    swaps.battery_out(db, "ST1", "7", [BatteryReading(1, "B-1", 10_000, 10_000)], token=token)
    sign_in(web)
    feed = web.get("/swaps")
    assert f'href="/swaps/{offer.swap_id}"' in feed.text and "Completed" in feed.text
    assert f'after={offer.swap_id}"' in feed.text
    detail = web.get(f"/swaps/{offer.swap_id}")
    assert detail.status_code == 200 and "B-1" in detail.text and "R1" in detail.text
    assert web.get("/swaps/999999").status_code == 404
    with web.stream("GET", "/swaps/live?after=0") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                sent = json.loads(line.removeprefix("data: "))
                break
    assert [s["id"] for s in sent] == [offer.swap_id] and sent[0]["state"] == "completed"


def test_packs_their_health_one_pack_and_taking_it_out_of_service(web: TestClient, db: Database) -> None:
    sign_in(web)
    page = web.get("/packs")
    assert page.status_code == 200 and 'href="/packs/B-1"' in page.text
    in_slot = web.get("/packs", params={"status": "in_slot", "station": "ST1"}).text
    assert "B-1" in in_slot and "B-2" in in_slot
    assert "B-1" not in web.get("/packs", params={"status": "retired"}).text
    quarantine = {"action": "quarantine", "reason": "swollen casing"}
    done = web.post("/packs/B-2/out-of-service", data=quarantine, follow_redirects=False)
    assert done.headers["location"] == "/packs/B-2?done=1"
    pack = web.get("/packs/B-2?done=1").text
    assert "The pack is out of service." in pack and "Quarantined" in pack
    bad = web.post("/packs/B-1/out-of-service", data={"action": "melt", "reason": "r"})
    assert bad.status_code == 400 and "choose withdraw, quarantine or retire" in bad.text
    assert web.get("/packs/NOPE").status_code == 404
    # The slot it left is empty now; the alert list answers.
    assert 'class="slot empty" id="slot-2"' in web.get("/stations/ST1").text
    assert web.get("/alerts").status_code == 200


def test_the_overview_shows_todays_energy_and_revenue(
    web: TestClient, db: Database, clock: ManualClock
) -> None:
    from datetime import timedelta

    from swapd.domain.riders import IdToken, TokenType
    from swapd.services import swaps
    from swapd.services.swaps import BatteryReading

    net.rider(db, "R1", top_up_minor=10_000)
    token = IdToken(TokenType.APP, "R1")
    swaps.authorize(db, "ST1", token)
    swaps.battery_out(db, "ST1", "1", [BatteryReading(1, "B-1", 9_800, 9_500)], token=token)
    clock.set(clock.now() + timedelta(hours=1))
    swaps.battery_in(db, "ST2", "2", [BatteryReading(5, "B-1", 2_000, 9_300)])  # E1: 1,260 Wh
    overview = overview_model.overview(db, clock.now())
    today = overview.per_day[-1]
    assert (today.energy_wh, today.revenue_minor, today.currency) == (1_260, 378, "KRW")
    assert sum(d.energy_wh for d in overview.per_day) == 1_260 and len(overview.per_day) == 14
    sign_in(web)
    assert "Today: 1,260 Wh" in web.get("/").text


def test_staff_download_a_riders_statement(web: TestClient, db: Database, clock: ManualClock) -> None:
    import io

    from pypdf import PdfReader

    net.rider(db, "R1", top_up_minor=10_000)
    month = f"{clock.now():%Y-%m}"
    assert web.get(f"/riders/R1/statements/{month}.pdf", follow_redirects=False).status_code == 303
    sign_in(web)
    assert f'href="/riders/R1/statements/{month}.pdf"' in web.get("/riders/R1").text
    pdf = web.get(f"/riders/R1/statements/{month}.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert "₩10,000" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()


def test_stations_with_coordinates_are_drawn_on_the_map(web: TestClient, db: Database) -> None:
    net.locate(db, "ST1", name="Gangnam", lat_microdeg=37_497_900, lon_microdeg=127_027_600)
    net.locate(db, "ST2", name="Hongdae", lat_microdeg=37_557_200, lon_microdeg=126_924_500)
    sign_in(web)
    page = web.get("/stations").text
    dots = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="(\d+)" class="dot (\w+)"', page)
    assert len(dots) == 2
    (gx, gy, _, g_level), (hx, hy, _, h_level) = dots
    # Gangnam is east and south of Hongdae; ST1 has one charged pack, ST2 none.
    assert float(gx) > float(hx) and float(gy) > float(hy)
    assert (g_level, h_level) == ("low", "none")
    assert all(0 <= float(v) <= 600 for v in (gx, hx)) and all(0 <= float(v) <= 360 for v in (gy, hy))


def test_plans_the_staff_list_for_admins_and_a_stations_recent_swaps(
    web: TestClient, db: Database
) -> None:
    from swapd.domain.riders import IdToken, TokenType
    from swapd.services import swaps

    net.rider(db, "R1", top_up_minor=10_000)
    offer = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R1"))
    sign_in(web)
    plans = web.get("/plans").text
    assert "energy" in plans and "₩300 / 1,000 Wh" in plans
    assert web.get("/users").status_code == 403  # operators do not see accounts
    station = web.get("/stations/ST1").text
    assert f'href="/swaps/{offer.swap_id}"' in station and "Offered" in station
    identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    web.post("/logout")
    sign_in(web, "boss@example.com")
    staff = web.get("/users").text
    assert "ops@example.com" in staff and "boss@example.com" in staff


def test_admins_add_staff_and_make_and_revoke_api_keys(web: TestClient, db: Database) -> None:
    from swapd.services import audit

    identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    sign_in(web, "boss@example.com")
    form = {"email": "help@example.com", "password": PASSWORD, "role": "support"}
    assert web.post("/users", data=form, follow_redirects=False).status_code == 303
    helper = identity.user_by_email(db, "help@example.com")
    assert helper.role is Role.SUPPORT
    made = web.post(f"/users/{helper.id}/keys", data={"name": "billing export"})
    key = re.search(r'<code id="new-key">([^<]+)</code>', made.text)
    assert made.status_code == 200 and key is not None
    assert identity.authenticate(db, key.group(1)).user_id == helper.id  # the key works
    (line,) = identity.tokens_of(db, helper.id)
    web.post(f"/users/{helper.id}/keys/{line.id}/revoke")
    assert identity.tokens_of(db, helper.id)[0].revoked_at is not None
    actions = [entry.action for entry in audit.entries(db, limit=10)]
    assert {"user.add", "api_key.create", "api_key.revoke"} <= set(actions)
    again = web.post("/users", data=form)
    assert again.status_code == 400


def test_the_station_page_has_the_code_riders_scan(web: TestClient) -> None:
    import io

    import segno

    sign_in(web)
    page = web.get("/stations/ST1").text
    assert "http://swapd.test/app?station=ST1" in page and 'src="/stations/ST1/qr.svg"' in page
    code = web.get("/stations/ST1/qr.svg")
    assert code.headers["content-type"] == "image/svg+xml"
    expected = io.BytesIO()
    segno.make("http://swapd.test/app?station=ST1", error="m").save(
        expected, kind="svg", scale=6, border=2, xmldecl=False, title="ST1"
    )
    assert code.content == expected.getvalue()  # the code holds exactly that link
    assert web.get("/stations/NOPE/qr.svg").status_code == 404


def test_every_page_has_a_short_plain_title_and_one_main_heading(web: TestClient) -> None:
    """Found by looking: a template edit once put a page's sections inside its <title>."""
    sign_in(web)
    pages = ("/", "/stations", "/stations/ST1", "/swaps", "/riders", "/packs", "/alerts", "/plans")
    for path in (*pages, "/right-sizing"):
        page = web.get(path).text
        (title,) = re.findall(r"<title>(.*?)</title>", page, re.S)
        assert "<" not in title and len(title) < 80, (path, title)
        assert page.count("<h1>") == 1, path
        assert page.count("<section") == page.count("</section>"), path


def test_operators_manage_a_station_from_its_page(web: TestClient, db: Database) -> None:
    sign_in(web)
    page = web.get("/stations/ST1")
    assert "Management" in page.text and "No commands sent yet" in page.text
    assert 'value="reset_hard"' in page.text
    # The station is not connected: refused at once, with the reason on the page, nothing changed.
    refused = web.post("/stations/ST1/manage", data={"command": "inoperative", "slot": "2"})
    assert refused.status_code == 400 and "ST1 is not connected" in refused.text
    assert 'id="slot-2"' in refused.text and "slot out_of_service" not in refused.text
    # Queued: the slot is out of service from now on, the command waits for the station.
    answer = web.post(
        "/stations/ST1/manage",
        data={"command": "inoperative", "slot": "2", "queue": "1"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/stations/ST1?command=")
    page = web.get(answer.headers["location"])
    assert "ChangeAvailability" in page.text and "Pending · queued" in page.text
    assert 'class="slot out_of_service" id="slot-2"' in page.text
    assert 'class="pending highlighted"' in page.text
    bad = web.post("/stations/ST1/manage", data={"command": "unlock", "slot": "99"})
    assert bad.status_code == 400 and "slot 99 does not exist" in bad.text
    unknown = web.post("/stations/ST1/manage", data={"command": "explode"})
    assert unknown.status_code == 400 and "choose a command" in unknown.text


def test_support_staff_see_the_commands_but_cannot_send_any(web: TestClient, db: Database) -> None:
    identity.add_staff(db, "help@example.com", PASSWORD, Role.SUPPORT)
    sign_in(web, "help@example.com")
    page = web.get("/stations/ST1")
    assert "Management" in page.text and 'value="reset_hard"' not in page.text
    assert web.post("/stations/ST1/manage", data={"command": "reset"}).status_code == 403


def test_firmware_is_for_admins_and_logs_and_the_local_list_for_operators(
    web: TestClient, db: Database
) -> None:
    sign_in(web)
    page = web.get("/stations/ST1")
    assert 'value="logs"' in page.text and 'value="firmware"' not in page.text
    assert "never sent" in page.text and 'value="local_list_full"' in page.text
    url = "https://fw.example/2.5.bin"
    refused = web.post("/stations/ST1/manage", data={"command": "firmware", "url": url, "queue": "1"})
    assert refused.status_code == 400 and "firmware updates are for admins" in refused.text
    queued = web.post(
        "/stations/ST1/manage",
        data={"command": "logs", "url": "https://logs.example/up", "queue": "1"},
        follow_redirects=False,
    )
    assert queued.status_code == 303
    assert "GetLog" in web.get(queued.headers["location"]).text
    away = web.post("/stations/ST1/manage", data={"command": "local_list"})
    assert away.status_code == 400 and "not connected" in away.text

    identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    web.post("/logout")
    sign_in(web, "boss@example.com")
    assert 'value="firmware"' in web.get("/stations/ST1").text
    done = web.post(
        "/stations/ST1/manage",
        data={"command": "firmware", "url": url, "queue": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "UpdateFirmware" in web.get(done.headers["location"]).text
