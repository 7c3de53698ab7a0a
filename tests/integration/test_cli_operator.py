"""The operator command line, through ``swapd.cli.app`` on SQLite and PostgreSQL.

Happy paths are checked on the exact ``--json`` output; bad input must exit 2 with one line on
stderr, no traceback, nothing on stdout, and no change to any table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result

from swapd.api import operator_riders, operator_swaps, rider
from swapd.cli import app
from swapd.domain.riders import IdToken, TokenType
from swapd.security import verify_password
from swapd.services import stations, swaps
from swapd.store import schema as t
from swapd.store.database import Database
from tests.cli_runner import CliRunner
from tests.integration.cli_process import succeeded, swapd
from tests.owing import owing

runner = CliRunner()


def invoke(url: str, *args: str) -> Result:
    return runner.invoke(app, [*args, "--database", url])


def ok(url: str, *args: str) -> Result:
    result = invoke(url, *args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def js(url: str, *args: str) -> Any:
    result = ok(url, *args, "--json")
    return json.loads(result.stdout)


def refused(url: str, *args: str, code: int = 2) -> str:
    """Run a command that must fail with one clear line on stderr; return that line."""
    result = invoke(url, *args)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def snapshot(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [
                sorted(repr(tuple(row)) for row in connection.execute(sa.select(table)))
                for table in t.metadata.sorted_tables
            ]
    finally:
        engine.dispose()


def network(url: str) -> None:
    """G2 packs, station ST1 with 6 slots, an energy plan, rider R1 with 10,000 KRW."""
    ok(url, "pack-model", "add", "G2", "--nominal-wh", "1700")
    ok(url, "station", "add", "ST1", "--slots", "6")
    ok(url, "plan", "add", "energy", "--kind", "prepaid_energy", "--currency", "KRW",
       "--price-minor", "300", "--price-units", "1000")  # fmt: skip
    ok(url, "rider", "add", "R1", "--plan", "energy")
    ok(url, "pack", "add", "B-0001", "--model", "G2", "--soc", "98", "--soh", "95")
    ok(url, "pack", "restock", "B-0001", "--station", "ST1", "--slot", "3", "--soc", "98")
    ok(url, "topup", "R1", "10000", "--ref", "pay-1")


# -- happy paths ----------------------------------------------------------------------------------


def _station_add_and_password(url: str) -> None:
    """station add prints the OCPP URL and a password shown once; station password rotates it."""
    added = js(url, "station", "add", "ST1", "--slots", "6", "--host", "swap.example", "--port", "9000")
    password = added.pop("password")
    assert added == {
        "station": "ST1",
        "name": None,
        "lat": None,
        "lon": None,
        "lat_microdeg": None,
        "lon_microdeg": None,
        "slot_count": 6,
        "charged_soc": "90.0",
        "min_soh": "70.0",
        "url": "ws://swap.example:9000/ocpp/ST1",
        "username": "ST1",
    }
    db = Database.open(url)
    try:
        access = stations.access(db, "ST1")
        assert access is not None and access.password_hash is not None
        assert verify_password(password, access.password_hash)
        assert password not in access.password_hash

        st2 = js(
            url,
            "station",
            "add",
            "ST2",
            "--slots",
            "4",
            "--charged-soc",
            "95.5",
            "--min-soh",
            "80",
            "--tls",
        )
        assert st2["url"] == "wss://127.0.0.1:8000/ocpp/ST2"
        assert (st2["charged_soc"], st2["min_soh"], st2["slot_count"]) == ("95.5", "80.0", 4)

        rotated = js(url, "station", "password", "ST1")
        assert rotated["url"] == "ws://127.0.0.1:8000/ocpp/ST1"
        assert rotated["password"] != password and 16 <= len(rotated["password"]) <= 64
        access = stations.access(db, "ST1")
        assert access is not None and access.password_hash is not None
        assert verify_password(rotated["password"], access.password_hash)
        assert not verify_password(password, access.password_hash)
    finally:
        db.dispose()


def test_catalog_commands(db_url: str) -> None:
    url = db_url
    assert js(url, "pack-model", "add", "G2", "--nominal-wh", "1700") == {
        "code": "G2",
        "nominal_wh": 1700,
    }

    _station_add_and_password(url)

    assert js(
        url,
        "plan",
        "add",
        "energy",
        "--kind",
        "prepaid_energy",
        "--currency",
        "KRW",
        "--price-minor",
        "300",
        "--price-units",
        "1000",
    ) == {
        "plan": "energy",
        "kind": "prepaid_energy",
        "unit": "Wh",
        "currency": "KRW",
        "price_minor": 300,
        "price": "300 KRW",
        "price_units": 1000,
        "granularity_s": 60,
        "time_hold_s": 3600,
        "fee_minor": 0,
        "fee": "0 KRW",
        "included_units": 0,
        "carry_over": True,
        "prorate_first_cycle": True,
        "listed": True,
        "offline_swaps_max": 1,
    }
    time_plan = js(
        url, "plan", "add", "time", "--kind", "prepaid_time", "--currency", "KRW",
        "--price-minor", "2000", "--price-units", "3600",
        "--granularity-s", "30", "--time-hold-s", "1800",
    )  # fmt: skip
    assert (time_plan["unit"], time_plan["granularity_s"], time_plan["time_hold_s"]) == ("s", 30, 1800)
    monthly = js(
        url, "plan", "add", "monthly", "--kind", "subscription", "--unit", "Wh", "--currency", "USD",
        "--price-minor", "0", "--price-units", "1000", "--fee-minor", "2999",
        "--included-units", "50000", "--no-carry-over", "--no-prorate",
    )  # fmt: skip
    assert {k: monthly[k] for k in ("kind", "unit", "fee", "included_units", "carry_over")} == {
        "kind": "subscription",
        "unit": "Wh",
        "fee": "29.99 USD",
        "included_units": 50000,
        "carry_over": False,
    }
    assert monthly["prorate_first_cycle"] is False

    assert js(url, "rider", "add", "R1", "--plan", "energy", "--vehicle-packs", "2") == {
        "rider": "R1",
        "plan": "energy",
        "status": "active",
        "vehicle_packs": 2,
    }
    ok(url, "rider", "add", "R2", "--plan", "monthly")
    assert js(url, "rider", "block", "R2")["status"] == "blocked"
    assert js(url, "rider", "unblock", "R2")["status"] == "active"
    assert [(p["plan"], p["riders"]) for p in js(url, "plan", "list")] == [
        ("energy", 1),
        ("monthly", 1),
        ("time", 0),
    ]

    assert js(
        url, "pack", "add", "B-0001", "--model", "G2", "--soc", "98", "--soh", "95",
        "--station", "ST1", "--slot", "3",
    ) == {
        "serial": "B-0001",
        "model": "G2",
        "nominal_wh": 1700,
        "status": "in_slot",
        "place": "slot 3 of station ST1",
        "station_id": "ST1",
        "slot_no": 3,
        "rider_id": None,
        "reserved_swap_id": None,
        "soc_bp": 9_800,
        "soh_bp": 9_500,
        "deliverable_wh": 1583,
        "cycle_count": 0,
    }  # fmt: skip
    depot = js(url, "pack", "add", "B-0002", "--model", "G2")
    assert (depot["status"], depot["place"], depot["soc_bp"], depot["soh_bp"]) == (
        "in_stock",
        "in stock",
        0,
        10_000,
    )
    restocked = js(url, "pack", "restock", "B-0002", "--station", "ST1", "--slot", "5", "--soc", "99.5")
    assert (restocked["status"], restocked["slot_no"], restocked["soc_bp"]) == ("in_slot", 5, 9_950)
    ok(url, "pack", "add", "B-0003", "--model", "G2", "--soc", "50", "--station", "ST1", "--slot", "1")
    assert js(url, "pack", "quarantine", "B-0003")["place"] == "quarantined"
    assert js(url, "pack", "retire", "B-0003")["status"] == "retired"
    ok(url, "pack", "add", "B-0004", "--model", "G2", "--station", "ST2", "--slot", "2")
    withdrawn = js(url, "pack", "withdraw", "B-0004")
    withdrawn_place = (withdrawn["status"], withdrawn["station_id"], withdrawn["slot_no"])
    assert withdrawn_place == ("in_stock", None, None)

    assert [p["serial"] for p in js(url, "pack", "list", "--station", "ST1")] == ["B-0001", "B-0002"]
    assert [(p["serial"], p["status"]) for p in js(url, "pack", "list")] == [
        ("B-0001", "in_slot"),
        ("B-0002", "in_slot"),
        ("B-0003", "retired"),
        ("B-0004", "in_stock"),
    ]
    assert js(url, "pack-model", "list") == [{"code": "G2", "nominal_wh": 1700, "packs": 4}]

    shown = js(url, "station", "show", "ST1")
    assert len(shown["slots"]) == 6
    assert shown["slots"][0] == {
        "slot": 1,
        "state": "available",
        "pack": None,
        "model": None,
        "soc": None,
        "soh": None,
        "ready": False,
        "reserved_swap_id": None,
    }
    assert shown["slots"][2] == {
        "slot": 3,
        "state": "occupied",
        "pack": "B-0001",
        "model": "G2",
        "soc": "98.0",
        "soh": "95.0",
        "ready": True,
        "reserved_swap_id": None,
    }
    assert (shown["packs"], shown["charged_packs"], shown["password_set"], shown["booted_at"]) == (
        2,
        2,
        True,
        None,
    )
    listed = js(url, "station", "list")
    assert [(s["id"], s["slot_count"], s["packs"], s["charged_packs"]) for s in listed] == [
        ("ST1", 6, 2, 2),
        ("ST2", 4, 0, 0),
    ]

    assert js(url, "card", "add", "04A1B2C3", "--rider", "R1") == {
        "token": "04A1B2C3",
        "type": "ISO14443",
        "rider": "R1",
        "operator": False,
    }
    assert js(url, "card", "add", "STAFF-1", "--operator", "--type", "ISO15693") == {
        "token": "STAFF-1",
        "type": "ISO15693",
        "rider": None,
        "operator": True,
    }
    # A registered staff card is an operator token at any station.
    db = Database.open(url)
    try:
        staff = swaps.authorize(db, "ST1", IdToken(TokenType.RFID_15693, "STAFF-1"))
        assert staff.accepted and staff.operator
        card = swaps.authorize(db, "ST2", IdToken(TokenType.RFID, "04A1B2C3"))
        assert (card.accepted, card.reason) == (False, "no_charged_pack")
    finally:
        db.dispose()

    # Every table view renders without error.
    for command in (
        ("pack-model", "list"),
        ("pack", "list"),
        ("pack", "list", "--station", "ST1"),
        ("station", "list"),
        ("station", "show", "ST1"),
        ("plan", "list"),
        ("rider", "list"),
        ("rider", "show", "R1"),
        ("alerts",),
    ):
        assert ok(url, *command).stderr == ""


def test_money_commands_and_rider_views(db_url: str) -> None:
    url = db_url
    network(url)
    ok(url, "plan", "add", "monthly", "--kind", "subscription", "--unit", "Wh", "--currency", "USD",
       "--price-minor", "0", "--price-units", "1000", "--fee-minor", "2999",
       "--included-units", "50000", "--no-prorate")  # fmt: skip
    ok(url, "rider", "add", "R2", "--plan", "monthly")
    ok(url, "pack", "add", "B-0002", "--model", "G2", "--soc", "100", "--station", "ST1", "--slot", "5")
    ok(url, "rider", "add", "R3", "--plan", "energy", "--vehicle-packs", "2")

    # The network's top-up, repeated with the same reference: nothing changes.
    again = js(url, "topup", "R1", "10000", "--ref", "pay-1")
    assert {k: again[k] for k in ("payment_ref", "amount", "units", "unit", "repeated")} == {
        "payment_ref": "pay-1",
        "amount": "10,000 KRW",
        "units": 33333,
        "unit": "Wh",
        "repeated": True,
    }
    assert again["balance"]["available_units"] == 33333

    staff = js(url, "topup", "R1", "1000")
    assert staff["payment_ref"].startswith("staff-")
    assert (staff["units"], staff["repeated"]) == (3333, False)
    assert js(url, "topup", "R1", "1000")["payment_ref"] != staff["payment_ref"]  # unique
    balance = js(url, "topup", "R3", "2500", "--ref", "pay-3")["balance"]
    assert balance == {
        "rider_id": "R3",
        "plan_id": "energy",
        "status": "active",
        "unit": "Wh",
        "quantity": "energy_wh",
        "currency": "KRW",
        "posted_units": 8333,
        "available_units": 8333,
        "available_value_minor": 2500,
        "available_value": "2,500 KRW",
        "held_units": 0,
        "held_value_minor": 0,
        "held_value": "0 KRW",
        "prepaid_minor": 2500,
        "prepaid": "2,500 KRW",
        "overdrawn_units": 0,
        "receivable_minor": 0,
        "receivable": "0 KRW",
        "packs_held": [],
        "subscription": None,
    }

    # R1 now has 33,333 + 3,333 + 3,333 = 39,999 Wh for 12,000 KRW.
    adjusted = js(
        url, "adjust", "R1", "-999", "--reason", "meter fault", "--actor", "ops", "--key", "adj-1"
    )
    assert (adjusted["units"], adjusted["unit"], adjusted["repeated"]) == (-999, "Wh", False)
    # 999 of 39,999 Wh stand for round(12,000 * 999 / 39,999) = 300 KRW of prepaid money.
    assert (adjusted["balance"]["available_units"], adjusted["balance"]["prepaid_minor"]) == (
        39000,
        11700,
    )
    goodwill = js(url, "adjust", "R1", "500", "--reason", "sorry", "--actor", "ops", "--key", "adj-2")
    assert (goodwill["units"], goodwill["balance"]["available_units"]) == (500, 39500)

    refund = js(
        url, "refund", "R1", "1170", "--reason", "moving away", "--actor", "ops", "--key", "ref-1"
    )
    # 1,170 of 11,700 KRW take ceil(39,500 * 1,170 / 11,700) = 3,950 Wh with them.
    assert {k: refund[k] for k in ("amount_minor", "amount", "units", "unit", "repeated")} == {
        "amount_minor": 1170,
        "amount": "1,170 KRW",
        "units": 3950,
        "unit": "Wh",
        "repeated": False,
    }
    assert (refund["balance"]["available_units"], refund["balance"]["prepaid"]) == (35550, "10,530 KRW")
    repeat = js(
        url, "refund", "R1", "1170", "--reason", "moving away", "--actor", "ops", "--key", "ref-1"
    )
    assert (repeat["repeated"], repeat["balance"]["available_units"]) == (True, 35550)

    subscribed = js(url, "subscribe", "R2", "--ref", "sub-1")
    assert {k: subscribed[k] for k in ("fee_minor", "fee", "units", "unit", "repeated")} == {
        "fee_minor": 2999,
        "fee": "29.99 USD",
        "units": 50000,
        "unit": "Wh",
        "repeated": False,
    }
    assert subscribed["balance"]["prepaid"] == "29.99 USD"

    # R3 takes both charged packs (the app path, decided by the services): 1,583 + 1,700 Wh held.
    db = Database.open(url)
    try:
        offer = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R3"))
        assert offer.accepted and sorted(offer.offered_slots) == [3, 5]
        foreign = swaps.authorize(db, "ST1", IdToken(TokenType.BATTERY_SERIAL, "X-404"))
        assert foreign.reason == "unknown_pack"
    finally:
        db.dispose()

    r3 = js(url, "rider", "show", "R3")
    assert {
        k: r3[k]
        for k in (
            "posted_units",
            "held_units",
            "held_value_minor",
            "held_value",
            "available_units",
            "available_value",
            "prepaid",
            "kind",
            "terms",
            "subscription",
        )
    } == {
        "posted_units": 8333,
        "held_units": 3283,
        "held_value_minor": 985,  # round(2,500 * 3,283 / 8,333)
        "held_value": "985 KRW",
        "available_units": 5050,
        "available_value": "1,515 KRW",  # round(2,500 * 5,050 / 8,333)
        "prepaid": "2,500 KRW",
        "kind": "prepaid_energy",
        "terms": "300 KRW per 1,000 Wh",
        "subscription": None,
    }
    assert [(s["station_id"], s["rider_id"], s["state"], s["reason"]) for s in r3["swaps"]] == [
        ("ST1", "R3", "offered", None)
    ]
    # The CLI prints the API's views (readmodels' balance_fields, swap_view, rider_line_view).
    assert set(rider.BalanceOut.model_fields) <= set(r3)
    assert set(r3["swaps"][0]) == set(operator_swaps.SwapOut.model_fields)
    assert [(x["code"], x["kind"], x["amount"], x["ledger"]) for x in r3["transfers"]] == [
        ("hold", "pending", 1583, "Wh"),
        ("hold", "pending", 1700, "Wh"),
        ("top_up", "posted", 8333, "Wh"),
        ("top_up", "posted", 2500, "KRW"),
    ]
    assert (r3["transfers"][3]["debit"], r3["transfers"][3]["credit"]) == ("cash", "prepaid:R3")

    shown = js(url, "station", "show", "ST1")
    reserved = {s["slot"]: s["reserved_swap_id"] for s in shown["slots"] if s["pack"]}
    assert reserved == {3: offer.swap_id, 5: offer.swap_id}
    assert shown["reserved_packs"] == 2 and shown["charged_packs"] == 0

    r2 = js(url, "rider", "show", "R2")
    assert r2["subscription"]["cycle_no"] == 1
    assert (r2["available_units"], r2["terms"]) == (50000, "29.99 USD a month for 50,000 Wh, no overage")

    riders = {r["id"]: r for r in js(url, "rider", "list")}
    assert set(operator_riders.RiderLineOut.model_fields) <= set(riders["R1"])
    assert isinstance(riders["R1"].pop("created_at"), str)
    assert riders["R1"] == {
        "id": "R1",
        "email": None,
        "plan_id": "energy",
        "status": "active",
        "vehicle_packs": 1,
        "unit": "Wh",
        "available_units": 35550,
        "held_units": 0,
        "posted_units": 35550,
        "packs_held": 0,
    }
    assert (riders["R3"]["held_units"], riders["R3"]["available_units"]) == (3283, 5050)

    alerts = js(url, "alerts", "--limit", "5")
    assert len(alerts) == 1
    assert {k: alerts[0][k] for k in ("kind", "station", "pack", "rider")} == {
        "kind": "foreign_pack",
        "station": "ST1",
        "pack": "X-404",
        "rider": None,
    }
    assert "X-404" in alerts[0]["detail"]


def test_human_output(db_url: str) -> None:
    url = db_url
    ok(url, "pack-model", "add", "G2", "--nominal-wh", "1700")
    added = ok(url, "station", "add", "ST1", "--slots", "12", "--host", "10.0.0.5", "--port", "8080")
    lines = added.stdout.splitlines()
    assert "OCPP URL:  ws://10.0.0.5:8080/ocpp/ST1" in lines
    assert "username:  ST1" in lines
    password = next(line for line in lines if line.startswith("password:")).split()[1]
    assert len(password) == 32
    ok(url, "plan", "add", "energy", "--kind", "prepaid_energy", "--currency", "KRW",
       "--price-minor", "300", "--price-units", "1000")  # fmt: skip
    ok(url, "rider", "add", "R1", "--plan", "energy")
    topup = ok(url, "topup", "R1", "10000", "--ref", "pay-1").stdout
    assert "top-up pay-1: 10,000 KRW credited 33,333 Wh to rider R1" in topup
    assert "available  33,333 Wh  (worth 10,000 KRW)" in topup


# -- what a rider owes ----------------------------------------------------------------------------


def test_settle_records_a_payment_of_what_a_rider_owes(db_url: str) -> None:
    url = db_url
    db = Database.open(url)
    try:
        assert owing(db, "R6") == 425
    finally:
        db.dispose()
    ok(url, "rider", "add", "R7", "--plan", "owing")
    assert js(url, "rider", "show", "R6")["receivable"] == "425 KRW"
    assert "owed 425 KRW" in ok(url, "rider", "show", "R6").stdout

    paid = js(url, "settle", "R6", "300", "--ref", "bank-1")
    balance = paid.pop("balance")
    assert paid == {
        "rider": "R6",
        "payment_ref": "bank-1",
        "amount_minor": 300,
        "amount": "300 KRW",
        "owed_minor": 125,
        "owed": "125 KRW",
        "repeated": False,
    }
    assert (balance["receivable_minor"], balance["receivable"]) == (125, "125 KRW")
    again = js(url, "settle", "R6", "300", "--ref", "bank-1")
    assert again == {**paid, "repeated": True, "balance": balance}

    before = snapshot(url)
    assert "payment bank-1 was applied already" in refused(url, "settle", "R6", "200", "--ref", "bank-1")
    assert "payment bank-1 was applied already" in refused(url, "settle", "R7", "300", "--ref", "bank-1")
    assert "rider R6 owes 125 minor units, not 126" in refused(
        url, "settle", "R6", "126", "--ref", "bank-2"
    )
    assert "rider R7 owes 0 minor units" in refused(url, "settle", "R7", "1", "--ref", "bank-3")
    assert "unknown rider NOPE" in refused(url, "settle", "NOPE", "1", "--ref", "bank-4")
    assert "amount_minor must be a positive integer" in refused(
        url, "settle", "R6", "-5", "--ref", "bank-5"
    )
    assert "payment reference must be" in refused(url, "settle", "R6", "5", "--ref", "")
    assert snapshot(url) == before

    human = ok(url, "settle", "R6", "125", "--ref", "bank-2").stdout
    assert "payment bank-2: 125 KRW received from rider R6; still owed 0 KRW" in human
    assert js(url, "rider", "show", "R6")["receivable_minor"] == 0
    assert js(url, "ledger", "check")["ok"] is True


def test_settle_in_a_real_process(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        owing(db, "R6")
    finally:
        db.dispose()
    settled = json.loads(
        succeeded(swapd("settle", "R6", "425", "--ref", "bank-1", "--database", db_url, "--json"))
    )
    assert (settled["owed_minor"], settled["repeated"]) == (0, False)
    refusal = swapd("settle", "R6", "1", "--ref", "bank-2", "--database", db_url)
    assert refusal.returncode == 2 and refusal.stdout == ""
    assert refusal.stderr.splitlines() == ["error: rider R6 owes 0 minor units, not 1"]
    assert "ledger is consistent" in succeeded(swapd("ledger", "check", "--database", db_url))


# -- swap request (S02) ---------------------------------------------------------------------------


def test_swap_request_refused_without_credit(db_url: str) -> None:
    url = db_url
    network(url)
    ok(url, "rider", "add", "R9", "--plan", "energy")
    result = invoke(url, "swap", "request", "--station", "ST1", "--rider", "R9", "--json")
    assert result.exit_code == 1, result.output
    answer = json.loads(result.stdout)
    swap_id = answer.pop("swap_id")
    assert isinstance(swap_id, int)
    assert answer == {
        "accepted": False,
        "reason": "no_credit",
        "text": "Not enough allowance: please top up",
        "station": "ST1",
        "rider": "R9",
        "request_id": None,
        "slots": [],
    }
    human = invoke(url, "swap", "request", "--station", "ST1", "--rider", "R9")
    assert human.exit_code == 1
    assert human.stdout == "refused: no_credit: Not enough allowance: please top up\n"
    ok(url, "rider", "block", "R1")
    blocked = invoke(url, "swap", "request", "--station", "ST1", "--rider", "R1", "--json")
    assert (blocked.exit_code, json.loads(blocked.stdout)["reason"]) == (1, "rider_blocked")
    assert js(url, "rider", "show", "R9")["held_units"] == 0  # a refusal holds nothing


# -- bad input ------------------------------------------------------------------------------------

LONG = "x" * 30

BAD: dict[str, tuple[tuple[str, ...], str]] = {
    "unknown rider": (("topup", "NOPE", "100"), "error: unknown rider NOPE"),
    "negative amount": (("topup", "R1", "-5"), "amount_minor must be a positive integer, got -5"),
    "zero amount": (("topup", "R1", "0"), "amount_minor must be a positive integer, got 0"),
    "negative refund": (
        ("refund", "R1", "-5", "--reason", "x", "--actor", "ops", "--key", "k"),
        "positive integer",
    ),
    "refund too much": (
        ("refund", "R1", "10001", "--reason", "x", "--actor", "ops", "--key", "k"),
        "has 10000 minor units of prepaid money, not 10001",
    ),
    "zero adjustment": (
        ("adjust", "R1", "0", "--reason", "x", "--actor", "ops", "--key", "k"),
        "units must be a non-zero integer, got 0",
    ),
    "adjust unknown rider": (
        ("adjust", "NOPE", "5", "--reason", "x", "--actor", "ops", "--key", "k"),
        "unknown rider NOPE",
    ),
    "subscribe prepaid rider": (("subscribe", "R1"), "not a subscription"),
    "slot out of range": (
        ("pack", "add", "B-9", "--model", "G2", "--station", "ST1", "--slot", "99"),
        "error: slot 99 does not exist at station ST1 (slots 1..6)",
    ),
    "occupied slot": (
        ("pack", "add", "B-9", "--model", "G2", "--station", "ST1", "--slot", "3"),
        "slot 3 of station ST1 holds pack B-0001",
    ),
    "station without slot": (
        ("pack", "add", "B-9", "--model", "G2", "--station", "ST1"),
        "give both a station and a slot, or neither",
    ),
    "duplicate pack": (("pack", "add", "B-0001", "--model", "G2"), "pack B-0001 is registered already"),
    "unknown pack model": (("pack", "add", "B-9", "--model", "G7"), "unknown pack model G7"),
    "soc above 100": (("pack", "add", "B-9", "--model", "G2", "--soc", "100.5"), "soc must be between"),
    "markup in serial": (("pack", "add", "B[/x]", "--model", "G2"), "got 'B[/x]'"),
    "long serial": (("pack", "add", LONG * 3, "--model", "G2"), f"got '{LONG * 3}'"),
    "restock unknown pack": (
        ("pack", "restock", "NOPE", "--station", "ST1", "--slot", "1", "--soc", "50"),
        "unknown pack NOPE",
    ),
    "restock pack in a slot": (
        ("pack", "restock", "B-0001", "--station", "ST1", "--slot", "1", "--soc", "50"),
        "withdraw it first",
    ),
    "withdraw unknown pack": (("pack", "withdraw", "NOPE"), "unknown pack NOPE"),
    "duplicate station": (
        ("station", "add", "ST1", "--slots", "4"),
        "error: station ST1 exists already",
    ),
    "one slot station": (("station", "add", "ST9", "--slots", "1"), "a station has 2..512 slots, got 1"),
    "password unknown station": (("station", "password", "NOPE"), "unknown station NOPE"),
    "show unknown station": (("station", "show", "NOPE"), "unknown station NOPE"),
    "list unknown station": (("pack", "list", "--station", "NOPE"), "unknown station NOPE"),
    "duplicate pack model": (("pack-model", "add", "G2", "--nominal-wh", "1"), "exists already"),
    "zero energy model": (("pack-model", "add", "G9", "--nominal-wh", "0"), "nominal_wh must be"),
    "unknown plan kind": (
        (
            "plan",
            "add",
            "p2",
            "--kind",
            "weekly",
            "--currency",
            "KRW",
            "--price-minor",
            "1",
            "--price-units",
            "1",
        ),
        "unknown plan kind 'weekly'",
    ),
    "subscription without unit": (
        (
            "plan",
            "add",
            "p2",
            "--kind",
            "subscription",
            "--currency",
            "KRW",
            "--price-minor",
            "0",
            "--price-units",
            "1",
            "--fee-minor",
            "100",
            "--included-units",
            "10",
        ),
        "a subscription plan needs --unit Wh, s or count",
    ),
    "subscription without fee": (
        (
            "plan",
            "add",
            "p2",
            "--kind",
            "subscription",
            "--unit",
            "s",
            "--currency",
            "KRW",
            "--price-minor",
            "0",
            "--price-units",
            "1",
            "--included-units",
            "10",
        ),
        "fee_minor must be a positive integer, got 0",
    ),
    "unknown currency": (
        (
            "plan",
            "add",
            "p2",
            "--kind",
            "prepaid_time",
            "--currency",
            "XXX",
            "--price-minor",
            "1",
            "--price-units",
            "1",
        ),
        "unknown currency 'XXX'",
    ),
    "duplicate plan": (
        (
            "plan",
            "add",
            "energy",
            "--kind",
            "prepaid_time",
            "--currency",
            "KRW",
            "--price-minor",
            "1",
            "--price-units",
            "1",
        ),
        "plan energy exists already",
    ),
    "rider on unknown plan": (("rider", "add", "R2", "--plan", "nope"), "unknown plan nope"),
    "duplicate rider": (("rider", "add", "R1", "--plan", "energy"), "rider R1 exists already"),
    "nine pack vehicle": (
        ("rider", "add", "R2", "--plan", "energy", "--vehicle-packs", "9"),
        "a vehicle takes 1..8 packs, got 9",
    ),
    "block unknown rider": (("rider", "block", "NOPE"), "unknown rider NOPE"),
    "show unknown rider": (("rider", "show", "NOPE"), "unknown rider NOPE"),
    "card for unknown rider": (("card", "add", "C1", "--rider", "NOPE"), "unknown rider NOPE"),
    "card for nobody": (("card", "add", "C1"), "give either --rider RIDER or --operator"),
    "card for both": (("card", "add", "C1", "--rider", "R1", "--operator"), "give either"),
    "card of unknown type": (("card", "add", "C1", "--rider", "R1", "--type", "Central"), "card type"),
    "swap at unknown station": (
        ("swap", "request", "--station", "NOPE", "--rider", "R1"),
        "unknown station",
    ),
    "swap for unknown rider": (
        ("swap", "request", "--station", "ST1", "--rider", "NOPE"),
        "unknown rider",
    ),
    "swap with no timeout": (
        ("swap", "request", "--station", "ST1", "--rider", "R1", "--timeout-s", "0"),
        "--timeout-s must be",
    ),
    "alerts limit zero": (("alerts", "--limit", "0"), "--limit must be 1 or more, got 0"),
    "missing csv": (("pack", "import", "/nonexistent/packs.csv"), "No such file or directory"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(db_url: str, case: str) -> None:
    network(db_url)
    args, expected = BAD[case]
    before = snapshot(db_url)
    line = refused(db_url, *args)
    assert expected in line
    assert snapshot(db_url) == before


def test_bad_input_with_json_is_one_json_line(db_url: str) -> None:
    network(db_url)
    result = invoke(db_url, "rider", "show", "NOPE", "--json")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert json.loads(lines[0]) == {"error": {"code": "not_found", "message": "unknown rider NOPE"}}


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"
    assert f"directory {tmp_path / 'missing' / 'dir'} does not exist" in refused(url, "station", "list")


# -- CSV import -----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_pack_import_reports_every_bad_row_and_imports_nothing(db_url: str, tmp_path: Path) -> None:
    network(db_url)
    bad = write(
        tmp_path / "packs.csv",
        "serial,model,soh,soc,station,slot\n"
        "P-1,G2,100,95,ST1,1\n"  # good
        "P-2,G9,100,95,,\n"  # line 3: unknown model
        "P 3,G2,100,95,,\n"  # line 4: bad serial
        "P-4,G2,100,95,ST1,99\n"  # line 5: slot out of range
        "\n"  # blank lines are skipped, but counted
        "P-1,G2,,,,\n"  # line 7: serial repeated
        "P-6,G2,100,95,ST1,x\n"  # line 8: slot not a number
        "P-7,G2,100,95,ST1,1\n"  # line 9: slot given twice
        "P-8,G2,101,95,,\n"  # line 10: SoH above 100
        "B-0001,G2,100,95,,\n"  # line 11: registered already
        "P-10,G2,100,95,ST1,3\n"  # line 12: slot occupied
        "P-11,G2,100,95,ST1,2,extra\n"  # line 13: too many fields
        "P-12,G2,100,95,ST1,2\n",  # good
    )
    expected = [
        (3, "unknown pack model G9"),
        (4, "pack serial must be 1-50 printable characters without spaces, got 'P 3'"),
        (5, "slot 99 does not exist at station ST1 (slots 1..6)"),
        (7, "pack P-1 is given on line 2 already"),
        (8, "slot must be a whole number, got 'x'"),
        (9, "slot 1 of station ST1 is given on line 2 already"),
        (10, "soh must be between 0 and 100, got 101"),
        (11, "pack B-0001 is registered already"),
        (12, "slot 3 of station ST1 holds pack B-0001"),
        (13, "7 fields, but the header names 6"),
    ]
    before = snapshot(db_url)

    result = invoke(db_url, "pack", "import", str(bad))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        *(f"error: {bad} line {line}: {message}" for line, message in expected),
        f"error: 10 bad rows in {bad}; nothing was imported",
    ]
    assert snapshot(db_url) == before

    as_json = invoke(db_url, "pack", "import", str(bad), "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {
        "file": str(bad),
        "imported": 0,
        "bad_rows": [{"line": line, "error": message} for line, message in expected],
    }
    assert snapshot(db_url) == before

    good = write(
        tmp_path / "good.csv",
        "\ufeffSerial,Model,SoC,Station,Slot\n"  # a byte-order mark, other column order and case
        "P-1,G2,95,ST1,1\n"
        "P-2,G2,50.5,,\n"
        "P-3,G2,,ST1,2\n",
    )
    assert js(db_url, "pack", "import", str(good)) == {"file": str(good), "imported": 3}
    packs = {p["serial"]: p for p in js(db_url, "pack", "list")}
    places = {
        s: (packs[s]["place"], packs[s]["soc_bp"], packs[s]["soh_bp"]) for s in ("P-1", "P-2", "P-3")
    }
    assert places == {
        "P-1": ("slot 1 of station ST1", 9_500, 10_000),
        "P-2": ("in stock", 5_050, 10_000),
        "P-3": ("slot 2 of station ST1", 0, 10_000),
    }
    assert js(db_url, "station", "show", "ST1")["slots"][1]["pack"] == "P-3"


def test_pack_import_of_a_large_file(db_url: str, tmp_path: Path) -> None:
    network(db_url)
    rows = "".join(f"L-{i:04d},G2,{90 + i % 10},{i % 101},,\n" for i in range(600))
    big = write(tmp_path / "big.csv", "serial,model,soh,soc,station,slot\n" + rows)
    result = ok(db_url, "pack", "import", str(big))
    assert result.stdout == f"imported 600 packs from {big}\n"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    packs = js(db_url, "pack", "list")
    assert len(packs) == 601
    last = next(p for p in packs if p["serial"] == "L-0599")
    assert (last["soh_bp"], last["soc_bp"], last["status"]) == (9_900, 9_400, "in_stock")
    # The same file again: every row is bad now, and nothing changes.
    before = snapshot(db_url)
    again = invoke(db_url, "pack", "import", str(big), "--json")
    assert again.exit_code == 2
    assert len(json.loads(again.stdout)["bad_rows"]) == 600
    assert snapshot(db_url) == before


BAD_FILES: dict[str, tuple[str, str]] = {
    "empty": ("", "is empty"),
    "no header": ("B-1,G2,100,0,,\n", "must name the columns"),
    "unknown column": ("serial,model,colour\nB-1,G2,red\n", "must name the columns"),
    "header only": ("serial,model\n", "has no pack rows"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_pack_import_of_a_bad_file(db_url: str, tmp_path: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = write(tmp_path / "packs.csv", text)
    assert expected in refused(db_url, "pack", "import", str(path))


def test_pack_import_of_a_binary_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    path = tmp_path / "packs.csv"
    path.write_bytes(b"serial,model\n\xff\xfe\x00B-1,G2\n")
    assert "is not UTF-8 text" in refused(url, "pack", "import", str(path))


def test_every_command_has_json_and_database_options() -> None:
    import typer.main

    command = typer.main.get_command(app)
    expected = {
        "pack-model": {"add", "list"},
        "pack": {
            *("add", "import", "issue", "list", "restock", "withdraw", "quarantine", "retire"),
            "spread",
        },
        "station": {
            *("add", "password", "list", "show", "disable", "enable"),
            *("reset", "availability", "trigger", "report", "inventory", "firmware", "logs"),
            *("unlock", "message", "commands", "local-list", "cert", "cert-revoke", "certs"),
            *("variables", "pack-policy", "right-sizing"),
        },
        "plan": {"add", "list"},
        "rider": {"add", "block", "unblock", "list", "show", "right-size"},
        "card": {"add"},
        "swap": {"request"},
    }
    groups: Any = command
    for group, names in expected.items():
        sub = groups.commands[group]
        assert set(sub.commands) == names
        for name in names:
            commands = getattr(sub.commands[name], "commands", None) or {name: sub.commands[name]}
            for leaf, leaf_command in commands.items():  # a group (station variables): its commands
                options = {o for p in leaf_command.params for o in getattr(p, "opts", [])}
                assert {"--json", "--database"} <= options, f"{group} {name} {leaf}"
    for name in ("topup", "subscribe", "refund", "adjust", "settle", "alerts"):
        options = {o for p in groups.commands[name].params for o in getattr(p, "opts", [])}
        assert {"--json", "--database"} <= options, name


def test_an_unlisted_plan_is_listed_for_staff_and_hidden_from_riders(db_url: str) -> None:
    from swapd.readmodels import plans

    ok(db_url, "plan", "add", "public", "--kind", "prepaid_energy", "--currency", "KRW",
       "--price-minor", "300", "--price-units", "1000")  # fmt: skip
    added = ok(db_url, "plan", "add", "fleet", "--kind", "prepaid_energy", "--currency", "KRW",
               "--price-minor", "250", "--price-units", "1000", "--unlisted")  # fmt: skip
    assert "(prepaid_energy, unlisted)" in added.stdout
    staff = {p["plan"]: p["listed"] for p in js(db_url, "plan", "list")}
    assert staff == {"public": True, "fleet": False}
    db = Database.open(db_url)
    try:
        assert [plan.id for plan in plans.listed_plans(db)] == ["public"]
    finally:
        db.dispose()
