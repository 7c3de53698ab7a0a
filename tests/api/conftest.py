"""The HTTP API in process: the same app ``swapd serve`` runs, through Starlette's TestClient.

Helpers sign in as each kind of caller. Staff accounts are made through the service (as
``swapd user add`` does); riders sign up through the API itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from swapd.gateway.server import create_app
from swapd.readmodels import plans
from swapd.services import catalog, identity
from swapd.services.identity import Role
from swapd.store.database import Database
from tests.plans import ENERGY

PASSWORD = "correct horse battery"
_serial = itertools.count(1)


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(db)) as test_client:
        yield test_client


@dataclass
class Account:
    email: str
    user_id: str
    rider_id: str | None
    headers: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff(client: TestClient, db: Database, role: Role) -> Account:
    email = f"{role.value}{next(_serial)}@example.com"
    user = identity.add_staff(db, email, PASSWORD, role)
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return Account(email, user.id, None, bearer(answer.json()["token"]))


def rider(client: TestClient, db: Database, plan_id: str = ENERGY.id) -> Account:
    """A rider signed up through the API, on ``plan_id`` (created if missing)."""
    if all(line.plan.id != plan_id for line in plans.plans(db)):
        catalog.add_plan(db, ENERGY)
    email = f"rider{next(_serial)}@example.com"
    answer = client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "plan_id": plan_id}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Account(email, body["user"]["id"], body["user"]["rider_id"], bearer(body["token"]))


@pytest.fixture
def admin(client: TestClient, db: Database) -> Account:
    return staff(client, db, Role.ADMIN)


@pytest.fixture
def operator(client: TestClient, db: Database) -> Account:
    return staff(client, db, Role.OPERATOR)


@pytest.fixture
def support(client: TestClient, db: Database) -> Account:
    return staff(client, db, Role.SUPPORT)
