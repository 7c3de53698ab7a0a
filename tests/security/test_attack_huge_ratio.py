"""An operator must not be able to make the ledger leave integers, over HTTP.

The report: a plan selling 10^12 Wh for one minor unit let a top-up of 10,000,000 answer 500 and two
of 9,000,000 leave a float (1.8e19) in an account column, after which ``ledger check`` itself failed
and the rider's balance answered a plain-text 500. Against a real ``swapd serve``, signed in as an
admin: that plan is refused with a JSON 422; a plan at the price bound sells exactly one transfer's
worth for the largest payment; top-ups and adjustments past their bounds, and an adjustment that
would take an account column past its bound, are refused with a JSON 4xx; and afterwards every
balance is an integer and ``swapd ledger check`` finds nothing wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from swapd.domain.quantities import MAX_ACCOUNT_COLUMN_AMOUNT, MAX_PAYMENT_MINOR, MAX_TRANSFER_AMOUNT
from swapd.services import identity
from swapd.store.database import Database
from tests.security.conftest import ServeFactory, migrated_sqlite_url

ADMIN_EMAIL = "admin@example.com"
PASSWORD = "correct horse battery"
# The largest price_units one minor unit may buy: 10^12 * 9,007 <= 2^53 - 1 < 10^12 * 9,008.
EDGE_PLAN = {"id": "edge", "kind": "prepaid_energy", "currency": "KRW", "price_minor": 1}
EDGE_UNITS = 9_007
HUGE_PLAN = {**EDGE_PLAN, "id": "huge", "price_units": 10**12}


def _prepared(tmp_path: Path) -> str:
    url = migrated_sqlite_url(tmp_path)
    db = Database.open(url)
    identity.add_staff(db, ADMIN_EMAIL, PASSWORD, identity.Role.ADMIN)
    db.dispose()
    return url


def _bearer(http: httpx.Client, email: str) -> dict[str, str]:
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


def _refused(answer: httpx.Response, status: int, code: str) -> str:
    """The refusal's detail, after checking it is the JSON {code, detail} expected."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    body = answer.json()
    assert body["code"] == code, body
    detail = body["detail"]
    assert isinstance(detail, str)
    return detail


def _ledger_check(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "swapd.cli", "ledger", "check", "--database", url, "--json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SWAPD_")},
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_an_operator_cannot_push_the_ledger_past_its_integer_bounds(
    serve: ServeFactory, tmp_path: Path
) -> None:
    url = _prepared(tmp_path)
    server = serve(url, env={"SWAPD_PAYMENT_PROVIDER": "sandbox"})
    with server.client() as http:
        admin = _bearer(http, ADMIN_EMAIL)

        # The reported plan, and plans whose numbers pass their bounds outright: refused.
        detail = _refused(
            http.post("/api/v1/ops/plans", json=HUGE_PLAN, headers=admin), 422, "invalid_input"
        )
        assert detail.startswith("plan huge: 1 minor units for 1,000,000,000,000 Wh would sell")
        assert "price at most 9,007 Wh per minor unit" in detail
        for field, value in (
            ("price_units", MAX_TRANSFER_AMOUNT + 1),
            ("price_minor", MAX_PAYMENT_MINOR + 1),
        ):
            body = {**HUGE_PLAN, field: value}
            _refused(http.post("/api/v1/ops/plans", json=body, headers=admin), 422, "invalid_input")
        edge_over = {**EDGE_PLAN, "id": "over", "price_units": EDGE_UNITS + 1}
        _refused(http.post("/api/v1/ops/plans", json=edge_over, headers=admin), 422, "invalid_input")
        plans = http.get("/api/v1/ops/plans", headers=admin)
        assert plans.status_code == 200 and plans.json() == []

        # A plan at the bound is accepted.
        edge = {**EDGE_PLAN, "price_units": EDGE_UNITS}
        created = http.post("/api/v1/ops/plans", json=edge, headers=admin)
        assert created.status_code == 201, created.text

        # A rider on it pays the largest payment through the sandbox: exactly one transfer's worth.
        signup = http.post(
            "/api/v1/auth/signup",
            json={"email": "rider@example.com", "password": PASSWORD, "plan_id": "edge"},
        )
        assert signup.status_code == 201, signup.text
        rider = _bearer(http, "rider@example.com")
        rider_id = signup.json()["user"]["rider_id"]
        too_much = http.post(
            "/api/v1/me/top-ups",
            json={"amount_minor": MAX_PAYMENT_MINOR + 1},
            headers={**rider, "Idempotency-Key": "too-much"},
        )
        _refused(too_much, 422, "invalid_input")
        started = http.post(
            "/api/v1/me/top-ups",
            json={"amount_minor": MAX_PAYMENT_MINOR},
            headers={**rider, "Idempotency-Key": "largest"},
        )
        assert started.status_code == 201, started.text
        paid = http.post(started.json()["checkout_url"] + "/pay")
        assert paid.status_code < 400, paid.text
        largest = MAX_PAYMENT_MINOR * EDGE_UNITS
        balance = http.get("/api/v1/me/balance", headers=rider)
        assert balance.status_code == 200, balance.text
        assert (balance.json()["posted_units"], balance.json()["prepaid_minor"]) == (
            largest,
            MAX_PAYMENT_MINOR,
        )

        # Adjustments: one past a transfer is refused; in transfers of the bound, the rider's
        # allowance (and the operator's issued account) reach the column bound exactly and no further.
        adjustments = f"/api/v1/ops/riders/{rider_id}/adjustments"

        def adjust(units: int, key: str) -> httpx.Response:
            body = {"units": units, "reason": "bounds"}
            return http.post(adjustments, json=body, headers={**admin, "Idempotency-Key": key})

        _refused(adjust(MAX_TRANSFER_AMOUNT + 1, "over"), 422, "invalid_input")
        _refused(adjust(-(MAX_TRANSFER_AMOUNT + 1), "under"), 422, "invalid_input")
        left, step = MAX_ACCOUNT_COLUMN_AMOUNT - largest, 0
        while left:
            part = min(left, MAX_TRANSFER_AMOUNT)
            answer = adjust(part, f"fill-{step}")
            assert answer.status_code == 201, answer.text
            left, step = left - part, step + 1
        detail = _refused(adjust(1, "past"), 409, "conflict")
        assert "overflows_debits_posted" in detail
        assert "above the limit of 1,000,000,000,000,000,000" in detail

        balance = http.get("/api/v1/me/balance", headers=rider)
        assert balance.status_code == 200, balance.text
        assert balance.headers["content-type"].startswith("application/json")
        assert balance.json()["posted_units"] == MAX_ACCOUNT_COLUMN_AMOUNT

    report = _ledger_check(url)
    assert report["ok"] is True, report["problems"]
    # every Wh came from the operator's issued account to the rider's allowance
    wh = report["ledgers"]["Wh"]
    assert wh["debits_posted"] == wh["credits_posted"] == MAX_ACCOUNT_COLUMN_AMOUNT
