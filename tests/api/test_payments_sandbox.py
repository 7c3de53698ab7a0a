"""Paying through the sandbox provider, over HTTP: top-up -> hosted page -> Pay -> signed webhook ->
allowance credited once. Replays, forgeries, stale signatures, declines, amount mismatches,
idempotent starts, subscriptions, and riders seeing only their own payments."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from swapd.domain.plans import Plan, PlanKind, first_cycle
from swapd.domain.quantities import Unit
from swapd.gateway.server import create_app
from swapd.payments import config
from swapd.payments.sandbox import SIGNATURE_HEADER, SandboxProvider
from swapd.readmodels import money
from swapd.services import audit, catalog, checkout
from swapd.services.identity import Role
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import check_ledger
from tests.api.conftest import Account, rider, staff

SECRET = "sandbox-test-secret-0123456789"
# E1's plan: 300 KRW buy 1,000 Wh, so 10,000 KRW buy 33,333 Wh (rounded down).
AMOUNT_MINOR = 10_000
UNITS_WH = 33_333
MONTHLY = Plan(
    "monthly",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    0,
    1_000,
    fee_minor=30_000,
    included_units=100_000,
)


@pytest.fixture(autouse=True)
def sandbox_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Set before the app starts (autouse fixtures come first), so the provider is made from it.
    monkeypatch.setenv(config.ENV_PROVIDER, "sandbox")
    monkeypatch.setenv(config.ENV_SANDBOX_SECRET, SECRET)
    yield


def provider_of(client: TestClient) -> SandboxProvider:
    provider = cast(FastAPI, client.app).state.payment_provider
    assert isinstance(provider, SandboxProvider)
    return provider


def start_top_up(
    client: TestClient, who: Account, amount_minor: int = AMOUNT_MINOR, key: str = "k1"
) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": amount_minor},
        headers={**who.headers, "Idempotency-Key": key},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def press(client: TestClient, checkout_url: str, button: str) -> str:
    """Open the hosted page and press one of its buttons, as a browser would."""
    page = client.get(checkout_url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    actions = dict(
        (m.group(1).rsplit("/", 1)[-1].split("?")[0], m.group(1))
        for m in re.finditer(r'<form method="post" action="([^"]+)"', page.text)
    )
    assert set(actions) == {"pay", "decline"}, page.text
    # The form actions are relative to the page, as a browser resolves them.
    target = checkout_url.rsplit("/", 1)[0] + "/" + actions[button].replace("&amp;", "&")
    answer = client.post(target, follow_redirects=False)
    assert answer.status_code in (200, 303), answer.text
    return answer.text


def balance(client: TestClient, who: Account) -> dict[str, Any]:
    answer = client.get("/api/v1/me/balance", headers=who.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def payment_of(client: TestClient, who: Account, payment_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/me/payments/{payment_id}", headers=who.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def signed_event(
    provider: SandboxProvider, payment: dict[str, Any], *, kind: str = "payment.succeeded", **data: Any
) -> tuple[bytes, dict[str, str]]:
    """A webhook as an outside sender holding the secret would make it."""
    body = json.dumps(
        {
            "id": data.pop("event_id", "evt_forged_1"),
            "type": kind,
            "data": {
                "payment_id": payment["id"],
                "provider_ref": f"sbx_{payment['id']}",
                "amount_minor": payment["amount_minor"],
                "currency": payment["currency"],
                **data,
            },
        }
    ).encode()
    return body, {SIGNATURE_HEADER: provider.sign(body), "content-type": "application/json"}


def webhook(client: TestClient, body: bytes, headers: dict[str, str], provider: str = "sandbox") -> Any:
    return client.post(f"/api/v1/payments/webhooks/{provider}", content=body, headers=headers)


def event_count(db: Database) -> int:
    return db.read(
        lambda tx: tx.repo.execute(sa.select(sa.func.count()).select_from(t.webhook_events)).scalar_one()
    )


# -- the whole flow --------------------------------------------------------------------------------


def test_a_rider_tops_up_through_the_hosted_page_and_is_credited_once(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    assert started["status"] == "pending" and started["purpose"] == "top_up"
    assert (started["amount_minor"], started["currency"], started["provider"]) == (
        AMOUNT_MINOR,
        "KRW",
        "sandbox",
    )
    assert started["checkout_url"] == f"http://testserver/api/v1/sandbox/checkout/{started['id']}"
    assert started["credited_at"] is None
    # Nothing is credited before the provider confirms.
    assert balance(client, me)["posted_units"] == 0

    page = press(client, started["checkout_url"], "pay")
    assert "succeeded" in page

    after = balance(client, me)
    assert (after["posted_units"], after["prepaid_minor"]) == (UNITS_WH, AMOUNT_MINOR)
    paid = payment_of(client, me, started["id"])
    assert paid["status"] == "succeeded" and paid["credited_at"] is not None
    assert paid["checkout_url"] is None
    # The page shows the settled payment without buttons; pressing Pay again (a stale tab)
    # credits nothing more.
    page_again = client.get(started["checkout_url"])
    assert "<form" not in page_again.text and "Paid" in page_again.text
    again = client.post(started["checkout_url"] + "/pay")
    assert again.status_code == 200
    assert balance(client, me)["posted_units"] == UNITS_WH
    assert event_count(db) == 1
    # The credit is an ordinary top-up in the ledger: every account recomputes from transfers.
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def test_the_page_sends_the_rider_back_to_a_return_url_it_signed(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    answer = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": AMOUNT_MINOR, "return_url": "https://app.example.com/paid?x=1"},
        headers={**me.headers, "Idempotency-Key": "ret"},
    )
    assert answer.status_code == 201, answer.text
    url = answer.json()["checkout_url"]
    assert "return_url=" in url and "sig=" in url
    page = client.get(url)
    action = re.search(r'action="([^"]*pay\?[^"]+)"', page.text)
    assert action is not None
    base = url.split("?")[0].rsplit("/", 1)[0]
    # A link whose return URL was swapped is not followed elsewhere.
    tampered = (
        base + "/" + action.group(1).replace("&amp;", "&").replace("app.example.com", "evil.example")
    )
    kept = client.post(tampered, follow_redirects=False)
    assert kept.status_code == 200 and "location" not in kept.headers
    # The signed one is (the payment is already paid by the tampered press; it redirects anyway).
    redirected = client.post(base + "/" + action.group(1).replace("&amp;", "&"), follow_redirects=False)
    assert redirected.status_code == 303
    assert redirected.headers["location"] == "https://app.example.com/paid?x=1"
    assert balance(client, me)["posted_units"] == UNITS_WH


def test_a_declined_payment_credits_nothing(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    press(client, started["checkout_url"], "decline")
    assert payment_of(client, me, started["id"])["status"] == "failed"
    assert balance(client, me)["posted_units"] == 0
    assert "<form" not in client.get(started["checkout_url"]).text


# -- webhooks from outside -------------------------------------------------------------------------


def test_a_replayed_webhook_credits_nothing_more(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    body, headers = signed_event(provider_of(client), started)

    first = webhook(client, body, headers)
    assert first.status_code == 200 and first.json() == {
        "outcome": "credited",
        "payment_id": started["id"],
    }
    replay = webhook(client, body, headers)
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    # Another event confirming the same payment (a provider may send several) changes nothing.
    other, other_headers = signed_event(provider_of(client), started, event_id="evt_forged_2")
    assert webhook(client, other, other_headers).json()["outcome"] == "unchanged"

    after = money.rider_balance(db, me.rider_id or "")
    assert (after.posted_units, after.prepaid_minor) == (UNITS_WH, AMOUNT_MINOR)
    assert event_count(db) == 2


def test_forged_stale_and_tampered_webhooks_are_refused_and_change_nothing(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    provider = provider_of(client)
    body, headers = signed_event(provider, started)

    forger = SandboxProvider("not-the-secret-0123456789", clock_s=lambda: clock.now().timestamp())
    refusals = {
        "wrong secret": (body, {SIGNATURE_HEADER: forger.sign(body)}),
        "no signature": (body, {}),
        "garbled header": (body, {SIGNATURE_HEADER: "v1=abc"}),
        "tampered body": (body.replace(b"10000", b"99999"), headers),
        "stale": (body, {SIGNATURE_HEADER: provider.sign(body, int(clock.now().timestamp()) - 301)}),
        "from the future": (
            body,
            {SIGNATURE_HEADER: provider.sign(body, int(clock.now().timestamp()) + 301)},
        ),
    }
    for name, (forged_body, forged_headers) in refusals.items():
        answer = webhook(client, forged_body, forged_headers)
        assert answer.status_code == 400, name
        assert answer.json()["code"] == "webhook_refused", name

    # A genuine signature, delivered after the tolerance, is refused too.
    clock.set(clock.now() + timedelta(seconds=301))
    assert webhook(client, body, headers).status_code == 400

    assert payment_of(client, me, started["id"])["status"] == "pending"
    assert balance(client, me)["posted_units"] == 0
    assert event_count(db) == 0


def test_a_webhook_confirming_another_amount_fails_the_payment_and_credits_nothing(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    provider = provider_of(client)
    cheaper, headers = signed_event(provider, started, amount_minor=AMOUNT_MINOR - 1)
    assert webhook(client, cheaper, headers).json()["outcome"] == "mismatch"
    dollars, headers = signed_event(provider, started, event_id="evt_usd", currency="USD")
    assert webhook(client, dollars, headers).json()["outcome"] == "mismatch"

    assert payment_of(client, me, started["id"])["status"] == "failed"
    assert balance(client, me)["posted_units"] == 0
    logged = audit.entries(db, target=started["id"])
    assert [e.action for e in logged] == ["payment.mismatch", "payment.mismatch"]
    assert logged[-1].detail["confirmed"] == [AMOUNT_MINOR - 1, "KRW"]


def test_a_webhook_naming_a_payment_with_another_reference_credits_nothing(
    client: TestClient, db: Database
) -> None:
    alice, bob = rider(client, db), rider(client, db)
    hers, his = start_top_up(client, alice), start_top_up(client, bob)
    provider = provider_of(client)
    crossed = {
        # Alice's payment with Bob's reference, and the other way round.
        "evt_a_b": (hers, f"sbx_{his['id']}"),
        "evt_b_a": (his, f"sbx_{hers['id']}"),
        # Alice's payment with a reference swapd never made.
        "evt_a_x": (hers, "sbx_pay_made_up"),
        # A payment swapd never made, with Bob's reference.
        "evt_x_b": ({**his, "id": "pay_made_up"}, f"sbx_{his['id']}"),
    }
    for event_id, (named, ref) in crossed.items():
        body, headers = signed_event(provider, named, event_id=event_id, provider_ref=ref)
        answer = webhook(client, body, headers)
        assert answer.status_code == 200, event_id
        assert answer.json() == {"outcome": "ref_mismatch", "payment_id": named["id"]}, event_id

    for who, payment in ((alice, hers), (bob, his)):
        assert payment_of(client, who, payment["id"])["status"] == "pending"
        assert balance(client, who)["posted_units"] == 0
    # Recorded (a resend is a duplicate) and in the audit log, for staff to look into.
    assert event_count(db) == len(crossed)
    body, headers = signed_event(provider, hers, event_id="evt_a_b", provider_ref=f"sbx_{his['id']}")
    assert webhook(client, body, headers).json()["outcome"] == "duplicate"
    logged = audit.entries(db, target=hers["id"])
    assert [e.action for e in logged] == ["payment.ref_mismatch"] * 2
    assert {e.detail["event_ref"] for e in logged} == {f"sbx_{his['id']}", "sbx_pay_made_up"}
    # The right event still credits the right payment.
    body, headers = signed_event(provider, hers, event_id="evt_a_a")
    assert webhook(client, body, headers).json()["outcome"] == "credited"
    assert balance(client, alice)["posted_units"] == UNITS_WH
    assert balance(client, bob)["posted_units"] == 0


def test_events_for_payments_swapd_did_not_make_are_recorded_and_ignored(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    body, headers = signed_event(
        provider_of(client), {"id": "pay_nobody", "amount_minor": 5, "currency": "KRW"}
    )
    answer = webhook(client, body, headers)
    assert answer.status_code == 200 and answer.json() == {
        "outcome": "unknown_payment",
        "payment_id": None,
    }
    assert event_count(db) == 1
    assert balance(client, me)["posted_units"] == 0
    # Only the configured provider has a webhook.
    assert webhook(client, body, headers, provider="stripe").status_code == 404


def test_concurrent_deliveries_of_one_event_credit_once(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)
    provider = provider_of(client)
    body, headers = signed_event(provider, started)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            outcomes.append(checkout.handle_webhook(db, provider, body, headers).outcome.value)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(outcomes) == ["credited", "duplicate", "duplicate", "duplicate"]
    assert money.rider_balance(db, me.rider_id or "").posted_units == UNITS_WH


# -- starting payments -----------------------------------------------------------------------------


def test_a_top_up_replayed_with_its_idempotency_key_returns_the_same_payment(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    first = start_top_up(client, me, key="same")
    again = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": AMOUNT_MINOR},
        headers={**me.headers, "Idempotency-Key": "same"},
    )
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first
    other = start_top_up(client, me, key="other")
    assert other["id"] != first["id"]
    changed = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": AMOUNT_MINOR + 1},
        headers={**me.headers, "Idempotency-Key": "same"},
    )
    assert changed.status_code == 409
    listed = client.get("/api/v1/me/payments", headers=me.headers).json()
    assert sorted(p["id"] for p in listed) == sorted([first["id"], other["id"]])


def test_two_first_attempts_with_one_key_make_one_payment(client: TestClient, db: Database) -> None:
    # Below the HTTP answer store: the service's own key makes the payment once.
    me = rider(client, db)
    provider = provider_of(client)
    made = [
        checkout.start_top_up(
            db, provider, me.rider_id or "", AMOUNT_MINOR, key="api:u:k", site_url="http://x"
        )
        for _ in range(2)
    ]
    assert made[0].payment.id == made[1].payment.id
    assert made[0].checkout_url == made[1].checkout_url
    assert len(checkout.payments_of(db, me.rider_id or "")) == 1


def test_top_up_input_is_checked(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    headers = {**me.headers, "Idempotency-Key": "bad"}
    for bad in ("10000", 100.5, 0, -5, True, None, 10**13):
        answer = client.post("/api/v1/me/top-ups", json={"amount_minor": bad}, headers=headers)
        assert answer.status_code == 422, bad
    extra = client.post(
        "/api/v1/me/top-ups", json={"amount_minor": 100, "currency": "USD"}, headers=headers
    )
    assert extra.status_code == 422
    bad_url = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": 10_000, "return_url": "javascript:alert(1)"},
        headers=headers,
    )
    assert bad_url.status_code == 422
    no_key = client.post("/api/v1/me/top-ups", json={"amount_minor": 10_000}, headers=me.headers)
    assert no_key.status_code == 422
    assert client.post("/api/v1/me/top-ups", json={"amount_minor": 10_000}).status_code == 401
    operator = staff(client, db, Role.OPERATOR)
    as_staff = client.post(
        "/api/v1/me/top-ups",
        json={"amount_minor": 10_000},
        headers={**operator.headers, "Idempotency-Key": "staff"},
    )
    assert as_staff.status_code == 403
    assert checkout.payments_of(db, me.rider_id or "") == []


def test_a_rider_cannot_see_another_riders_payment(client: TestClient, db: Database) -> None:
    alice, bob = rider(client, db), rider(client, db)
    hers = start_top_up(client, alice)
    answer = client.get(f"/api/v1/me/payments/{hers['id']}", headers=bob.headers)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert client.get("/api/v1/me/payments", headers=bob.headers).json() == []
    assert [p["id"] for p in client.get("/api/v1/me/payments", headers=alice.headers).json()] == [
        hers["id"]
    ]
    assert client.get("/api/v1/me/payments/pay_unknown", headers=alice.headers).status_code == 404


# -- subscriptions ---------------------------------------------------------------------------------


def test_a_subscription_is_credited_at_the_fee_quoted_when_it_started(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    catalog.add_plan(db, MONTHLY)
    me = rider(client, db, plan_id=MONTHLY.id)
    quoted_at = clock.now()
    answer = client.post("/api/v1/me/subscription", headers={**me.headers, "Idempotency-Key": "sub"})
    assert answer.status_code == 201, answer.text
    started = answer.json()
    quote = first_cycle(MONTHLY, quoted_at)
    assert started["purpose"] == "subscription"
    assert (started["amount_minor"], started["currency"]) == (quote.fee_minor, "KRW")
    # A top-up is not how a subscription is paid.
    refused = client.post(
        "/api/v1/me/top-ups", json={"amount_minor": 1000}, headers={**me.headers, "Idempotency-Key": "t"}
    )
    assert refused.status_code == 422

    # The rider pays ten minutes later, when the pro-rated fee would be lower: the quote holds.
    clock.set(quoted_at + timedelta(minutes=10))
    assert first_cycle(MONTHLY, clock.now()).fee_minor != quote.fee_minor
    press(client, started["checkout_url"], "pay")

    after = money.rider_balance(db, me.rider_id or "")
    assert (after.prepaid_minor, after.posted_units) == (quote.fee_minor, quote.included_units)
    assert payment_of(client, me, started["id"])["status"] == "succeeded"
    again = client.post("/api/v1/me/subscription", headers={**me.headers, "Idempotency-Key": "sub2"})
    assert again.status_code == 409


def test_a_second_subscription_paid_meanwhile_is_not_credited_and_is_logged_for_refund(
    client: TestClient, db: Database
) -> None:
    catalog.add_plan(db, MONTHLY)
    me = rider(client, db, plan_id=MONTHLY.id)
    first = client.post("/api/v1/me/subscription", headers={**me.headers, "Idempotency-Key": "a"})
    second = client.post("/api/v1/me/subscription", headers={**me.headers, "Idempotency-Key": "b"})
    assert first.status_code == second.status_code == 201
    press(client, first.json()["checkout_url"], "pay")
    press(client, second.json()["checkout_url"], "pay")

    after = money.rider_balance(db, me.rider_id or "")
    assert after.prepaid_minor == first.json()["amount_minor"]
    assert payment_of(client, me, second.json()["id"])["status"] == "failed"
    assert [e.action for e in audit.entries(db, target=second.json()["id"])] == ["payment.not_credited"]


def test_subscribing_needs_a_subscription_plan_and_the_riders_own(
    client: TestClient, db: Database
) -> None:
    prepaid = rider(client, db)
    answer = client.post("/api/v1/me/subscription", headers={**prepaid.headers, "Idempotency-Key": "x"})
    assert answer.status_code == 409
    catalog.add_plan(db, MONTHLY)
    subscriber = rider(client, db, plan_id=MONTHLY.id)
    other_plan = client.post(
        "/api/v1/me/subscription",
        json={"plan_id": "energy"},
        headers={**subscriber.headers, "Idempotency-Key": "y"},
    )
    assert other_plan.status_code == 409
    assert checkout.payments_of(db, subscriber.rider_id or "") == []


def test_the_sandbox_is_off_when_another_provider_takes_payments(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    started = start_top_up(client, me)

    class Elsewhere:
        name = "elsewhere"

    cast(FastAPI, client.app).state.payment_provider = Elsewhere()
    assert client.get(started["checkout_url"]).status_code == 404
    assert client.post(started["checkout_url"] + "/pay").status_code == 404
    body, headers = signed_event(SandboxProvider(SECRET), started)
    assert webhook(client, body, headers).status_code == 404
    assert balance(client, me)["posted_units"] == 0


def test_with_no_provider_configured_no_payment_starts_and_nothing_is_credited(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A top-up started while the sandbox took payments; then the server restarts with none.
    me = rider(client, db)
    started = start_top_up(client, me)
    body, headers = signed_event(provider_of(client), started)
    monkeypatch.delenv(config.ENV_PROVIDER)
    with TestClient(create_app(db)) as unconfigured:
        starts = {
            "/api/v1/me/top-ups": {"amount_minor": AMOUNT_MINOR},
            "/api/v1/me/subscription": {},
        }
        refusals = [
            unconfigured.post(path, json=json_body, headers={**me.headers, "Idempotency-Key": "n"})
            for path, json_body in starts.items()
        ]
        refusals += [
            unconfigured.post(f"/api/v1/payments/webhooks/{name}", content=body, headers=headers)
            for name in ("sandbox", "stripe")
        ]
        for answer in refusals:
            # 400 until api/errors answers payments_not_configured with 503.
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "payments_not_configured"
            assert f"set {config.ENV_PROVIDER}=stripe" in answer.json()["detail"]
        # The sandbox's page and buttons are not there.
        assert unconfigured.get(started["checkout_url"]).status_code == 404
        for button in ("pay", "decline"):
            pressed = unconfigured.post(f"{started['checkout_url']}/{button}")
            assert pressed.status_code == 404 and pressed.json()["code"] == "not_found"
        # Riders still see their payments, with nowhere to pay them.
        [listed] = unconfigured.get("/api/v1/me/payments", headers=me.headers).json()
        assert (listed["id"], listed["status"], listed["checkout_url"]) == (
            started["id"],
            "pending",
            None,
        )
        assert balance(unconfigured, me)["posted_units"] == 0
    assert event_count(db) == 0
    assert len(checkout.payments_of(db, me.rider_id or "")) == 1
