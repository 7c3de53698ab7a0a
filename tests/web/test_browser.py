"""The console in a real browser: Debian's Chromium driven by Playwright against a real server
(uvicorn on a free port, SQLite file). Each test saves a screenshot under build/screenshots/.

Without Chromium these tests skip, unless SWAPD_REQUIRE_BROWSER=1 (``.ci/run`` sets it, after
installing Debian's ``chromium``), when they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from swapd.domain.riders import IdToken, TokenType
from swapd.gateway.server import create_app
from swapd.services import identity, swaps
from swapd.services.identity import Role
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database
from swapd.store.engine import make_engine
from tests import network as net
from tests.conftest import copy_of_migrated_sqlite

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}

if not Path(CHROMIUM).exists():
    if os.environ.get("SWAPD_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"SWAPD_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM}")
    pytest.skip("no Chromium here (apt-get install chromium)", allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402
from pypdf import PdfReader  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """swapd's app under uvicorn in a thread of the test process."""

    def __init__(self, db: Database) -> None:
        self.port = _free_port()
        config = uvicorn.Config(
            create_app(db), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def site(migrated_sqlite_file: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    """A running server with two stations, packs in ST1, a rider and an operator."""
    db = Database(make_engine(copy_of_migrated_sqlite(migrated_sqlite_file, tmp_path)))
    net.network(db)
    net.pack(db, "B-1", station_id="ST1", slot_no=1)
    net.pack(db, "B-2", station_id="ST1", slot_no=2, soc_pct=40)
    net.rider(db, "R1", top_up_minor=10_000)
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    try:
        with _Server(db) as url:
            yield url, db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/stations/ST1")
    expect(page).to_have_url(f"{url}/login?next=/stations/ST1")
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{url}/stations/ST1")


def _serious(page: Page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']} at {[node['target'] for node in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_an_operator_watches_a_swap_change_the_slot_grid_live(
    site: tuple[str, Database], browser: Browser
) -> None:
    url, db = site
    page = browser.new_page()
    _sign_in(page, url)
    slot_1 = page.locator("#slot-1")
    expect(slot_1).to_have_class("slot ready")
    expect(page.locator("#slot-2")).to_have_class("slot charging")
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    _shot(page, "station-before-swap")
    # A rider takes B-1 at the station; the page is not reloaded.
    rider = IdToken(TokenType.APP, "R1")
    offer = swaps.authorize(db, "ST1", rider)
    assert offer.offered_slots == [1]
    expect(slot_1).to_have_class("slot reserved", timeout=5_000)
    swaps.battery_out(db, "ST1", "1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=rider)
    expect(slot_1).to_have_class("slot empty", timeout=5_000)
    expect(slot_1.locator(".serial")).to_have_text("")
    expect(page.locator("#charged")).to_have_text("0")
    _shot(page, "station-after-swap")
    assert _serious(page) == []
    page.close()


def test_the_console_in_korean_on_a_phone(site: tuple[str, Database], browser: Browser) -> None:
    url, _db = site
    page = browser.new_page(viewport=PHONE, locale="ko-KR")
    page.goto(f"{url}/login?next=/")
    expect(page.locator("h1")).to_have_text("운영자 콘솔")
    page.get_by_label("이메일").fill("ops@example.com")
    page.get_by_label("비밀번호").fill(PASSWORD)
    page.get_by_role("button", name="로그인").click()
    expect(page.locator("h1")).to_have_text("개요")
    expect(page.get_by_text("충전 완료 배터리")).to_be_visible()
    # The charts are drawn by uPlot (shipped in the package), in place of the CSS bars.
    expect(page.locator(".chart canvas")).to_have_count(3)
    expect(page.locator(".bars").first).to_be_hidden()
    assert _serious(page) == []
    _shot(page, "overview-ko-phone")
    page.goto(f"{url}/riders/R1")
    expect(page.locator("#prepaid")).to_have_text("₩10,000")  # won, without decimals
    expect(page.get_by_text("선불 잔액(미실현)")).to_be_visible()
    _shot(page, "rider-ko-phone")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_text("Prepaid, not yet earned")).to_be_visible()
    page.close()


def test_an_admin_refunds_a_rider_and_the_swap_feed_moves_live(
    site: tuple[str, Database], browser: Browser
) -> None:
    url, db = site
    identity.add_staff(db, "admin@example.com", PASSWORD, Role.ADMIN)
    page = browser.new_page()
    page.goto(f"{url}/login?next=/swaps")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    rows = page.locator("#feed tbody tr")
    expect(rows).to_have_count(0)
    offer = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R1"))
    expect(rows).to_have_count(1, timeout=5_000)
    expect(rows.first).to_contain_text(str(offer.swap_id))
    expect(rows.first).to_contain_text("Offered")
    _shot(page, "swap-feed")
    rows.first.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(f"Swap {offer.swap_id}")
    page.get_by_role("link", name="R1").click()
    expect(page.locator("#prepaid")).to_have_text("₩10,000")
    page.get_by_label("Refund (KRW)").fill("2,500")
    page.locator("#refund-reason").fill("rider moved away")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_role("status")).to_have_text("The refund is done.")
    expect(page.locator("#prepaid")).to_have_text("₩7,500")
    assert _serious(page) == []
    _shot(page, "rider-after-refund")
    with page.expect_download() as caught:
        page.locator(".months a").first.click()
    saved = SCREENSHOTS.parent / "downloads" / caught.value.suggested_filename
    caught.value.save_as(saved)
    text = PdfReader(str(saved)).pages[0].extract_text()
    assert "Statement" in text and "₩2,500" in text  # the refund of the month
    page.close()


def test_a_rider_signs_up_on_a_phone_and_tops_up_through_the_sandbox(
    site: tuple[str, Database], browser: Browser
) -> None:
    url, _db = site
    page = browser.new_page(viewport=PHONE)
    page.goto(f"{url}/app")
    page.locator("#signup-email").fill("newrider@example.com")
    page.locator("#signup-password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#available")).to_have_text("0 Wh")
    page.get_by_label("Amount (KRW)").fill("10000")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.get_by_role("button", name="Pay ").click()  # the sandbox provider's own page
    expect(page).to_have_url(f"{url}/app")
    expect(page.locator("#available")).to_have_text("33,333 Wh")
    expect(page.locator("#available-money")).to_have_text("₩10,000")
    assert _serious(page) == []
    _shot(page, "rider-app-after-top-up")
    page.close()


class _Station:
    """A station connected to the server and booted, on an event loop of its own thread."""

    def __init__(self, ws_url: str, station_id: str, password: str) -> None:
        import asyncio

        from tests.gateway.conftest import LiveServer, booted

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connected = self.run(booted(LiveServer(ws_url), station_id, password))

    def run(self, work: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def close(self) -> None:
        self.run(self.connected.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_rider_starts_a_swap_at_a_connected_station_and_gets_the_receipt(
    migrated_sqlite_file: Path, tmp_path: Path, browser: Browser
) -> None:
    from tests.gateway.conftest import battery, swap_event

    db = Database(make_engine(copy_of_migrated_sqlite(migrated_sqlite_file, tmp_path)))
    passwords = net.network(db, with_passwords=True)
    net.pack(db, "B-7", station_id="ST1", slot_no=4)
    station = None
    try:
        with _Server(db) as url:
            station = _Station(url.replace("http://", "ws://"), "ST1", passwords["ST1"])
            page = browser.new_page(viewport=PHONE)
            page.goto(f"{url}/app")
            page.locator("#signup-email").fill("swapper@example.com")
            page.locator("#signup-password").fill(PASSWORD)
            page.get_by_role("button", name="Sign up").click()
            page.get_by_label("Amount (KRW)").fill("10000")
            page.get_by_role("button", name="Pay", exact=True).click()
            page.get_by_role("button", name="Pay ").click()
            expect(page.locator("#available")).to_have_text("33,333 Wh")
            page.get_by_label("Station id (on its QR code)").fill("ST1")
            page.get_by_role("button", name="Start the swap").click()
            expect(page.get_by_text("Take your pack")).to_be_visible()
            _shot(page, "rider-swap-under-way")
            (asked,) = station.connected.station.swap_requests
            no_token = {"idToken": "", "type": "NoAuthorization"}
            event = swap_event(asked["request_id"], "BatteryOut", no_token, [battery(4, "B-7", 100)])
            station.run(station.connected.station.call(event))
            # The page reloads by itself once the pack has left: the receipt of the swap.
            expect(page.get_by_role("heading", name="Taken B-7")).to_be_visible(timeout=10_000)
            expect(page.get_by_text("Take your pack")).to_have_count(0)
            assert _serious(page) == []
            _shot(page, "rider-receipt")
            page.close()
    finally:
        if station is not None:
            station.close()
        db.dispose()


def test_an_operator_takes_a_slot_out_of_service_for_a_station_away(
    site: tuple[str, Database], browser: Browser
) -> None:
    url, _db = site
    page = browser.new_page()
    _sign_in(page, url)
    expect(page.locator("#slot-1")).to_have_class("slot ready")
    page.get_by_label("Slot").select_option("1")
    page.locator("form.manage").first.get_by_label("If the station is away").check()
    page.get_by_role("button", name="Take out of service").click()
    expect(page).to_have_url(f"{url}/stations/ST1?command=1#commands")
    row = page.locator("#commands tr.highlighted")
    expect(row).to_contain_text("ChangeAvailability")
    expect(row).to_contain_text("Pending · queued")
    expect(page.locator("#slot-1")).to_have_class("slot out_of_service")
    expect(page.locator("#charged")).to_have_text("0")  # its pack is no longer ready to hand out
    _shot(page, "station-management")
    assert _serious(page) == []
    # Without queueing, a station away refuses at once, and says so.
    page.get_by_role("button", name="Reset now").click()
    expect(page.get_by_role("alert")).to_contain_text("ST1 is not connected")
    page.close()
