"""A rider must not be able to credit their own top-up on a server the operator did not configure.

The sandbox provider's Pay button credits whatever payment it is pressed for, with no credential
but the rider's own. A ``swapd serve`` started with no payment configuration must take no payments
at all: starting a top-up, the sandbox page and its Pay button, and webhooks are all refused (JSON,
4xx or 503), and the rider's balance stays as it was. The server says at start which provider takes
payments, and warns when it is the sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from swapd.payments.sandbox import SIGNATURE_HEADER, SandboxProvider
from swapd.services import catalog, checkout
from swapd.store.database import Database
from tests.plans import ENERGY
from tests.security.conftest import ServeFactory, Server, migrated_sqlite_url

PASSWORD = "correct horse battery"
AMOUNT_MINOR = 10_000
LEFTOVER_SECRET = "a-sandbox-secret-from-before-0123"


def _prepared(tmp_path: Path) -> str:
    url = migrated_sqlite_url(tmp_path)
    db = Database.open(url)
    catalog.add_plan(db, ENERGY)
    db.dispose()
    return url


def _signed_up_rider(http: httpx.Client) -> tuple[str, dict[str, str]]:
    """A rider signed up over HTTP, then signed in: their rider id and bearer header."""
    email = "rider@example.com"
    signup = http.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "plan_id": ENERGY.id}
    )
    assert signup.status_code == 201, signup.text
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    rider_id = login.json()["user"]["rider_id"]
    assert isinstance(rider_id, str)
    return rider_id, {"Authorization": f"Bearer {login.json()['token']}"}


def _balance(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    answer = http.get("/api/v1/me/balance", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _log_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            document = json.loads(line)
            if isinstance(document, dict):
                lines.append(document)
    return lines


def _refused(answer: httpx.Response, what: str) -> str:
    """The refusal's code, after checking it is a JSON 4xx or 503."""
    assert 400 <= answer.status_code < 500 or answer.status_code == 503, (what, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), (what, answer.text)
    code = answer.json()["code"]
    assert isinstance(code, str)
    return code


def test_with_no_configuration_no_one_can_pay_for_their_own_top_up(
    serve: ServeFactory, tmp_path: Path
) -> None:
    url = _prepared(tmp_path)
    server = serve(url)
    with server.client() as http:
        rider_id, rider = _signed_up_rider(http)
        before = _balance(http, rider)

        # A pending sandbox payment left from a time the sandbox took payments, made in-process.
        db = Database.open(url)
        leftover = checkout.start_top_up(
            db,
            SandboxProvider(LEFTOVER_SECRET),
            rider_id,
            AMOUNT_MINOR,
            key="leftover",
            site_url=server.http_url,
        ).payment

        top_up = http.post(
            "/api/v1/me/top-ups",
            json={"amount_minor": AMOUNT_MINOR},
            headers={**rider, "Idempotency-Key": "mine"},
        )
        assert _refused(top_up, "top-up") == "payments_not_configured"
        assert "SWAPD_PAYMENT_PROVIDER" in top_up.json()["detail"]
        subscription = http.post("/api/v1/me/subscription", headers={**rider, "Idempotency-Key": "sub"})
        assert _refused(subscription, "subscription") == "payments_not_configured"

        for payment_id in (leftover.id, "pay_00000000000000000000000000000000"):
            page = f"/api/v1/sandbox/checkout/{payment_id}"
            for who, headers in (("anonymous", {}), ("the rider", rider)):
                _refused(http.get(page, headers=headers), f"page as {who}")
                for button in ("pay", "decline"):
                    pressed = http.post(f"{page}/{button}", headers=headers)
                    assert _refused(pressed, f"{button} as {who}") == "not_found"

        # A webhook for the leftover payment, even one signed with the secret of its time.
        body, headers = SandboxProvider(LEFTOVER_SECRET).event(
            leftover.id, paid=True, amount_minor=AMOUNT_MINOR, currency=ENERGY.currency
        )
        assert SIGNATURE_HEADER in headers
        for name in ("sandbox", "stripe"):
            answer = http.post(f"/api/v1/payments/webhooks/{name}", content=body, headers=headers)
            assert _refused(answer, f"{name} webhook") == "payments_not_configured"

        after = _balance(http, rider)
        assert after == before
        assert (after["posted_units"], after["prepaid_minor"]) == (0, 0)
        assert checkout.payment(db, leftover.id).status.value == "pending"
        db.dispose()

    said = [line for line in _log_lines(server) if line.get("event") == "payments"]
    assert [(line["level"], line["provider"]) for line in said] == [("info", "none")]
    assert "no payment provider is configured" in said[0]["detail"]
    assert not [line for line in _log_lines(server) if line.get("event") == "payments_sandbox"]


def test_a_server_told_to_use_the_sandbox_warns_that_riders_can_credit_themselves(
    serve: ServeFactory, tmp_path: Path
) -> None:
    server = serve(_prepared(tmp_path), env={"SWAPD_PAYMENT_PROVIDER": "sandbox"})
    with server.client() as http:
        _, rider = _signed_up_rider(http)
        started = http.post(
            "/api/v1/me/top-ups",
            json={"amount_minor": AMOUNT_MINOR},
            headers={**rider, "Idempotency-Key": "mine"},
        )
        assert started.status_code == 201, started.text
        # What the warning says: the rider's own Pay press credits the top-up.
        paid = http.post(f"/api/v1/sandbox/checkout/{started.json()['id']}/pay", headers=rider)
        assert paid.status_code == 200, paid.text
        assert _balance(http, rider)["prepaid_minor"] == AMOUNT_MINOR

    lines = _log_lines(server)
    said = [(line["level"], line["provider"]) for line in lines if line.get("event") == "payments"]
    assert said == [("info", "sandbox")]
    [warning] = [line for line in lines if line.get("event") == "payments_sandbox"]
    assert warning["level"] == "warning"
    assert warning["detail"] == (
        "sandbox payments: any rider can credit their own top-ups; never use in production"
    )
