"""The rider's own views through HTTP: plans, balance, swap history, packs held, cards, nearby
stations; and that a rider never sees another rider's data."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from tests import network as net
from tests.api.conftest import Account, rider
from tests.plans import ENERGY, TIME

SUB = Plan(
    "monthly",
    PlanKind.SUBSCRIPTION,
    Unit.DELIVERIES,
    "KRW",
    1_500,
    1,
    fee_minor=40_000,
    included_units=30,
)


def _network(db: Database) -> None:
    net.network(db)
    net.pack(db, "B-0001", soc_pct=98, soh_pct=95, station_id="ST1", slot_no=3)
    net.pack(db, "B-0002", station_id="ST2", slot_no=1)


def _app(account: Account) -> IdToken:
    assert account.rider_id is not None
    return IdToken(TokenType.APP, account.rider_id)


def _e1(db: Database, clock: ManualClock, me: Account) -> None:
    """Worked example E1 for ``me``: 10,000 KRW, B-0001 out at ST1, back at ST2 an hour later
    at 20 % (1,260 Wh), B-0002 out."""
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 10_000, f"pay-{me.rider_id}")
    assert swaps.authorize(db, "ST1", _app(me)).accepted
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-0001", 9800, 9500)], token=_app(me))
    clock.set(clock.now() + timedelta(hours=1))
    key = IdToken(TokenType.BATTERY_SERIAL, "B-0001")
    assert swaps.authorize(db, "ST2", key, request_id="r2").accepted
    swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-0001", 2000, 9500)], token=key)
    swaps.battery_out(db, "ST2", "r2", [BatteryReading(1, "B-0002", 10_000, 10_000)], token=key)


def test_plans_are_public_with_prices_and_fees(client: TestClient, db: Database) -> None:
    catalog.add_plan(db, ENERGY)
    catalog.add_plan(db, SUB)
    answer = client.get("/api/v1/plans")
    assert answer.status_code == 200
    plans = {p["id"]: p for p in answer.json()}
    assert plans["energy"]["kind"] == "prepaid_energy"
    assert (plans["energy"]["unit"], plans["energy"]["quantity"]) == ("Wh", "energy_wh")
    assert (plans["energy"]["price_minor"], plans["energy"]["price_units"]) == (300, 1000)
    assert plans["energy"]["currency"] == "KRW" and plans["energy"]["fee_minor"] == 0
    monthly = plans["monthly"]
    assert (monthly["quantity"], monthly["fee_minor"], monthly["included_units"]) == (
        "deliveries",
        40_000,
        30,
    )


def test_balance_shows_allowance_held_and_its_value(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    _network(db)
    me = rider(client, db)
    assert me.rider_id is not None
    empty = client.get("/api/v1/me/balance", headers=me.headers).json()
    assert (empty["available_units"], empty["prepaid_minor"], empty["currency"]) == (0, 0, "KRW")

    payments.top_up(db, me.rider_id, 10_000, "pay-1")
    assert swaps.authorize(db, "ST1", _app(me)).accepted
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-0001", 9800, 9500)], token=_app(me))
    body = client.get("/api/v1/me/balance", headers=me.headers).json()
    assert (body["unit"], body["quantity"]) == ("Wh", "energy_wh")
    # 10,000 KRW at 300 KRW/kWh buys 33,333 Wh; the pack out holds ceil(1700 x 0.95 x 0.98) Wh.
    assert (body["posted_units"], body["held_units"], body["available_units"]) == (
        33_333,
        1_583,
        31_750,
    )
    assert body["prepaid_minor"] == 10_000
    assert body["held_value_minor"] == 475  # 10,000 x 1,583 / 33,333 = 474.9
    assert body["available_value_minor"] == 9_525  # 10,000 x 31,750 / 33,333 = 9,525.1
    assert body["packs_held"] == ["B-0001"]
    assert body["subscription"] is None


def test_balance_of_a_subscriber_shows_the_cycle(client: TestClient, db: Database) -> None:
    catalog.add_plan(db, SUB)
    me = rider(client, db, plan_id="monthly")
    assert me.rider_id is not None
    payments.subscribe(db, me.rider_id, "sub-1")
    body = client.get("/api/v1/me/balance", headers=me.headers).json()
    assert (body["unit"], body["quantity"]) == ("count", "deliveries")
    cycle = body["subscription"]
    assert cycle is not None and cycle["cycle_no"] == 1
    assert body["available_units"] == body["posted_units"] > 0
    assert cycle["cycle_end"] > cycle["cycle_start"]


def test_swap_history_with_meter_readings_charges_and_paging(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    _network(db)
    me = rider(client, db)
    _e1(db, clock, me)
    page = client.get("/api/v1/me/swaps", headers=me.headers).json()
    newest, oldest = page["items"]
    assert page["next_before"] is None
    assert (newest["station_id"], newest["outcome"]) == ("ST2", "completed")
    (returned,) = newest["returned"]
    assert returned["serial"] == "B-0001" and returned["taken_at_station_id"] == "ST1"
    assert (returned["soc_out_bp"], returned["soc_in_bp"], returned["slot_no"]) == (9800, 2000, 5)
    charge = returned["charge"]
    # E1: 1,700 Wh x 0.95 x (0.98 - 0.20) = 1,259.7 -> 1,260 Wh, worth 10,000 x 1,260 / 33,333.
    assert (charge["quantity"], charge["usage_units"], charge["charged_units"]) == (
        "energy_wh",
        1_260,
        1_260,
    )
    assert (charge["beyond_units"], charge["amount_minor"], charge["currency"]) == (0, 378, "KRW")
    assert [p["serial"] for p in newest["taken"]] == ["B-0002"]
    assert newest["taken"][0]["returned"] is False
    assert (oldest["station_id"], oldest["returned"]) == ("ST1", [])
    assert oldest["taken"][0]["serial"] == "B-0001" and oldest["taken"][0]["returned"] is True
    assert oldest["taken"][0]["hold_units"] == 1_583

    first = client.get("/api/v1/me/swaps?limit=1", headers=me.headers).json()
    assert [s["id"] for s in first["items"]] == [newest["id"]]
    second = client.get(
        f"/api/v1/me/swaps?limit=1&before={first['next_before']}", headers=me.headers
    ).json()
    assert [s["id"] for s in second["items"]] == [oldest["id"]]
    last = client.get(
        f"/api/v1/me/swaps?limit=1&before={second['next_before']}", headers=me.headers
    ).json()
    assert last == {"items": [], "next_before": None}
    assert client.get("/api/v1/me/swaps?limit=0", headers=me.headers).status_code == 422
    assert client.get("/api/v1/me/swaps?limit=101", headers=me.headers).status_code == 422


def test_refused_swaps_are_listed_with_their_reason(client: TestClient, db: Database) -> None:
    _network(db)
    me = rider(client, db)
    refused = swaps.authorize(db, "ST1", _app(me))
    assert not refused.accepted
    (line,) = client.get("/api/v1/me/swaps", headers=me.headers).json()["items"]
    assert (line["outcome"], line["reason"]) == ("refused", "no_credit")


def test_packs_held(client: TestClient, db: Database, clock: ManualClock) -> None:
    _network(db)
    me = rider(client, db)
    assert client.get("/api/v1/me/packs", headers=me.headers).json() == []
    _e1(db, clock, me)
    (held,) = client.get("/api/v1/me/packs", headers=me.headers).json()
    assert (held["serial"], held["model_code"], held["station_id"], held["slot_no"]) == (
        "B-0002",
        "G2",
        "ST2",
        1,
    )
    assert (held["soc_out_bp"], held["nominal_wh"], held["unit"]) == (10_000, 1700, "Wh")
    assert held["since"].startswith(clock.now().date().isoformat())


def test_cards_register_list_and_remove(client: TestClient, db: Database) -> None:
    _network(db)
    me = rider(client, db)
    other = rider(client, db)
    added = client.post("/api/v1/me/cards", headers=me.headers, json={"uid": "04a1b2c3d4e5f6"})
    assert added.status_code == 201 and added.json()["uid"] == "04A1B2C3D4E5F6"
    again = client.post("/api/v1/me/cards", headers=me.headers, json={"uid": "04A1B2C3D4E5F6"})
    assert again.status_code == 200
    taken = client.post("/api/v1/me/cards", headers=other.headers, json={"uid": "04A1B2C3D4E5F6"})
    assert taken.status_code == 409 and taken.json()["code"] == "conflict"
    mine = client.get("/api/v1/me/cards", headers=me.headers).json()
    assert mine == [{"uid": "04A1B2C3D4E5F6", "type": "ISO14443"}]
    assert client.get("/api/v1/me/cards", headers=other.headers).json() == []

    # The card now names the rider at a station.
    decision = swaps.authorize(db, "ST1", IdToken(TokenType.RFID, "04A1B2C3D4E5F6"))
    assert decision.rider_id == me.rider_id

    for bad in ("", "04A1B2", "XYZ12345", "04A1B2C3D4E5F6A7B8C9D0", "04A1 2C3"):
        answer = client.post("/api/v1/me/cards", headers=me.headers, json={"uid": bad})
        assert answer.status_code == 422, bad
    extra = client.post("/api/v1/me/cards", headers=me.headers, json={"uid": "04A1B2C3", "x": 1})
    assert extra.status_code == 422

    # Another rider cannot remove it: the same 404 as for a card that does not exist.
    stolen = client.delete("/api/v1/me/cards/04A1B2C3D4E5F6", headers=other.headers)
    assert stolen.status_code == 404
    assert client.delete("/api/v1/me/cards/0000000000", headers=me.headers).status_code == 422
    assert client.delete("/api/v1/me/cards/00000000", headers=me.headers).status_code == 404
    assert client.delete("/api/v1/me/cards/04a1b2c3d4e5f6", headers=me.headers).status_code == 204
    assert client.get("/api/v1/me/cards", headers=me.headers).json() == []


def test_nearby_stations_nearest_first_with_charged_packs(client: TestClient, db: Database) -> None:
    net.pack_model(db)
    net.stations(db, ("CITY", "EAST", "FAR", "SHUT", "NOWHERE"), slot_count=4)
    seoul_lat, seoul_lon = 37_566_535, 126_977_969
    net.locate(db, "CITY", name="City Hall", lat_microdeg=seoul_lat, lon_microdeg=seoul_lon)
    # 0.009 degrees of latitude north: 0.009 x pi / 180 x 6,371,008 m = 1,000.75 m.
    net.locate(db, "EAST", name="North gate", lat_microdeg=seoul_lat + 9_000, lon_microdeg=seoul_lon)
    net.locate(db, "FAR", name="Busan", lat_microdeg=35_179_554, lon_microdeg=129_075_641)
    net.locate(db, "SHUT", name="Closed", lat_microdeg=seoul_lat + 1_000, lon_microdeg=seoul_lon)
    catalog.register_pack(db, "B-1", "G2", soc=95, soh=95, station_id="CITY", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=50, soh=95, station_id="CITY", slot_no=2)
    catalog.register_pack(db, "B-3", "G2", soc=100, soh=60, station_id="EAST", slot_no=1)
    catalog.register_pack(db, "B-4", "G2", soc=100, soh=100, station_id="EAST", slot_no=2)
    catalog.register_pack(db, "B-5", "G2", soc=100, soh=100, station_id="EAST", slot_no=3)
    db.write(
        lambda tx: tx.repo.execute(
            sa.update(t.stations).where(t.stations.c.id == "SHUT").values(enabled=False)
        )
    )
    me = rider(client, db)
    query = f"lat_microdeg={seoul_lat}&lon_microdeg={seoul_lon}"
    near = client.get(f"/api/v1/stations/nearby?{query}&radius_m=2000", headers=me.headers)
    assert near.status_code == 200
    body = near.json()
    assert [s["id"] for s in body] == ["CITY", "EAST"]
    assert [s["distance_m"] for s in body] == [0, 1_001]
    # CITY: B-2 is at 50 %; EAST: B-3's health is below the station's 70 % minimum.
    assert [s["charged_packs"] for s in body] == [1, 2]
    assert [s["empty_slots"] for s in body] == [2, 1]
    assert body[0]["name"] == "City Hall" and body[0]["lat_microdeg"] == seoul_lat

    short = client.get(f"/api/v1/stations/nearby?{query}&radius_m=1000", headers=me.headers)
    assert [s["id"] for s in short.json()] == ["CITY"]
    wide = client.get(f"/api/v1/stations/nearby?{query}&radius_m=50000&limit=1", headers=me.headers)
    assert [s["id"] for s in wide.json()] == ["CITY"]
    busan = client.get(
        "/api/v1/stations/nearby?lat_microdeg=35179000&lon_microdeg=129075000&radius_m=500",
        headers=me.headers,
    )
    assert [s["id"] for s in busan.json()] == ["FAR"]
    assert 50 < busan.json()[0]["distance_m"] < 150

    for bad in (
        "lat_microdeg=90000001&lon_microdeg=0",
        "lat_microdeg=0&lon_microdeg=-180000001",
        f"{query}&radius_m=0",
        f"{query}&radius_m=50001",
        "lon_microdeg=0",
    ):
        assert client.get(f"/api/v1/stations/nearby?{bad}", headers=me.headers).status_code == 422
    assert client.get(f"/api/v1/stations/nearby?{query}").status_code == 401


def test_a_rider_sees_none_of_another_riders_data(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    _network(db)
    me = rider(client, db)
    other = rider(client, db)
    _e1(db, clock, me)
    client.post("/api/v1/me/cards", headers=me.headers, json={"uid": "04A1B2C3"})
    mine = client.get("/api/v1/me/swaps", headers=me.headers).json()["items"]
    assert len(mine) == 2

    assert client.get("/api/v1/me/swaps", headers=other.headers).json()["items"] == []
    # A cursor past my swaps' ids still only lists the caller's own.
    after = client.get(f"/api/v1/me/swaps?before={mine[0]['id'] + 1}", headers=other.headers)
    assert after.json()["items"] == []
    assert client.get("/api/v1/me/packs", headers=other.headers).json() == []
    assert client.get("/api/v1/me/cards", headers=other.headers).json() == []
    balance = client.get("/api/v1/me/balance", headers=other.headers).json()
    assert balance["rider_id"] == other.rider_id != me.rider_id
    assert (balance["posted_units"], balance["packs_held"]) == (0, [])
    # No route takes a rider id: extra query parameters naming another rider change nothing.
    spoof = client.get(f"/api/v1/me/balance?rider_id={me.rider_id}", headers=other.headers).json()
    assert spoof["rider_id"] == other.rider_id


def test_me_routes_need_a_rider_account(client: TestClient, db: Database, admin: Account) -> None:
    for path in ("/api/v1/me/balance", "/api/v1/me/swaps", "/api/v1/me/packs", "/api/v1/me/cards"):
        assert client.get(path).status_code == 401
        refused = client.get(path, headers=admin.headers)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_time_plan_history_counts_seconds(client: TestClient, db: Database, clock: ManualClock) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, TIME)
    catalog.add_station(db, "ST1", 8)
    catalog.register_pack(db, "B-0001", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    me = rider(client, db, plan_id="time")
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 2_000, "pay-1")  # 2,000 KRW buy one hour: 3,600 s
    swaps.authorize(db, "ST1", _app(me))
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-0001", 10_000, 10_000)], token=_app(me))
    clock.set(clock.now() + timedelta(minutes=30, seconds=10))
    swaps.battery_in(db, "ST1", "i1", [BatteryReading(2, "B-0001", 5_000, 10_000)])
    newest = client.get("/api/v1/me/swaps", headers=me.headers).json()["items"][0]
    charge = newest["returned"][0]["charge"]
    # 30 min 10 s counted in started minutes: 31 x 60 = 1,860 s, worth 2,000 x 1,860 / 3,600.
    assert (charge["unit"], charge["quantity"], charge["usage_units"]) == ("s", "time_s", 1_860)
    assert (charge["charged_units"], charge["amount_minor"]) == (1_860, 1_033)
    balance = client.get("/api/v1/me/balance", headers=me.headers).json()
    assert (balance["quantity"], balance["posted_units"]) == ("time_s", 3_600 - 1_860)


def test_usage_beyond_the_allowance_is_shown_as_beyond(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, TIME)
    catalog.add_station(db, "ST1", 8)
    catalog.register_pack(db, "B-0001", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    me = rider(client, db, plan_id="time")
    assert me.rider_id is not None
    payments.top_up(db, me.rider_id, 2_000, "pay-1")
    swaps.authorize(db, "ST1", _app(me))
    swaps.battery_out(db, "ST1", "o1", [BatteryReading(1, "B-0001", 10_000, 10_000)], token=_app(me))
    clock.set(clock.now() + timedelta(hours=2))  # two hours on one hour of allowance
    swaps.battery_in(db, "ST1", "i1", [BatteryReading(2, "B-0001", 5_000, 10_000)])
    charge = client.get("/api/v1/me/swaps", headers=me.headers).json()["items"][0]["returned"][0]
    charge = charge["charge"]
    assert (charge["usage_units"], charge["charged_units"], charge["beyond_units"]) == (
        7_200,
        3_600,
        3_600,
    )
    # All the prepaid money is earned; the hour beyond is owed (overdrawn), not billed here.
    assert (charge["amount_minor"], charge["overage_minor"]) == (2_000, 0)
    balance = client.get("/api/v1/me/balance", headers=me.headers).json()
    assert (balance["overdrawn_units"], balance["available_units"]) == (3_600, 0)
