"""Operator API: stations (create with a one-time OCPP password, list, edit, disable/enable,
password reset, live slots) and plans (list, get, create validated by the domain)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from swapd.security import verify_password
from swapd.services import catalog, stations
from swapd.store import schema as t
from swapd.store.database import Database
from tests.api.conftest import Account

NEW = {
    "id": "ST1",
    "slot_count": 4,
    "charged_soc_bp": 9_500,
    "name": "Gangnam 1",
    "lat_microdeg": 37_497_942,
    "lon_microdeg": 127_027_621,
}


def _actions(db: Database) -> list[tuple[str, str]]:
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(t.audit_log).order_by(t.audit_log.c.id))
        return [(r.action, r.reason) for r in rows]


def test_an_operator_creates_a_station_and_sees_its_password_once(
    client: TestClient, db: Database, operator: Account, support: Account
) -> None:
    assert client.post("/api/v1/ops/stations", json=NEW, headers=support.headers).status_code == 403
    answer = client.post("/api/v1/ops/stations", json=NEW, headers=operator.headers)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    password = body["ocpp_password"]
    access = stations.access(db, "ST1")
    assert access is not None and access.password_hash is not None
    assert verify_password(password, access.password_hash)
    station = body["station"]
    assert (station["name"], station["lat_microdeg"], station["lon_microdeg"]) == (
        "Gangnam 1",
        37_497_942,
        127_027_621,
    )
    assert (station["charged_soc_bp"], station["min_soh_bp"], station["slot_count"]) == (9_500, 7_000, 4)
    assert station["password_set"] and not station["connected"]
    # Shown once: reading the station back never shows it.
    again = client.get("/api/v1/ops/stations/ST1", headers=support.headers)
    assert again.status_code == 200 and password not in again.text
    assert [s["id"] for s in client.get("/api/v1/ops/stations", headers=support.headers).json()] == [
        "ST1"
    ]
    assert client.post("/api/v1/ops/stations", json=NEW, headers=operator.headers).status_code == 409
    assert _actions(db) == [("station.create", "new station")]


def test_bad_stations_are_refused(client: TestClient, db: Database, operator: Account) -> None:
    for bad in (
        {**NEW, "slot_count": 1},
        {**NEW, "lat_microdeg": 91_000_000},
        {**NEW, "lon_microdeg": None},  # latitude without longitude
        {**NEW, "charged_soc_bp": 10_001},
        {**NEW, "id": "has space"},
        {**NEW, "extra": 1},
    ):
        answer = client.post("/api/v1/ops/stations", json=bad, headers=operator.headers)
        assert answer.status_code == 422, bad
    assert client.get("/api/v1/ops/stations", headers=operator.headers).json() == []
    assert client.get("/api/v1/ops/stations/NOPE", headers=operator.headers).status_code == 404


def test_edit_disable_enable_and_reset_password_are_audited(
    client: TestClient, db: Database, operator: Account, support: Account
) -> None:
    first = client.post("/api/v1/ops/stations", json=NEW, headers=operator.headers).json()
    change = {"reason": "moved across the street", "name": "Gangnam 1b", "min_soh_bp": 7_500}
    assert (
        client.patch("/api/v1/ops/stations/ST1", json=change, headers=support.headers).status_code == 403
    )
    edited = client.patch("/api/v1/ops/stations/ST1", json=change, headers=operator.headers)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["name"], edited.json()["min_soh_bp"]) == ("Gangnam 1b", 7_500)
    assert edited.json()["charged_soc_bp"] == 9_500  # untouched
    nothing = client.patch("/api/v1/ops/stations/ST1", json={"reason": "x"}, headers=operator.headers)
    assert nothing.status_code == 422

    reason = {"reason": "maintenance"}
    assert (
        client.post("/api/v1/ops/stations/ST1/disable", json=reason, headers=support.headers).status_code
        == 403
    )
    disabled = client.post("/api/v1/ops/stations/ST1/disable", json=reason, headers=operator.headers)
    assert disabled.json()["enabled"] is False
    assert stations.access(db, "ST1").enabled is False  # type: ignore[union-attr]
    enabled = client.post(
        "/api/v1/ops/stations/ST1/enable", json={"reason": "fixed"}, headers=operator.headers
    )
    assert enabled.json()["enabled"] is True

    reset = client.post(
        "/api/v1/ops/stations/ST1/password", json={"reason": "leaked"}, headers=operator.headers
    )
    assert reset.status_code == 200
    new_password = reset.json()["ocpp_password"]
    access = stations.access(db, "ST1")
    assert access is not None and access.password_hash is not None
    assert new_password != first["ocpp_password"]
    assert verify_password(new_password, access.password_hash)
    assert not verify_password(first["ocpp_password"], access.password_hash)
    assert _actions(db) == [
        ("station.create", "new station"),
        ("station.edit", "moved across the street"),
        ("station.disable", "maintenance"),
        ("station.enable", "fixed"),
        ("station.password", "leaked"),
    ]


def test_the_slot_view_shows_packs_charge_and_connection(
    client: TestClient, db: Database, operator: Account
) -> None:
    client.post("/api/v1/ops/stations", json=NEW, headers=operator.headers)
    catalog.add_pack_model(db, "G2", 1700)
    catalog.register_pack(db, "B-full", "G2", soc=96, soh=95, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-low", "G2", soc=40, soh=95, station_id="ST1", slot_no=3)
    answer = client.get("/api/v1/ops/stations/ST1/slots", headers=operator.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["connected"] is False and body["last_seen_at"] is None
    assert [
        (s["slot_no"], s["state"], s["pack_serial"], s["soc_bp"], s["charged"]) for s in body["slots"]
    ] == [
        (1, "occupied", "B-full", 9_600, True),
        (2, "available", None, None, False),
        (3, "occupied", "B-low", 4_000, False),  # below the station's 95 % threshold
        (4, "available", None, None, False),
    ]
    # A station whose socket a server process holds (any process: the database records it)
    # shows as connected.
    stations.record_connected(db, "ST1", "c1")
    assert client.get("/api/v1/ops/stations/ST1/slots", headers=operator.headers).json()["connected"]
    listed = client.get("/api/v1/ops/stations", headers=operator.headers).json()
    assert listed[0]["connected"] is True and listed[0]["charged_packs"] == 1
    stations.record_disconnected(db, "ST1", "c1")
    assert not client.get("/api/v1/ops/stations/ST1", headers=operator.headers).json()["connected"]


def test_plans_are_listed_and_created_as_the_domain_allows(
    client: TestClient, db: Database, operator: Account, support: Account
) -> None:
    energy = {
        "id": "energy",
        "kind": "prepaid_energy",
        "currency": "KRW",
        "price_minor": 300,
        "price_units": 1000,
    }
    assert client.post("/api/v1/ops/plans", json=energy, headers=support.headers).status_code == 403
    created = client.post("/api/v1/ops/plans", json=energy, headers=operator.headers)
    assert created.status_code == 201, created.text
    assert (created.json()["unit"], created.json()["price_minor"], created.json()["currency"]) == (
        "Wh",
        300,
        "KRW",
    )
    monthly = {
        "id": "monthly",
        "kind": "subscription",
        "unit": "count",
        "currency": "USD",
        "price_minor": 0,
        "price_units": 1,
        "fee_minor": 2_999,
        "included_units": 30,
    }
    assert client.post("/api/v1/ops/plans", json=monthly, headers=operator.headers).status_code == 201
    refused = [
        {**energy, "id": "e2", "unit": "s"},  # an energy plan counts in Wh
        {**energy, "id": "e3", "currency": "XXX"},
        {**energy, "id": "e4", "price_minor": 0},
        {**monthly, "id": "m2", "fee_minor": 0},
        {**monthly, "id": "m3", "unit": None},
        {**energy, "id": "e5", "price_minor": 1.5},
    ]
    for bad in refused:
        answer = client.post("/api/v1/ops/plans", json=bad, headers=operator.headers)
        assert answer.status_code == 422, (bad, answer.text)
    assert client.post("/api/v1/ops/plans", json=energy, headers=operator.headers).status_code == 409
    listed = client.get("/api/v1/ops/plans", headers=support.headers).json()
    assert [(p["id"], p["kind"], p["riders"]) for p in listed] == [
        ("energy", "prepaid_energy", 0),
        ("monthly", "subscription", 0),
    ]
    one = client.get("/api/v1/ops/plans/monthly", headers=support.headers).json()
    assert (one["fee_minor"], one["included_units"], one["currency"]) == (2_999, 30, "USD")
    assert client.get("/api/v1/ops/plans/nope", headers=support.headers).status_code == 404


def test_disabling_a_connected_station_closes_its_socket(
    client: TestClient, db: Database, operator: Account
) -> None:
    import base64

    from starlette.websockets import WebSocketDisconnect

    created = client.post("/api/v1/ops/stations", json=NEW, headers=operator.headers).json()
    auth = base64.b64encode(f"ST1:{created['ocpp_password']}".encode()).decode()
    with client.websocket_connect(
        "/ocpp/ST1", subprotocols=["ocpp2.1"], headers={"Authorization": f"Basic {auth}"}
    ) as ws:
        assert client.get("/api/v1/ops/stations/ST1/slots", headers=operator.headers).json()["connected"]
        disabled = client.post(
            "/api/v1/ops/stations/ST1/disable", json={"reason": "vandalised"}, headers=operator.headers
        )
        assert disabled.status_code == 200 and disabled.json()["connected"] is False
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1008
