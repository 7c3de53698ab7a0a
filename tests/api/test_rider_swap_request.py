"""POST /api/v1/me/swaps: a rider starts a swap at a station (its QR code) and the real server
sends RequestBatterySwap to a real OCPP station client over WebSocket."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import sqlalchemy as sa

from swapd.readmodels.money import rider_balance
from swapd.services import catalog, payments, stations
from swapd.sim.embedded import embedded_server
from swapd.store import schema as t
from swapd.store.database import Database
from tests import network as net
from tests.api.conftest import PASSWORD, Account, bearer
from tests.gateway.conftest import LiveServer, battery, booted, swap_event
from tests.plans import ENERGY

pytestmark = pytest.mark.anyio
_keys = itertools.count(1)
_emails = itertools.count(1)


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


async def sign_up(http: httpx.AsyncClient, plan_id: str = ENERGY.id) -> Account:
    email = f"swapper{next(_emails)}@example.com"
    answer = await http.post(
        "/auth/signup", json={"email": email, "password": PASSWORD, "plan_id": plan_id}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Account(email, body["user"]["id"], body["user"]["rider_id"], bearer(body["token"]))


def keyed(account: Account) -> dict[str, str]:
    return {**account.headers, "Idempotency-Key": f"swap-{next(_keys)}"}


def _setup(db: Database) -> str:
    net.network(db, station_ids=("ST1",))
    net.pack(db, "B-0001", station_id="ST1", slot_no=2)
    return net.password(db, "ST1")


def _count(db: Database, table: sa.Table) -> int:
    return db.read(
        lambda tx: int(tx.repo.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    )


async def test_a_swap_started_from_the_app_opens_a_slot_and_hands_over_the_pack(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    password = _setup(db)
    me = await sign_up(http)
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 10_000, "pay-1")
    st1 = await booted(live, "ST1", password)
    headers = keyed(me)

    answer = await http.post("/me/swaps", headers=headers, json={"station_id": "ST1"})
    assert answer.status_code == 200, answer.text
    started = answer.json()
    assert started["accepted"] is True and started["offered_slots"] == [2]
    (request,) = st1.station.swap_requests
    assert request["id_token"] == {"id_token": me.rider_id, "type": "Central"}
    assert rider_balance(db, me.rider_id).held_units == 1_700

    # The phone lost the answer and retries with the same key: the same answer, no second request.
    again = await http.post("/me/swaps", headers=headers, json={"station_id": "ST1"})
    assert again.json() == started and again.headers["idempotent-replayed"] == "true"
    assert len(st1.station.swap_requests) == 1

    token = {"idToken": me.rider_id, "type": "Central"}
    data = [battery(2, "B-0001", 100.0, 100.0)]
    await st1.station.call(swap_event(request["request_id"], "BatteryOut", token, data))
    (held,) = (await http.get("/me/packs", headers=me.headers)).json()
    assert (held["serial"], held["station_id"], held["slot_no"]) == ("B-0001", "ST1", 2)
    (line,) = (await http.get("/me/swaps", headers=me.headers)).json()["items"]
    assert (line["id"], line["outcome"]) == (started["swap_id"], "completed")
    assert [p["serial"] for p in line["taken"]] == ["B-0001"]
    await st1.close()


async def test_refusals_unknown_and_offline_stations(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    password = _setup(db)
    catalog.add_station(db, "ST2", 4)  # never connected
    me = await sign_up(http)
    assert me.rider_id is not None

    unknown = await http.post("/me/swaps", headers=keyed(me), json={"station_id": "NOPE"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    offline = await http.post("/me/swaps", headers=keyed(me), json={"station_id": "ST2"})
    assert offline.status_code == 409 and offline.json()["code"] == "station_offline"
    assert _count(db, t.swaps) == 0  # nothing decided, reserved or held for an offline station

    st1 = await booted(live, "ST1", password)
    broke = await http.post("/me/swaps", headers=keyed(me), json={"station_id": "ST1"})
    assert broke.status_code == 200
    assert (broke.json()["accepted"], broke.json()["reason"]) == (False, "no_credit")
    assert st1.station.swap_requests == []

    payments.top_up(db, me.rider_id, 10_000, "pay-1")
    st1.station.request_swap_status = "Rejected"
    rejected = await http.post("/me/swaps", headers=keyed(me), json={"station_id": "ST1"})
    assert rejected.json()["accepted"] is False and rejected.json()["reason"] == "station_refused"
    assert "Rejected" in rejected.json()["text"]
    # The rejected offer was abandoned: its hold released, the pack free for the next rider.
    assert rider_balance(db, me.rider_id).held_units == 0

    no_key = await http.post("/me/swaps", headers=me.headers, json={"station_id": "ST1"})
    assert no_key.status_code == 422
    for body in ({}, {"station_id": ""}, {"station_id": "ST 1"}, {"station_id": "ST1", "x": 1}):
        assert (await http.post("/me/swaps", headers=keyed(me), json=body)).status_code == 422
    anonymous = await http.post(
        "/me/swaps", headers={"Idempotency-Key": "k"}, json={"station_id": "ST1"}
    )
    assert anonymous.status_code == 401
    await st1.close()


async def test_two_first_attempts_with_one_key_reserve_one_swap(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    import asyncio

    password = _setup(db)
    catalog.register_pack(db, "B-0002", "G2", soc=100, soh=100, station_id="ST1", slot_no=3)
    me = await sign_up(http)
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 10_000, "pay-1")
    st1 = await booted(live, "ST1", password)
    headers = keyed(me)

    first, second = await asyncio.gather(
        http.post("/me/swaps", headers=headers, json={"station_id": "ST1"}),
        http.post("/me/swaps", headers=headers, json={"station_id": "ST1"}),
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json() and first.json()["accepted"] is True
    # One decision, one reserved pack, one hold: the retry named the same OCPP requestId.
    assert _count(db, t.swaps) == 1 and _count(db, t.swap_offers) == 1
    assert rider_balance(db, me.rider_id).held_units == 1_700
    assert len({r["request_id"] for r in st1.station.swap_requests}) == 1
    await st1.close()


async def test_a_station_that_connected_and_left_is_409_station_offline_at_once(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    import asyncio
    import time

    password = _setup(db)
    me = await sign_up(http)
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 10_000, "pay-1")
    st1 = await booted(live, "ST1", password)
    await st1.close()
    for _ in range(200):  # the server records the disconnection as the socket closes
        if not stations.presence(db, "ST1").connected:
            break
        await asyncio.sleep(0.02)

    started = time.monotonic()
    answer = await http.post("/me/swaps", headers=keyed(me), json={"station_id": "ST1"})
    assert time.monotonic() - started < 3  # not the 20 s the command would wait
    assert answer.status_code == 409, answer.text
    assert answer.json() == {
        "code": "station_offline",
        "detail": "station ST1 is not connected (last seen 2026-11-02T09:00:00+00:00)",
    }
    assert _count(db, t.swaps) == 0 and rider_balance(db, me.rider_id).held_units == 0


async def test_the_app_asks_for_a_right_sized_pack_and_the_riders_yes_opens_its_slot(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    from swapd.services import pack_policy

    password = _setup(db)  # B-0001, full, in slot 2
    net.pack(db, "B-HALF", soc_pct=48, station_id="ST1", slot_no=4)
    edit = pack_policy.PackSettingsEdit(set_floor=True, floor_bp=3_000)
    pack_policy.edit_station_settings(db, "test", "ST1", edit, "pilot")
    me = await sign_up(http)
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 300, "pay-1")  # 1,000 Wh: no full pack
    st1 = await booted(live, "ST1", password)

    asked = await http.post("/me/swaps", headers=keyed(me), json={"station_id": "ST1"})
    assert asked.status_code == 200, asked.text
    question = asked.json()
    assert (question["accepted"], question["asks"], question["offered_slots"]) == (False, True, [4])
    assert question["text"].startswith("Only 1,000 Wh left: take slot 4 at 48 %?")
    assert st1.station.swap_requests == []  # nothing opens before the rider's yes

    body = {"station_id": "ST1", "accept_right_sized": True}
    yes = await http.post("/me/swaps", headers=keyed(me), json=body)
    assert yes.status_code == 200, yes.text
    taken = yes.json()
    assert (taken["accepted"], taken["right_sized"], taken["offered_slots"]) == (True, True, [4])
    assert taken["swap_id"] == question["swap_id"]
    (request,) = st1.station.swap_requests
    assert rider_balance(db, me.rider_id).held_units == 816
    token = {"idToken": me.rider_id, "type": "Central"}
    data = [battery(4, "B-HALF", 48.0, 100.0)]
    await st1.station.call(swap_event(request["request_id"], "BatteryOut", token, data))
    (held,) = (await http.get("/me/packs", headers=me.headers)).json()
    assert (held["serial"], held["hold_units"]) == ("B-HALF", 816)
    await st1.close()
