"""A rider's first day, end to end against a real server: sign up through the API, top up through
the sandbox payment provider (hosted page -> Pay -> signed webhook), find a station nearby, start a
swap from the app, then swap at the station with the battery as the key; the history shows both
swaps, the meter reading and the charge, and the balance agrees with the ledger.

Everything the rider does goes over HTTP to a uvicorn server; the station is a real OCPP 2.1 client
over WebSocket to the same server. Only the operator's set-up (pack model, plan, station, packs) is
done through the services, as `swapd` commands would."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urljoin

import httpx
import pytest
from ocpp.v21 import call

from swapd.readmodels.money import rider_balance
from swapd.sim.embedded import embedded_server
from swapd.store.database import Database
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.api.conftest import PASSWORD
from tests.gateway.conftest import LiveServer, battery, booted, swap_event

pytestmark = pytest.mark.anyio
LAT, LON = 37_566_535, 126_977_969


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live(db: Database) -> Iterator[LiveServer]:
    with embedded_server(db) as url:
        yield LiveServer(url)


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    base = live.url.replace("ws://", "http://", 1)
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=60) as client:
        yield client


def _operator_sets_up_the_network(db: Database) -> str:
    net.network(db, station_ids=("ST1",))
    net.locate(db, "ST1", name="City Hall", lat_microdeg=LAT, lon_microdeg=LON)
    net.pack(db, "B-0001", soc_pct=98, soh_pct=95, station_id="ST1", slot_no=3)
    net.pack(db, "B-0002", station_id="ST1", slot_no=1)
    return net.password(db, "ST1")


async def _pay_on_the_hosted_page(http: httpx.AsyncClient, checkout_url: str) -> None:
    """Open the sandbox page and press Pay, as the rider's browser would."""
    page = await http.get(checkout_url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    actions = [
        urljoin(checkout_url, a.replace("&amp;", "&"))
        for a in re.findall(r'<form method="post" action="([^"]+)"', page.text)
    ]
    (pay,) = [a for a in actions if a.split("?")[0].endswith("/pay")]
    paid = await http.post(pay)
    assert paid.status_code in (200, 303), paid.text


async def test_a_rider_signs_up_tops_up_swaps_and_sees_it(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    password = _operator_sets_up_the_network(db)
    st1 = await booted(live, "ST1", password)

    # 1. Choose a plan and sign up.
    plans = (await http.get("/plans")).json()
    assert [p["id"] for p in plans] == ["energy"]
    signup = await http.post(
        "/auth/signup",
        json={"email": "first.rider@example.com", "password": PASSWORD, "plan_id": "energy"},
    )
    assert signup.status_code == 201, signup.text
    rider_id = signup.json()["user"]["rider_id"]
    me = {"Authorization": f"Bearer {signup.json()['token']}"}

    # 2. Top up 10,000 KRW through the sandbox provider: nothing is credited until it confirms.
    started = await http.post(
        "/me/top-ups", headers=me | {"Idempotency-Key": "first-top-up"}, json={"amount_minor": 10_000}
    )
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "pending"
    assert (await http.get("/me/balance", headers=me)).json()["available_units"] == 0
    await _pay_on_the_hosted_page(http, started.json()["checkout_url"])
    balance = (await http.get("/me/balance", headers=me)).json()
    assert (balance["available_units"], balance["prepaid_minor"]) == (33_333, 10_000)

    # 3. Find the station: two charged packs there now.
    (near,) = (
        await http.get(
            "/stations/nearby", headers=me, params={"lat_microdeg": LAT + 900, "lon_microdeg": LON}
        )
    ).json()
    assert (near["id"], near["distance_m"], near["charged_packs"]) == ("ST1", 100, 2)

    # 4. Scan its QR code: the app starts the swap; the station opens the fullest pack's slot.
    app_swap = await http.post(
        "/me/swaps", headers=me | {"Idempotency-Key": "qr-1"}, json={"station_id": near["id"]}
    )
    assert app_swap.status_code == 200, app_swap.text
    assert (app_swap.json()["accepted"], app_swap.json()["offered_slots"]) == (True, [1])
    (request,) = st1.station.swap_requests
    central = {"idToken": rider_id, "type": "Central"}
    out = [battery(1, "B-0002", 100.0, 100.0)]
    await st1.station.call(swap_event(request["request_id"], "BatteryOut", central, out))
    (held,) = (await http.get("/me/packs", headers=me)).json()
    assert held["serial"] == "B-0002"

    # 5. Later, back at the station: the battery is the key. It goes in at 20 % ...
    key = {"idToken": "B-0002", "type": "BatterySerial"}
    answer = await st1.station.call(call.Authorize(id_token=key))
    assert answer.id_token_info["status"] == "Accepted"
    assert answer.id_token_info["evse_id"] == [3]
    await st1.station.call(swap_event(77, "BatteryIn", key, [battery(5, "B-0002", 20.0, 100.0)]))
    # ... and B-0001 comes out of slot 3.
    await st1.station.call(swap_event(77, "BatteryOut", key, [battery(3, "B-0001", 98.0, 95.0)]))

    # 6. The history: newest first, with the meter reading and the charge.
    page = (await http.get("/me/swaps", headers=me)).json()
    key_swap, first_swap = page["items"]
    assert first_swap["id"] == app_swap.json()["swap_id"]
    assert [p["serial"] for p in first_swap["taken"]] == ["B-0002"]
    (returned,) = key_swap["returned"]
    assert (returned["serial"], returned["soc_out_bp"], returned["soc_in_bp"]) == (
        "B-0002",
        10_000,
        2_000,
    )
    charge = returned["charge"]
    # 1,700 Wh x 100 % SoH x (100 % - 20 %) = 1,360 Wh, worth 10,000 x 1,360 / 33,333 = 408.0 KRW.
    assert (charge["quantity"], charge["usage_units"], charge["charged_units"]) == (
        "energy_wh",
        1_360,
        1_360,
    )
    assert (charge["amount_minor"], charge["currency"]) == (408, "KRW")
    assert [p["serial"] for p in key_swap["taken"]] == ["B-0001"]

    # 7. The balance agrees with the ledger, and the ledger is consistent.
    balance = (await http.get("/me/balance", headers=me)).json()
    ledger = rider_balance(db, rider_id)
    assert (balance["posted_units"], balance["held_units"]) == (33_333 - 1_360, 1_583)
    assert (balance["posted_units"], balance["held_units"]) == (
        ledger.posted_units,
        ledger.held_units,
    )
    assert balance["prepaid_minor"] == 10_000 - 408 and balance["packs_held"] == ["B-0001"]
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems
    await st1.close()
