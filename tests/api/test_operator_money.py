"""Operator API: riders (search, one rider, block/unblock), refunds and adjustments (admin only,
Idempotency-Key, audited in the same transaction), payments of what riders owe (admin and
operator) and the audit log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from swapd.domain.riders import IdToken, RiderStatus, TokenType
from swapd.ledger.model import TransferCode
from swapd.readmodels import money
from swapd.services import audit, catalog, payments, swaps
from swapd.services.identity import Role
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.api.conftest import Account, rider, staff
from tests.owing import OWED_MINOR, owing
from tests.plans import BUNDLE, ENERGY


def _audit_rows(db: Database, action: str) -> list[sa.Row[tuple[object, ...]]]:
    with db.engine.connect() as connection:
        return list(connection.execute(sa.select(t.audit_log).where(t.audit_log.c.action == action)))


def _refund_transfers(db: Database, rider_id: str) -> list[int]:
    return [
        x.amount
        for x in money.transfers_of(db, rider_id)
        if x.code is TransferCode.REFUND and x.ledger == "KRW"
    ]


def test_riders_are_searched_by_id_email_plan_and_status(
    client: TestClient, db: Database, support: Account
) -> None:
    me = rider(client, db)
    catalog.add_plan(db, BUNDLE)
    catalog.add_rider(db, "R-bundle-1", "bundle")
    catalog.add_rider(db, "R-bundle-2", "bundle")
    catalog.add_rider(db, "R-energy", "energy")
    catalog.set_rider_status(db, "R-bundle-2", RiderStatus.BLOCKED)

    def ids(**params: object) -> list[str]:
        answer = client.get("/api/v1/ops/riders", params=params, headers=support.headers)
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["items"]]

    assert me.rider_id is not None
    assert len(ids()) == 4
    assert ids(id="R-bundle") == ["R-bundle-1", "R-bundle-2"]
    assert ids(plan_id="bundle") == ["R-bundle-1", "R-bundle-2"]
    assert ids(status="blocked") == ["R-bundle-2"]
    assert ids(plan_id="energy", status="active") == sorted(["R-energy", me.rider_id])
    assert ids(email=me.email.upper()[3:12]) == [me.rider_id]
    assert ids(id="R_") == []  # '_' is a character here, not a LIKE wildcard
    page = client.get("/api/v1/ops/riders", params={"limit": 3}, headers=support.headers).json()
    assert len(page["items"]) == 3 and page["next"] is not None
    rest = ids(limit=3, after=page["next"])
    assert len(rest) == 1 and rest[0] not in [r["id"] for r in page["items"]]


def test_one_rider_shows_balance_plan_and_packs(
    client: TestClient, db: Database, support: Account
) -> None:
    catalog.add_plan(db, ENERGY)
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_station(db, "ST1", 4)
    catalog.register_pack(db, "B-1", "G2", soc=98, soh=95, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 10_000, "pay-1")
    app = IdToken(TokenType.APP, "R1")
    assert swaps.authorize(db, "ST1", app, request_id="q1").accepted
    swaps.battery_out(db, "ST1", "q1", [swaps.BatteryReading(1, "B-1", 9800, 9500)], token=app)

    answer = client.get("/api/v1/ops/riders/R1", headers=support.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rider"]["status"] == "active" and body["plan"]["id"] == "energy"
    assert body["packs_held"] == ["B-1"]
    balance = body["balance"]
    assert (balance["unit"], balance["currency"]) == ("Wh", "KRW")
    assert (balance["posted_units"], balance["held_units"]) == (33_333, 1_583)
    assert balance["prepaid_minor"] == 10_000
    assert client.get("/api/v1/ops/riders/nobody", headers=support.headers).status_code == 404


def test_block_and_unblock_are_audited_and_support_cannot(
    client: TestClient, db: Database, operator: Account, support: Account
) -> None:
    catalog.add_plan(db, ENERGY)
    catalog.add_rider(db, "R1", "energy")
    refused = client.post(
        "/api/v1/ops/riders/R1/block", json={"reason": "fraud"}, headers=support.headers
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    no_reason = client.post("/api/v1/ops/riders/R1/block", json={}, headers=operator.headers)
    assert no_reason.status_code == 422
    blocked = client.post(
        "/api/v1/ops/riders/R1/block", json={"reason": "card reported stolen"}, headers=operator.headers
    )
    assert blocked.status_code == 200 and blocked.json()["rider"]["status"] == "blocked"
    # The swap decision sees the block.
    catalog.add_station(db, "ST1", 4)
    decision = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R1"))
    assert (decision.accepted, decision.reason) == (False, "rider_blocked")
    unblocked = client.post(
        "/api/v1/ops/riders/R1/unblock", json={"reason": "card found"}, headers=operator.headers
    )
    assert unblocked.json()["rider"]["status"] == "active"
    (block,) = _audit_rows(db, "rider.block")
    assert (block.target, block.reason, block.actor) == (
        "R1",
        "card reported stolen",
        f"user:{operator.email}",
    )
    assert [r.reason for r in _audit_rows(db, "rider.unblock")] == ["card found"]


def _funded(db: Database) -> None:
    net.plans(db, ENERGY)
    net.rider(db, "R1", top_up_minor=10_000, payment_ref="pay-1")


def test_refund_is_admin_only_needs_a_key_and_a_reason(
    client: TestClient, db: Database, admin: Account, operator: Account, support: Account
) -> None:
    _funded(db)
    body = {"amount_minor": 1_000, "reason": "double charge"}
    for who in (operator, support):
        answer = client.post(
            "/api/v1/ops/riders/R1/refunds", json=body, headers={**who.headers, "Idempotency-Key": "k"}
        )
        assert answer.status_code == 403
        adjust = client.post(
            "/api/v1/ops/riders/R1/adjustments",
            json={"units": 10, "reason": "goodwill"},
            headers={**who.headers, "Idempotency-Key": "k"},
        )
        assert adjust.status_code == 403
    missing_key = client.post("/api/v1/ops/riders/R1/refunds", json=body, headers=admin.headers)
    assert missing_key.status_code == 422
    no_reason = client.post(
        "/api/v1/ops/riders/R1/refunds",
        json={"amount_minor": 1_000},
        headers={**admin.headers, "Idempotency-Key": "k"},
    )
    assert no_reason.status_code == 422
    assert _refund_transfers(db, "R1") == [] and _audit_rows(db, "rider.refund") == []


def test_a_refund_replayed_with_its_key_refunds_once_and_a_changed_body_is_409(
    client: TestClient, db: Database, admin: Account
) -> None:
    _funded(db)
    headers = {**admin.headers, "Idempotency-Key": "refund-1"}
    body = {"amount_minor": 1_000, "reason": "double charge"}
    first = client.post("/api/v1/ops/riders/R1/refunds", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "rider_id": "R1",
        "amount_minor": 1_000,
        "currency": "KRW",
        "units": 3_334,  # ceil(33,333 x 1,000 / 10,000): rounded against the rider
        "unit": "Wh",
    }
    again = client.post("/api/v1/ops/riders/R1/refunds", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    changed = client.post(
        "/api/v1/ops/riders/R1/refunds", json={**body, "amount_minor": 2_000}, headers=headers
    )
    assert changed.status_code == 409
    assert _refund_transfers(db, "R1") == [1_000]
    (row,) = _audit_rows(db, "rider.refund")
    assert (row.target, row.reason, row.detail["amount_minor"]) == ("R1", "double charge", 1_000)
    assert money.rider_balance(db, "R1").prepaid_minor == 9_000
    # A refund the ledger refuses writes neither money nor an audit row.
    too_much = client.post(
        "/api/v1/ops/riders/R1/refunds",
        json={"amount_minor": 50_000, "reason": "oops"},
        headers={**admin.headers, "Idempotency-Key": "refund-2"},
    )
    assert too_much.status_code == 409
    assert _refund_transfers(db, "R1") == [1_000] and len(_audit_rows(db, "rider.refund")) == 1


def test_an_audit_row_is_written_with_the_change_or_not_at_all(
    client: TestClient, db: Database, admin: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit insert fails: the refund it belongs to must not stay behind."""
    _funded(db)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        client.post(
            "/api/v1/ops/riders/R1/refunds",
            json={"amount_minor": 1_000, "reason": "x"},
            headers={**admin.headers, "Idempotency-Key": "k1"},
        )
    assert _refund_transfers(db, "R1") == []
    assert money.rider_balance(db, "R1").prepaid_minor == 10_000


def test_adjustments_move_allowance_once_and_are_audited(
    client: TestClient, db: Database, admin: Account
) -> None:
    _funded(db)
    headers = {**admin.headers, "Idempotency-Key": "adj-1"}
    body = {"units": -333, "reason": "meter fault"}
    for _ in range(2):
        answer = client.post("/api/v1/ops/riders/R1/adjustments", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"rider_id": "R1", "units": -333, "unit": "Wh"}
    assert money.rider_balance(db, "R1").posted_units == 33_000
    assert [r.detail["units"] for r in _audit_rows(db, "rider.adjust")] == [-333]
    zero = client.post(
        "/api/v1/ops/riders/R1/adjustments",
        json={"units": 0, "reason": "x"},
        headers={**admin.headers, "Idempotency-Key": "adj-2"},
    )
    assert zero.status_code == 422


def test_the_audit_log_is_read_by_admin_and_support_only(
    client: TestClient, db: Database, admin: Account, operator: Account, support: Account
) -> None:
    _funded(db)
    client.post(
        "/api/v1/ops/riders/R1/adjustments",
        json={"units": 5, "reason": "goodwill"},
        headers={**admin.headers, "Idempotency-Key": "a"},
    )
    client.post("/api/v1/ops/riders/R1/block", json={"reason": "abuse"}, headers=operator.headers)
    for who in (admin, support):
        answer = client.get("/api/v1/ops/audit", params={"target": "R1"}, headers=who.headers)
        assert answer.status_code == 200
        assert [e["action"] for e in answer.json()["items"]] == ["rider.block", "rider.adjust"]
    assert client.get("/api/v1/ops/audit", headers=operator.headers).status_code == 403


# -- payments of what riders owe ------------------------------------------------------------------

PAY_OWED = "/api/v1/ops/riders/R6/receivable-payments"


def _payments_in(db: Database, rider_id: str) -> list[int]:
    return [
        x.amount
        for x in money.transfers_of(db, rider_id)
        if x.code is TransferCode.PAYMENT and x.ledger == "KRW"
    ]


def _ledger_ok(db: Database) -> None:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def test_a_receivable_payment_is_recorded_once_per_reference_and_audited(
    client: TestClient, db: Database, operator: Account, support: Account
) -> None:
    assert owing(db, "R6") == OWED_MINOR == 425
    shown = client.get("/api/v1/ops/riders/R6", headers=support.headers).json()["balance"]
    assert shown["receivable_minor"] == 425  # what is owed, where the rider's money is shown

    headers = {**operator.headers, "Idempotency-Key": "owed-1"}
    body = {"amount_minor": 300, "payment_ref": "bank-2026-0001"}
    first = client.post(PAY_OWED, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "rider_id": "R6",
        "payment_ref": "bank-2026-0001",
        "amount_minor": 300,
        "currency": "KRW",
        "owed_minor": 125,
    }
    again = client.post(PAY_OWED, json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # The same payment entered again by someone else (another Idempotency-Key): the reference
    # says it was recorded already, and the answer is the same.
    other_key = {**operator.headers, "Idempotency-Key": "owed-1-again"}
    retyped = client.post(PAY_OWED, json=body, headers=other_key)
    assert retyped.status_code == 201 and retyped.json() == first.json()
    assert "idempotent-replayed" not in retyped.headers

    assert _payments_in(db, "R6") == [300]
    (row,) = _audit_rows(db, "rider.receivable_payment")
    assert (row.target, row.actor) == ("R6", f"user:{operator.email}")
    assert row.detail == {"amount_minor": 300, "payment_ref": "bank-2026-0001"}
    assert money.rider_balance(db, "R6").receivable_minor == 125
    _ledger_ok(db)


def test_a_receivable_payment_is_refused_when_it_conflicts_or_exceeds_what_is_owed(
    client: TestClient, db: Database, admin: Account
) -> None:
    owing(db, "R6")
    catalog.add_rider(db, "R7", "owing")

    def pay(key: str, amount_minor: int, ref: str, rider_id: str = "R6") -> int:
        answer = client.post(
            f"/api/v1/ops/riders/{rider_id}/receivable-payments",
            json={"amount_minor": amount_minor, "payment_ref": ref},
            headers={**admin.headers, "Idempotency-Key": key},
        )
        status_code: int = answer.status_code
        return status_code

    assert pay("k1", 100, "ref-1") == 201
    assert pay("k2", 200, "ref-1") == 409  # another amount under a reference recorded already
    assert pay("k3", 100, "ref-1", "R7") == 409  # the reference is another rider's payment
    assert pay("k4", 326, "ref-2") == 409  # 325 is owed
    assert pay("k5", 50, "ref-3", "R7") == 409  # R7 owes nothing
    assert pay("k6", 1, "ref-4", "nobody") == 404
    assert pay("k7", 0, "ref-5") == 422
    assert pay("k8", 10, "") == 422
    assert _payments_in(db, "R6") == [100] and _payments_in(db, "R7") == []
    assert len(_audit_rows(db, "rider.receivable_payment")) == 1
    assert pay("k9", 325, "ref-2") == 201  # all of it
    assert money.rider_balance(db, "R6").receivable_minor == 0
    _ledger_ok(db)


def test_a_receivable_payment_is_for_admins_and_operators_and_needs_a_key(
    client: TestClient, db: Database, support: Account
) -> None:
    owing(db, "R6")
    me = rider(client, db)
    body = {"amount_minor": 100, "payment_ref": "ref-1"}
    for who in (support, me):
        answer = client.post(PAY_OWED, json=body, headers={**who.headers, "Idempotency-Key": "k"})
        assert answer.status_code == 403, answer.text
    assert client.post(PAY_OWED, json=body).status_code == 401
    admin = staff(client, db, Role.ADMIN)
    assert client.post(PAY_OWED, json=body, headers=admin.headers).status_code == 422  # no key
    assert _payments_in(db, "R6") == []
