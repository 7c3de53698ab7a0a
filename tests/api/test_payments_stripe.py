"""The Stripe provider over HTTP, with only Stripe's network replaced: the official SDK builds the
Checkout Session request and parses the answer through a fake HTTP client, and webhooks carry real
Stripe-format signatures (t=...,v1=HMAC-SHA256 of "t.body"), made here by hand, that the SDK's
``Webhook.construct_event`` verifies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast
from urllib.parse import parse_qs

import pytest
import stripe
import structlog.testing
from fastapi import FastAPI
from fastapi.testclient import TestClient

from swapd.payments import config
from swapd.payments.stripe_checkout import StripeProvider
from swapd.readmodels import money
from swapd.services import audit, checkout
from swapd.store.database import Database
from tests.api.conftest import Account, rider

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
AMOUNT_MINOR = 10_000
UNITS_WH = 33_333  # E1's plan: 300 KRW per 1,000 Wh


@dataclass
class FakeStripe(stripe.HTTPClient):
    """Stripe's API as far as Checkout Session creation goes; records every request."""

    name: ClassVar[str] = "fake"
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None  # answer with this HTTP status instead

    def __post_init__(self) -> None:
        super().__init__()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        **_kwargs: Any,
    ) -> tuple[str, int, Mapping[str, str]]:
        form = parse_qs(post_data or "")
        self.requests.append(
            {"method": method, "url": url, "headers": dict(headers or {}), "form": form}
        )
        if self.fail_with is not None:
            error = {"error": {"type": "api_error", "message": "Stripe is having a bad day"}}
            return json.dumps(error), self.fail_with, {}
        # Stripe answers a repeated idempotency key with the first answer: same session id.
        key = (headers or {}).get("Idempotency-Key", "")
        session_id = "cs_test_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}#fid",
            "amount_total": int(form["line_items[0][price_data][unit_amount]"][0]),
            "currency": form["line_items[0][price_data][currency]"][0],
            "payment_status": "unpaid",
            "status": "open",
            "client_reference_id": form["client_reference_id"][0],
            "metadata": {"swapd_payment_id": form["metadata[swapd_payment_id]"][0]},
        }
        return json.dumps(session), 200, {"Request-Id": "req_fake"}


@pytest.fixture
def fake_stripe(client: TestClient) -> FakeStripe:
    fake = FakeStripe()
    provider = StripeProvider("sk_test_fake", WEBHOOK_SECRET, http_client=fake, max_network_retries=0)
    cast(FastAPI, client.app).state.payment_provider = provider
    return fake


def stripe_signature(body: bytes, *, secret: str = WEBHOOK_SECRET, at_s: int | None = None) -> str:
    timestamp = int(time.time()) if at_s is None else at_s
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_id: str, kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-10-29",
            "created": int(time.time()),
            "livemode": False,
            "type": kind,
            "data": {"object": obj},
        }
    ).encode()


def session_completed(
    payment: dict[str, Any], *, amount: int | None = None, paid: bool = True
) -> dict[str, Any]:
    return {
        "id": payment["provider_ref"],
        "object": "checkout.session",
        "amount_total": payment["amount_minor"] if amount is None else amount,
        "currency": payment["currency"].lower(),
        "payment_status": "paid" if paid else "unpaid",
        "client_reference_id": payment["id"],
        "metadata": {"swapd_payment_id": payment["id"]},
    }


def intent(payment: dict[str, Any], *, succeeded: bool = True) -> dict[str, Any]:
    return {
        "id": "pi_test_1",
        "object": "payment_intent",
        "amount": payment["amount_minor"],
        "amount_received": payment["amount_minor"] if succeeded else 0,
        "currency": payment["currency"].lower(),
        "status": "succeeded" if succeeded else "requires_payment_method",
        "metadata": {"swapd_payment_id": payment["id"]},
    }


def deliver(client: TestClient, body: bytes, signature: str | None) -> Any:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/api/v1/payments/webhooks/stripe", content=body, headers=headers)


def start_top_up(client: TestClient, who: Account, key: str = "k1") -> dict[str, Any]:
    answer = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": AMOUNT_MINOR, "return_url": "https://app.example.com/done"},
        headers={**who.headers, "Idempotency-Key": key},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    # The provider's reference is not shown to riders; tests read it from the database.
    body["provider_ref"] = payment_ref(client, body["id"])
    return body


def payment_ref(client: TestClient, payment_id: str) -> str:
    db = cast(FastAPI, client.app).state.db
    ref = checkout.payment(db, payment_id).provider_ref
    assert ref is not None
    return ref


def status_of(client: TestClient, who: Account, payment_id: str) -> str:
    answer = client.get(f"/api/v1/me/payments/{payment_id}", headers=who.headers)
    assert answer.status_code == 200
    return str(answer.json()["status"])


def test_a_top_up_creates_a_checkout_session_linked_to_the_payment(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    assert started["provider"] == "stripe" and started["status"] == "pending"
    assert started["checkout_url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert started["provider_ref"].startswith("cs_test_")

    [sent] = fake_stripe.requests
    assert (sent["method"], sent["url"]) == ("post", "https://api.stripe.com/v1/checkout/sessions")
    assert sent["headers"]["Idempotency-Key"] == f"swapd-checkout-{started['id']}"
    assert sent["headers"]["Authorization"] == "Bearer sk_test_fake"
    form = {k: v[0] for k, v in sent["form"].items()}
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == str(AMOUNT_MINOR)
    assert form["line_items[0][price_data][currency]"] == "krw"
    assert form["metadata[swapd_payment_id]"] == started["id"]
    assert form["payment_intent_data[metadata][swapd_payment_id]"] == started["id"]
    assert form["metadata[swapd_rider_id]"] == me.rider_id
    assert form["client_reference_id"] == started["id"]
    assert form["success_url"] == form["cancel_url"] == "https://app.example.com/done"
    # Nothing is credited by creating a session.
    assert money.rider_balance(db, me.rider_id or "").posted_units == 0


def test_a_signed_completed_session_credits_once_whichever_events_follow(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    completed = stripe_event("evt_1", "checkout.session.completed", session_completed(started))

    first = deliver(client, completed, stripe_signature(completed))
    assert first.status_code == 200, first.text
    assert first.json() == {"outcome": "credited", "payment_id": started["id"]}
    # Stripe resends the same event, and sends payment_intent.succeeded for the same payment.
    assert deliver(client, completed, stripe_signature(completed)).json()["outcome"] == "duplicate"
    succeeded = stripe_event("evt_2", "payment_intent.succeeded", intent(started))
    assert deliver(client, succeeded, stripe_signature(succeeded)).json() == {
        "outcome": "unchanged",
        "payment_id": started["id"],
    }

    after = money.rider_balance(db, me.rider_id or "")
    assert (after.posted_units, after.prepaid_minor) == (UNITS_WH, AMOUNT_MINOR)
    assert status_of(client, me, started["id"]) == "succeeded"


def test_payment_intent_succeeded_alone_credits_through_the_metadata(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    body = stripe_event("evt_pi", "payment_intent.succeeded", intent(started))
    assert deliver(client, body, stripe_signature(body)).json()["outcome"] == "credited"
    assert money.rider_balance(db, me.rider_id or "").posted_units == UNITS_WH


def test_wrong_missing_and_stale_stripe_signatures_are_refused(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    body = stripe_event("evt_1", "checkout.session.completed", session_completed(started))
    refused = {
        "wrong secret": stripe_signature(body, secret="whsec_someone_else"),
        "missing": None,
        "garbled": "t=abc,v1=",
        "stale": stripe_signature(body, at_s=int(time.time()) - 301),
        "other body": stripe_signature(body.replace(b"evt_1", b"evt_9")),
    }
    for name, signature in refused.items():
        answer = deliver(client, body, signature)
        assert answer.status_code == 400, name
        assert answer.json()["code"] == "webhook_refused", name
    assert status_of(client, me, started["id"]) == "pending"
    assert money.rider_balance(db, me.rider_id or "").posted_units == 0
    # The same body, rightly signed, is then accepted: the refusals recorded nothing.
    assert deliver(client, body, stripe_signature(body)).json()["outcome"] == "credited"


def test_a_session_event_naming_a_payment_that_is_not_its_own_credits_nothing(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    other = start_top_up(client, me, key="k2")
    # A session swapd did not make (a payment link on the same Stripe account, say) whose
    # client_reference_id names the payment, and a session of another payment naming it.
    stranger = {**session_completed(started), "id": "cs_test_someone_else"}
    del stranger["metadata"]
    crossed = {"evt_s": stranger, "evt_o": {**session_completed(started), "id": other["provider_ref"]}}
    for event_id, session in crossed.items():
        body = stripe_event(event_id, "checkout.session.completed", session)
        answer = deliver(client, body, stripe_signature(body))
        assert answer.status_code == 200, event_id
        assert answer.json() == {"outcome": "ref_mismatch", "payment_id": started["id"]}, event_id

    assert status_of(client, me, started["id"]) == status_of(client, me, other["id"]) == "pending"
    assert money.rider_balance(db, me.rider_id or "").posted_units == 0
    assert [e.action for e in audit.entries(db, target=started["id"])] == ["payment.ref_mismatch"] * 2
    # The payment's own session still credits it.
    paid = stripe_event("evt_p", "checkout.session.completed", session_completed(started))
    assert deliver(client, paid, stripe_signature(paid)).json()["outcome"] == "credited"
    assert money.rider_balance(db, me.rider_id or "").posted_units == UNITS_WH


def test_failed_unpaid_and_mismatched_events_credit_nothing(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    unpaid = stripe_event("evt_u", "checkout.session.completed", session_completed(started, paid=False))
    assert deliver(client, unpaid, stripe_signature(unpaid)).json()["outcome"] == "unchanged"
    assert status_of(client, me, started["id"]) == "pending"
    failed = stripe_event("evt_f", "payment_intent.payment_failed", intent(started, succeeded=False))
    assert deliver(client, failed, stripe_signature(failed)).json()["outcome"] == "failed"
    assert status_of(client, me, started["id"]) == "failed"
    short = stripe_event(
        "evt_s", "checkout.session.completed", session_completed(started, amount=AMOUNT_MINOR - 1)
    )
    assert deliver(client, short, stripe_signature(short)).json()["outcome"] == "mismatch"
    assert money.rider_balance(db, me.rider_id or "").posted_units == 0
    assert [e.action for e in audit.entries(db, target=started["id"])] == ["payment.mismatch"]
    # The rider retries the card in the same checkout and it goes through: now it is credited.
    paid = stripe_event("evt_p", "checkout.session.completed", session_completed(started))
    assert deliver(client, paid, stripe_signature(paid)).json()["outcome"] == "credited"
    assert money.rider_balance(db, me.rider_id or "").posted_units == UNITS_WH


def test_an_expired_session_cancels_the_payment(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    expired = stripe_event("evt_x", "checkout.session.expired", session_completed(started, paid=False))
    assert deliver(client, expired, stripe_signature(expired)).json()["outcome"] == "canceled"
    assert status_of(client, me, started["id"]) == "canceled"
    other = stripe_event("evt_o", "customer.created", {"id": "cus_1", "object": "customer"})
    assert deliver(client, other, stripe_signature(other)).json()["outcome"] == "unknown_payment"


def test_stripe_down_is_refused_and_the_same_key_retries_into_the_same_payment(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    me = rider(client, db)
    fake_stripe.fail_with = 500
    down = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": AMOUNT_MINOR},
        headers={**me.headers, "Idempotency-Key": "retry"},
    )
    assert down.status_code == 503 and down.json()["code"] == "payment_provider_unavailable"
    fake_stripe.fail_with = None
    started = start_top_up(client, me, key="retry")
    assert started["status"] == "pending" and started["checkout_url"]
    assert len(fake_stripe.requests) == 2
    assert {r["headers"]["Idempotency-Key"] for r in fake_stripe.requests} == {
        f"swapd-checkout-{started['id']}"
    }
    listed = client.get("/api/v1/me/payments", headers=me.headers).json()
    assert [p["id"] for p in listed] == [started["id"]]
    # Riders get no checkout URL for a Stripe payment after the first answer (it is not stored).
    assert listed[0]["checkout_url"] is None


def test_only_the_configured_provider_has_a_webhook(
    client: TestClient, db: Database, fake_stripe: FakeStripe
) -> None:
    assert client.post("/api/v1/payments/webhooks/sandbox", content=b"{}").status_code == 404
    assert client.get("/api/v1/sandbox/checkout/pay_x").status_code == 404


def test_the_provider_is_chosen_from_the_environment(db: Database) -> None:
    stripe_env = {
        config.ENV_PROVIDER: "stripe",
        config.ENV_STRIPE_API_KEY: "sk_test_x",
        config.ENV_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    }
    stripe_provider = config.provider_from_env(db, stripe_env)
    assert stripe_provider is not None and stripe_provider.name == "stripe"
    # No default: the sandbox, where riders credit themselves, only when named.
    assert config.provider_from_env(db, {}) is None
    assert config.provider_from_env(db, {config.ENV_PROVIDER: " "}) is None
    sandbox = config.provider_from_env(db, {config.ENV_PROVIDER: "Sandbox"})
    assert sandbox is not None and sandbox.name == "sandbox"
    with pytest.raises(config.PaymentConfigError, match="STRIPE_WEBHOOK_SECRET"):
        config.provider_from_env(db, {config.ENV_PROVIDER: "stripe", config.ENV_STRIPE_API_KEY: "sk"})
    with pytest.raises(config.PaymentConfigError, match="sandbox, stripe"):
        config.provider_from_env(db, {config.ENV_PROVIDER: "paypal"})
    with pytest.raises(config.PaymentConfigError, match="16"):
        config.provider_from_env(
            db, {config.ENV_PROVIDER: "sandbox", config.ENV_SANDBOX_SECRET: "short"}
        )


def test_the_server_says_which_provider_takes_payments_and_warns_of_the_sandbox() -> None:
    with structlog.testing.capture_logs() as logged:
        config.announce(None)
        config.announce("stripe")
        config.announce("sandbox")
    lines = [(e["log_level"], e["event"], e.get("provider")) for e in logged]
    assert lines == [
        ("info", "payments", "none"),
        ("info", "payments", "stripe"),
        ("info", "payments", "sandbox"),
        ("warning", "payments_sandbox", None),
    ]
    assert "no payment provider is configured" in logged[0]["detail"]
    assert "any rider can credit their own top-ups" in logged[-1]["detail"]


def test_a_misconfigured_provider_stops_the_server_at_startup(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from swapd.gateway.server import create_app

    monkeypatch.setenv(config.ENV_PROVIDER, "stripe")
    monkeypatch.delenv(config.ENV_STRIPE_API_KEY, raising=False)
    with pytest.raises(config.PaymentConfigError), TestClient(create_app(db)):
        pass
