"""Identity through HTTP: sign-up, login, tokens and their expiry, API keys, roles, login limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from swapd.services import catalog, identity
from swapd.services.identity import Role
from swapd.store.database import Database, ManualClock
from tests.api.conftest import PASSWORD, Account, bearer, rider, staff
from tests.plans import ENERGY

# Hash pools, gates and lockouts are about what a hash costs: keep the real cost.
pytestmark = pytest.mark.real_password_cost


def test_a_rider_signs_up_and_sees_their_account(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    answer = client.get("/api/v1/me", headers=me.headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["email"] == me.email and body["role"] == "rider"
    assert body["rider_id"] == me.rider_id and me.rider_id is not None
    # The rider exists in the billing core with the chosen plan.
    assert db.read(lambda tx: tx.repo.rider(me.rider_id)).plan_id == "energy"  # type: ignore[arg-type,union-attr]


def test_sign_up_refuses_a_taken_address_a_short_password_and_an_unknown_plan(
    client: TestClient, db: Database
) -> None:
    me = rider(client, db)
    again = client.post(
        "/api/v1/auth/signup",
        json={"email": me.email.upper(), "password": PASSWORD, "plan_id": "energy"},
    )
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    short = client.post(
        "/api/v1/auth/signup", json={"email": "x@example.com", "password": "short", "plan_id": "energy"}
    )
    assert short.status_code == 422
    unknown = client.post(
        "/api/v1/auth/signup", json={"email": "y@example.com", "password": PASSWORD, "plan_id": "nope"}
    )
    assert unknown.status_code == 404
    # Nothing half-made: no account and no rider for the refused sign-ups.
    assert [u.email for u in identity.users(db)] == [me.email]


def test_requests_without_a_valid_token_get_401(client: TestClient, db: Database) -> None:
    assert client.get("/api/v1/me").status_code == 401
    wrong = client.get("/api/v1/me", headers=bearer("sws_not-a-token"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")


def test_a_session_token_expires_and_logout_revokes_it(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    operator = staff(client, db, Role.OPERATOR)
    assert client.get("/api/v1/me", headers=operator.headers).status_code == 200
    clock.set(clock.now() + timedelta(seconds=identity.SESSION_TTL_S + 1))
    expired = client.get("/api/v1/me", headers=operator.headers)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    fresh = staff(client, db, Role.OPERATOR)
    assert client.post("/api/v1/auth/logout", headers=fresh.headers).status_code == 204
    assert client.get("/api/v1/me", headers=fresh.headers).status_code == 401


def test_wrong_passwords_lock_the_account_out_for_the_window(
    client: TestClient, db: Database, clock: ManualClock
) -> None:
    operator = staff(client, db, Role.OPERATOR)
    for _ in range(identity.LOGIN_MAX_FAILURES_PER_ACCOUNT):
        wrong = client.post(
            "/api/v1/auth/login", json={"email": operator.email, "password": "wrong" * 3}
        )
        assert wrong.status_code == 401
    locked = client.post("/api/v1/auth/login", json={"email": operator.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    clock.set(clock.now() + timedelta(seconds=identity.LOGIN_WINDOW_S + 1))
    again = client.post("/api/v1/auth/login", json={"email": operator.email, "password": PASSWORD})
    assert again.status_code == 200


def test_unknown_accounts_and_wrong_passwords_get_the_same_answer(
    client: TestClient, db: Database
) -> None:
    operator = staff(client, db, Role.OPERATOR)
    wrong = client.post("/api/v1/auth/login", json={"email": operator.email, "password": "x" * 12})
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_passwords_are_stored_as_scrypt_hashes(client: TestClient, db: Database) -> None:
    staff(client, db, Role.SUPPORT)
    import sqlalchemy as sa

    from swapd.store import schema as t

    (stored,) = db.read(lambda tx: tx.repo.execute(sa.select(t.users.c.password_hash)).scalars().all())
    assert stored.startswith("scrypt$") and PASSWORD not in stored


def test_admin_manages_staff_and_api_keys_others_may_not(
    client: TestClient, db: Database, admin: Account, operator: Account, support: Account
) -> None:
    new = client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": "integration@example.com", "password": PASSWORD, "role": "operator"},
    )
    assert new.status_code == 201, new.text
    user_id = new.json()["id"]
    for caller in (operator, support):
        assert client.get("/api/v1/users", headers=caller.headers).status_code == 403
        refused = client.post(
            f"/api/v1/users/{user_id}/api-keys", headers=caller.headers, json={"name": "x"}
        )
        assert refused.status_code == 403

    key = client.post(f"/api/v1/users/{user_id}/api-keys", headers=admin.headers, json={"name": "erp"})
    assert key.status_code == 201
    secret = key.json()["token"]
    assert secret.startswith("swk_")
    me = client.get("/api/v1/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json()["email"] == "integration@example.com"

    listed = client.get(f"/api/v1/users/{user_id}/api-keys", headers=admin.headers).json()
    assert [k["name"] for k in listed] == ["erp"] and "token" not in listed[0]
    revoked = client.delete(
        f"/api/v1/users/{user_id}/api-keys/{key.json()['token_id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers=bearer(secret)).status_code == 401

    disabled = client.patch(
        f"/api/v1/users/{operator.user_id}", headers=admin.headers, json={"status": "disabled"}
    )
    assert disabled.status_code == 200
    assert client.get("/api/v1/me", headers=operator.headers).status_code == 401


def test_riders_cannot_reach_staff_endpoints(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    assert client.get("/api/v1/users", headers=me.headers).status_code == 403
    # and API keys are not for rider accounts
    admin = staff(client, db, Role.ADMIN)
    refused = client.post(
        f"/api/v1/users/{me.user_id}/api-keys", headers=admin.headers, json={"name": "x"}
    )
    assert refused.status_code == 403


def test_openapi_document_lists_the_api(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "/api/v1/auth/login" in document["paths"]
    assert client.get("/docs").status_code == 200


def test_malformed_requests_get_the_one_error_shape(client: TestClient) -> None:
    missing = client.post("/api/v1/auth/login", json={"email": "a@example.com"})
    assert missing.status_code == 422
    body = missing.json()
    assert body["code"] == "invalid_input" and "password" in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "password"]
    garbage = client.post(
        "/api/v1/auth/login", content=b"\xf0+\xe8x", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422 and garbage.json()["code"] == "invalid_input"
    unknown = client.get("/api/v1/no-such-thing")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_the_only_admin_can_neither_disable_nor_demote_itself(
    client: TestClient, db: Database, admin: Account
) -> None:
    for change in ({"status": "disabled"}, {"role": "operator"}, {"role": "support"}):
        refused = client.patch(f"/api/v1/users/{admin.user_id}", headers=admin.headers, json=change)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "conflict" and "last active admin" in refused.json()["detail"]
    me = client.get("/api/v1/me", headers=admin.headers)
    assert me.status_code == 200 and me.json()["role"] == "admin" and me.json()["status"] == "active"


def staff_login(client: TestClient, email: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["token"])


def test_a_disabled_account_stays_signed_out_when_enabled_again(
    client: TestClient, db: Database, admin: Account
) -> None:
    other = staff(client, db, Role.ADMIN)
    path = f"/api/v1/users/{other.user_id}"
    assert client.patch(path, headers=admin.headers, json={"status": "disabled"}).status_code == 200
    assert client.get("/api/v1/me", headers=other.headers).status_code == 401
    assert client.patch(path, headers=admin.headers, json={"status": "active"}).status_code == 200
    assert client.get("/api/v1/me", headers=other.headers).status_code == 401
    # Demoting ends the new session too; signing in again gives the new role.
    again = staff_login(client, other.email)
    assert client.patch(path, headers=admin.headers, json={"role": "support"}).status_code == 200
    assert client.get("/api/v1/me", headers=again).status_code == 401
    assert client.get("/api/v1/me", headers=staff_login(client, other.email)).json()["role"] == "support"


def test_answers_that_carry_a_secret_are_not_cached(
    client: TestClient, db: Database, admin: Account
) -> None:
    login = client.post("/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
    assert login.headers["cache-control"] == "no-store"
    identity.add_staff(db, "erp@example.com", PASSWORD, Role.OPERATOR)
    erp = identity.user_by_email(db, "erp@example.com")
    key = client.post(f"/api/v1/users/{erp.id}/api-keys", headers=admin.headers, json={"name": "erp"})
    assert key.status_code == 201 and key.headers["cache-control"] == "no-store"
    catalog.add_plan(db, ENERGY)
    signup = client.post(
        "/api/v1/auth/signup",
        json={"email": "new@example.com", "password": PASSWORD, "plan_id": ENERGY.id},
    )
    assert signup.status_code == 201 and signup.headers["cache-control"] == "no-store"
