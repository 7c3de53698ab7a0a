"""Refused credentials leave a trace an operator can act on: one warning with the client's
address and what was refused, never the secret itself."""

from __future__ import annotations

import structlog
from fastapi.testclient import TestClient

from swapd.services.identity import Role
from swapd.store.database import Database
from tests.api.conftest import bearer, rider, staff


def test_a_wrong_bearer_token_is_logged_with_the_client_address(client: TestClient) -> None:
    secret = "sws_not-a-token-anybody-was-given"
    with structlog.testing.capture_logs() as logged:
        answer = client.get("/api/v1/me/balance", headers=bearer(secret))
    assert answer.status_code == 401
    failures = [e for e in logged if e["event"] == "bearer_auth_failed"]
    assert len(failures) == 1
    assert failures[0]["client"] == "testclient"
    assert failures[0]["path"] == "/api/v1/me/balance"
    assert secret not in repr(logged)


def test_a_rider_calling_an_operator_route_is_logged(client: TestClient, db: Database) -> None:
    someone = rider(client, db)
    with structlog.testing.capture_logs() as logged:
        answer = client.get("/api/v1/ops/stations", headers=someone.headers)
    assert answer.status_code == 403
    refused = [e for e in logged if e["event"] == "role_refused"]
    assert [(e["client"], e["user"], e["role"]) for e in refused] == [
        ("testclient", someone.user_id, "rider")
    ]


def test_a_caller_with_the_right_role_logs_no_refusal(client: TestClient, db: Database) -> None:
    operator = staff(client, db, Role.OPERATOR)
    with structlog.testing.capture_logs() as logged:
        answer = client.get("/api/v1/ops/stations", headers=operator.headers)
    assert answer.status_code == 200
    assert not [e for e in logged if e["event"] in ("role_refused", "bearer_auth_failed")]
