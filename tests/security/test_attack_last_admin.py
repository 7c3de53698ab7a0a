"""Over HTTP, the last active admin cannot lock everyone out, and a disabled account's sessions
do not come back to life when it is enabled again."""

from __future__ import annotations

import httpx

from swapd.services import identity
from swapd.services.identity import Role
from swapd.store.database import Database
from tests.security.conftest import ServeFactory

PASSWORD = "correct horse battery"


def _sign_in(client: httpx.Client, email: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_the_only_admin_can_neither_disable_nor_demote_itself(db_url: str, serve: ServeFactory) -> None:
    db = Database.open(db_url)
    boss = identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    db.dispose()
    server = serve(db_url)
    with server.client() as client:
        headers = _sign_in(client, "boss@example.com")
        for change in ({"status": "disabled"}, {"role": "operator"}, {"role": "support"}):
            refused = client.patch(f"/api/v1/users/{boss.id}", headers=headers, json=change)
            assert refused.status_code == 409, refused.text
        me = client.get("/api/v1/me", headers=headers)
        assert me.status_code == 200 and me.json()["role"] == "admin"
        assert me.json()["status"] == "active"


def test_a_disabled_admin_stays_signed_out_after_being_enabled_again(
    db_url: str, serve: ServeFactory
) -> None:
    db = Database.open(db_url)
    identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    second = identity.add_staff(db, "second@example.com", PASSWORD, Role.ADMIN)
    db.dispose()
    server = serve(db_url)
    with server.client() as client:
        boss = _sign_in(client, "boss@example.com")
        stolen = _sign_in(client, "second@example.com")  # a session someone else may hold
        key = client.post(f"/api/v1/users/{second.id}/api-keys", headers=boss, json={"name": "erp"})
        assert key.status_code == 201, key.text
        key_headers = {"Authorization": f"Bearer {key.json()['token']}"}
        path = f"/api/v1/users/{second.id}"

        assert client.patch(path, headers=boss, json={"status": "disabled"}).status_code == 200
        for headers in (stolen, key_headers):
            assert client.get("/api/v1/me", headers=headers).status_code == 401
        assert client.patch(path, headers=boss, json={"status": "active"}).status_code == 200
        for headers in (stolen, key_headers):
            assert client.get("/api/v1/me", headers=headers).status_code == 401
            assert client.get("/api/v1/users", headers=headers).status_code == 401
        # The account itself works again, with a new sign-in.
        fresh = _sign_in(client, "second@example.com")
        assert client.get("/api/v1/users", headers=fresh).status_code == 200
