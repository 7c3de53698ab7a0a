"""Operator API: swaps (filters, paging, one swap with its offers, readings and charges) and
alerts (filters), over swaps driven through the real swap service."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database, ManualClock
from tests import network as net
from tests.api.conftest import Account
from tests.plans import ENERGY


def network(db: Database, clock: ManualClock) -> None:
    """E1 of the billing method, then a foreign pack and a pack reported in two places.

    Swap 1: R1 takes B-1 at ST1 (app). Two hours later swap 2: R1 returns B-1 at ST2 (battery as
    key, 98 % -> 20 %: 1,260 Wh = 378 KRW) and takes B-2. Swap 3: R2 is refused (no credit).
    """
    net.network(db)
    net.pack(db, "B-1", soc_pct=98, soh_pct=95, station_id="ST1", slot_no=3)
    net.pack(db, "B-2", station_id="ST2", slot_no=1)
    net.rider(db, "R1")
    net.rider(db, "R2")
    payments.top_up(db, "R1", 10_000, "pay-1")
    app = IdToken(TokenType.APP, "R1")
    assert swaps.authorize(db, "ST1", app, request_id="r1").accepted
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-1", 9800, 9500)], token=app)
    net.pack(db, "B-3", station_id="ST1", slot_no=4)
    clock.set(clock.now() + timedelta(hours=2))
    key = IdToken(TokenType.BATTERY_SERIAL, "B-1")
    assert swaps.authorize(db, "ST2", key, request_id="r2").accepted
    swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-1", 2000, 9300)], token=key)
    swaps.battery_out(db, "ST2", "r2", [BatteryReading(1, "B-2", 10_000, 10_000)], token=key)
    clock.set(clock.now() + timedelta(hours=1))
    refused = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R2"))
    assert refused.reason == "no_credit"
    # A pack nobody knows, and a pack we have in ST1 reported inserted at ST2.
    swaps.battery_in(
        db, "ST2", "e6", [BatteryReading(6, "X-9", 5000, 9000), BatteryReading(7, "B-3", 5000, 9000)]
    )


def test_swaps_are_listed_newest_first_and_filters_filter(
    client: TestClient, db: Database, clock: ManualClock, support: Account
) -> None:
    start = clock.now()
    network(db, clock)

    def ids(**params: object) -> list[int]:
        answer = client.get("/api/v1/ops/swaps", params=params, headers=support.headers)
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json()["items"]]

    everything = ids()
    assert everything == sorted(everything, reverse=True) and len(everything) == 4
    first, second, third, fourth = sorted(everything)  # fourth: the return of X-9 and B-3
    assert ids(station_id="ST2") == [fourth, second]
    assert ids(rider_id="R2") == [third]
    assert ids(state="refused") == [third]
    assert ids(state="completed") == [second, first]
    assert ids(state="returned") == [fourth]
    # B-1 went out in swap 1 and came back as the key of swap 2; B-2 only took part in swap 2.
    assert ids(pack_serial="B-1") == [second, first]
    assert ids(pack_serial="B-2") == [second]
    assert ids(pack_serial="NOPE") == []
    one_hour = (start + timedelta(hours=1)).isoformat()
    assert ids(**{"from": one_hour}) == [fourth, third, second]
    assert ids(**{"to": one_hour}) == [first]
    assert ids(station_id="ST1", **{"from": one_hour}) == [third]
    # Paging: a cursor per page, no row twice, none lost.
    page = client.get("/api/v1/ops/swaps", params={"limit": 2}, headers=support.headers).json()
    assert [s["id"] for s in page["items"]] == [fourth, third] and page["next"] == str(third)
    last = client.get(
        "/api/v1/ops/swaps", params={"limit": 2, "before_id": page["next"]}, headers=support.headers
    ).json()
    assert [s["id"] for s in last["items"]] == [second, first]
    assert ids(limit=2, before_id=first) == []
    # A time without a zone is ambiguous: refused, not guessed.
    naive = client.get(
        "/api/v1/ops/swaps", params={"from": "2026-11-02T10:00:00"}, headers=support.headers
    )
    assert naive.status_code == 422


def test_one_swap_shows_offers_readings_and_the_charge(
    client: TestClient, db: Database, clock: ManualClock, operator: Account
) -> None:
    network(db, clock)
    second = client.get(
        "/api/v1/ops/swaps", params={"station_id": "ST2", "state": "completed"}, headers=operator.headers
    )
    swap_id = second.json()["items"][0]["id"]
    answer = client.get(f"/api/v1/ops/swaps/{swap_id}", headers=operator.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["swap"]["state"] == "completed" and body["swap"]["rider_id"] == "R1"
    assert (body["unit"], body["currency"]) == ("Wh", "KRW")
    assert [(o["pack_serial"], o["slot_no"], o["state"]) for o in body["offers"]] == [
        ("B-2", 1, "taken")
    ]
    (returned,) = body["returned"]
    assert returned["soc_out_bp"] == 9800 and returned["soc_in_bp"] == 2000
    assert (returned["station_out"], returned["station_in"], returned["usage_units"]) == (
        "ST1",
        "ST2",
        1260,
    )
    assert [(c["pack_serial"], c["usage_units"], c["revenue_minor"]) for c in body["charges"]] == [
        ("B-1", 1260, 378)
    ]
    assert body["revenue_minor"] == 378
    assert [h["rider_id"] for h in body["handed_out"]] == ["R1"]
    codes = {(x["code"], x["ledger"], x["amount"]) for x in body["transfers"]}
    assert ("revenue", "KRW", 378) in codes and ("usage", "Wh", 1260) in codes
    assert client.get("/api/v1/ops/swaps/999999", headers=operator.headers).status_code == 404


def test_alerts_filter_by_kind_station_pack_and_time(
    client: TestClient, db: Database, clock: ManualClock, support: Account
) -> None:
    network(db, clock)

    def kinds(**params: object) -> list[tuple[str, str | None]]:
        answer = client.get("/api/v1/ops/alerts", params=params, headers=support.headers)
        assert answer.status_code == 200, answer.text
        return [(a["kind"], a["pack_serial"]) for a in answer.json()["items"]]

    assert sorted(kinds()) == [("foreign_pack", "X-9"), ("pack_two_places", "B-3")]
    assert kinds(kind="foreign_pack") == [("foreign_pack", "X-9")]
    assert kinds(pack_serial="B-3") == [("pack_two_places", "B-3")]
    assert kinds(station_id="ST1") == []
    assert kinds(since=(clock.now() + timedelta(seconds=1)).isoformat()) == []
    assert len(kinds(since=clock.now().isoformat())) == 2
    assert (
        client.get(
            "/api/v1/ops/alerts", params={"kind": "nonsense"}, headers=support.headers
        ).status_code
        == 422
    )


def test_riders_cannot_read_operator_lists(client: TestClient, db: Database) -> None:
    from tests.api.conftest import rider

    me = rider(client, db)
    assert client.get("/api/v1/ops/swaps", headers=me.headers).status_code == 403
    assert client.get("/api/v1/ops/alerts").status_code == 401


def test_a_soc_that_rose_while_out_is_an_alert(
    client: TestClient, db: Database, clock: ManualClock, support: Account
) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    catalog.add_station(db, "ST9", 4)
    catalog.register_pack(db, "P-1", "G2", soc=95, soh=95, station_id="ST9", slot_no=1)
    catalog.add_rider(db, "R9", "energy")
    payments.top_up(db, "R9", 10_000, "pay-9")
    app = IdToken(TokenType.APP, "R9")
    assert swaps.authorize(db, "ST9", app, request_id="a1").accepted
    swaps.battery_out(db, "ST9", "a1", [BatteryReading(1, "P-1", 9000, 9500)], token=app)
    clock.set(clock.now() + timedelta(minutes=30))
    key = IdToken(TokenType.BATTERY_SERIAL, "P-1")
    swaps.battery_in(db, "ST9", "a2", [BatteryReading(2, "P-1", 9500, 9500)], token=key)
    answer = client.get("/api/v1/ops/alerts", params={"kind": "soc_anomaly"}, headers=support.headers)
    (alert,) = answer.json()["items"]
    assert (alert["pack_serial"], alert["station_id"], alert["rider_id"]) == ("P-1", "ST9", "R9")
    assert "rose" in alert["detail"]
