"""Unlisted plans: kept out of the public plan list and rider sign-up, shown to staff, and working
for the riders staff put on them."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from swapd.domain.errors import NotFound
from swapd.readmodels import plans
from swapd.services import catalog, identity, payments
from swapd.store.database import Database
from swapd.store.engine import make_engine
from tests.api.conftest import PASSWORD, Account
from tests.plans import BUNDLE, ENERGY

HIDDEN = dataclasses.replace(ENERGY, id="hidden-energy", listed=False)


@pytest.fixture
def two_plans(db: Database) -> None:
    catalog.add_plan(db, ENERGY)
    catalog.add_plan(db, HIDDEN)


def test_a_plan_is_listed_unless_created_unlisted() -> None:
    assert ENERGY.listed is True and BUNDLE.listed is True
    assert HIDDEN.listed is False


def test_the_listed_flag_is_stored_and_read_back(db: Database, two_plans: None) -> None:
    # A Database of its own: nothing from the writer's plan cache, every plan read from the rows.
    fresh = Database(make_engine(str(db.engine.url.render_as_string(hide_password=False))))
    try:
        stored = fresh.read(lambda tx: {p.id: p.listed for p in tx.repo.plans()})
        one = fresh.read(lambda tx: tx.repo.plan(HIDDEN.id))
    finally:
        fresh.dispose()
    assert stored == {ENERGY.id: True, HIDDEN.id: False}
    assert one == HIDDEN


def test_the_public_plan_list_shows_only_listed_plans(
    client: TestClient, db: Database, two_plans: None
) -> None:
    assert [p.id for p in plans.listed_plans(db)] == [ENERGY.id]
    answer = client.get("/api/v1/plans")
    assert answer.status_code == 200
    assert [p["id"] for p in answer.json()] == [ENERGY.id]


def test_sign_up_refuses_an_unlisted_plan_as_it_refuses_an_unknown_one(
    client: TestClient, db: Database, two_plans: None
) -> None:
    def sign_up(email: str, plan_id: str) -> tuple[int, dict[str, object]]:
        answer = client.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "plan_id": plan_id}
        )
        return answer.status_code, answer.json()

    hidden_code, hidden = sign_up("a@example.com", HIDDEN.id)
    unknown_code, unknown = sign_up("b@example.com", "no-such-plan")
    assert hidden_code == unknown_code == 404
    assert hidden["code"] == unknown["code"]
    assert hidden["detail"] == str(unknown["detail"]).replace("no-such-plan", HIDDEN.id)
    with pytest.raises(NotFound, match=f"unknown plan {HIDDEN.id}"):
        identity.sign_up_rider(db, "c@example.com", PASSWORD, HIDDEN.id)
    assert identity.users(db) == []  # nothing half-made
    assert sign_up("d@example.com", ENERGY.id)[0] == 201


def test_staff_see_every_plan_with_its_listed_state(
    client: TestClient, db: Database, two_plans: None, operator: Account
) -> None:
    answer = client.get("/api/v1/ops/plans", headers=operator.headers)
    assert answer.status_code == 200, answer.text
    assert {p["id"]: p["listed"] for p in answer.json()} == {ENERGY.id: True, HIDDEN.id: False}
    one = client.get(f"/api/v1/ops/plans/{HIDDEN.id}", headers=operator.headers)
    assert one.status_code == 200 and one.json()["listed"] is False


def test_a_rider_staff_put_on_an_unlisted_plan_can_top_up(db: Database, two_plans: None) -> None:
    catalog.add_rider(db, "R-hidden", HIDDEN.id)
    top_up = payments.top_up(db, "R-hidden", 3_000, "R-hidden-topup-1", actor="test")
    assert top_up.units == 10_000
