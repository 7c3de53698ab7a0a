"""Right-sizing through the HTTP API: a station's floor and weights (operators set, staff read,
bad input 422), a rider's consent (the rider's own and staff's), the swap detail's rule, and the
operator's numbers per station and day."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from swapd.domain.riders import IdToken, TokenType
from swapd.services import payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database, ManualClock
from tests import network as net
from tests.api.conftest import Account, rider

POLICY = "/api/v1/ops/stations/ST1/pack-policy"


def test_operators_set_the_floor_and_weights_and_staff_read_them(
    client: TestClient, db: Database, operator: Account, support: Account
) -> None:
    net.network(db)
    before = client.get(POLICY, headers=support.headers)
    assert before.status_code == 200, before.text
    assert before.json()["right_size_floor_bp"] is None
    assert before.json()["policy"]["cycles_weight"] == 0

    body = {"right_size_floor_bp": 3000, "preset": "balanced", "cycles_weight": 5, "reason": "pilot"}
    changed = client.patch(POLICY, json=body, headers=operator.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["right_size_floor_bp"] == 3000
    assert changed.json()["policy"] == {
        "soc_band_bp": 500,
        "rest_weight": 2,
        "cycles_weight": 5,
        "soh_weight": 2,
        "retirement_margin_bp": 500,
    }
    # Support reads, never writes.
    assert client.patch(POLICY, json=body, headers=support.headers).status_code == 403
    off = client.patch(POLICY, json={"right_sizing": False, "reason": "end"}, headers=operator.headers)
    assert off.status_code == 200 and off.json()["right_size_floor_bp"] is None
    assert off.json()["policy"]["cycles_weight"] == 5  # weights left as they were


def test_bad_settings_get_a_clear_4xx(client: TestClient, db: Database, operator: Account) -> None:
    net.network(db)
    for body in (
        {"right_size_floor_bp": 0, "reason": "x"},
        {"right_size_floor_bp": 10_001, "reason": "x"},
        {"cycles_weight": 101, "reason": "x"},
        {"preset": "greedy", "reason": "x"},
        {"right_sizing": True, "reason": "x"},
        {"cycles_weight": 1},
        {"reason": "nothing to change"},
        {"cycles_weight": 1, "reason": "x", "extra": 1},
    ):
        answer = client.patch(POLICY, json=body, headers=operator.headers)
        assert answer.status_code == 422, (body, answer.text)
    unknown = client.patch(
        "/api/v1/ops/stations/NOPE/pack-policy",
        json={"right_size_floor_bp": 3000, "reason": "x"},
        headers=operator.headers,
    )
    assert unknown.status_code == 404


def test_a_rider_sets_their_own_consent(client: TestClient, db: Database, operator: Account) -> None:
    me = rider(client, db)
    url = "/api/v1/me/settings/right-size"
    assert client.get(url, headers=me.headers).json() == {"right_size_consent": "ask"}
    put = client.put(url, json={"right_size_consent": "always"}, headers=me.headers)
    assert put.status_code == 200 and put.json() == {"right_size_consent": "always"}
    assert client.put(url, json={"right_size_consent": "maybe"}, headers=me.headers).status_code == 422
    assert client.get(url, headers=operator.headers).status_code == 403  # riders only
    staff_url = f"/api/v1/ops/riders/{me.rider_id}/right-size"
    by_staff = client.put(staff_url, json={"right_size_consent": "never"}, headers=operator.headers)
    assert by_staff.status_code == 200
    assert client.get(url, headers=me.headers).json() == {"right_size_consent": "never"}
    missing = client.put(
        "/api/v1/ops/riders/NOPE/right-size",
        json={"right_size_consent": "never"},
        headers=operator.headers,
    )
    assert missing.status_code == 404


def test_the_swap_detail_says_which_rule_chose_the_pack_and_the_numbers_count_it(
    client: TestClient, db: Database, clock: ManualClock, operator: Account, support: Account
) -> None:
    start = clock.now()
    net.network(db)
    net.pack(db, "FULL", station_id="ST1", slot_no=1)
    net.pack(db, "HALF", soc_pct=48, station_id="ST1", slot_no=4)
    net.rider(db, "R9")
    payments.top_up(db, "R9", 300, "pay-r9")  # 1,000 Wh: no full pack
    client.patch(POLICY, json={"right_size_floor_bp": 3000, "reason": "pilot"}, headers=operator.headers)
    app = IdToken(TokenType.APP, "R9")
    asked = swaps.authorize(db, "ST1", app)
    assert asked.asks
    taken = swaps.authorize(db, "ST1", app)
    assert taken.accepted and taken.right_sized
    swaps.battery_out(db, "ST1", "9", [BatteryReading(4, "HALF", 4800, 10_000)], token=app)

    detail = client.get(f"/api/v1/ops/swaps/{taken.swap_id}", headers=support.headers)
    assert detail.status_code == 200, detail.text
    choice = detail.json()["choice"]
    assert choice["rule"] == "right_sized" and choice["right_sized"] is True
    assert choice["consent"] == "confirmed"
    assert (choice["required_units"], choice["full_required_units"]) == (816, 1_700)
    assert choice["detail"].startswith("slot 4: highest state of charge the allowance covers")

    days = client.get(
        "/api/v1/ops/right-sizing",
        params={"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()},
        headers=support.headers,
    )
    assert days.status_code == 200, days.text
    (line,) = days.json()
    assert (line["station_id"], line["saved_swaps"], line["asked"], line["declined"]) == (
        "ST1",
        1,
        1,
        0,
    )
    too_long = client.get(
        "/api/v1/ops/right-sizing",
        params={"from": start.isoformat(), "to": (start + timedelta(days=93)).isoformat()},
        headers=support.headers,
    )
    assert too_long.status_code == 422
    spread = client.get("/api/v1/ops/fleet/spread", headers=support.headers)
    assert spread.status_code == 200
    assert spread.json()["packs"] == 2 and spread.json()["cycles_max"] == 1
