"""The hot path's reads of the partitioned tables touch one month: PostgreSQL executes the
partition the key row names and no other (run-time pruning on the InitPlans)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from swapd.store import swap_rows
from swapd.store.engine import make_engine
from swapd.store.ledger_book import _TRANSFER_BY_ID, _TRANSFER_BY_KEY
from swapd.store.partitions import Month, ensure_months
from swapd.store.prepared import Prepared
from tests.pg_databases import temporary_database

pytestmark = pytest.mark.postgres
AT = datetime(2026, 2, 10, tzinfo=UTC)


@pytest.fixture
def url(pg_url: str) -> Iterator[str]:
    del pg_url  # the session's server; this test makes partitions of its own
    with temporary_database("swapd_pruning", migrated_to="head") as made:
        engine = make_engine(made)
        with engine.begin() as connection:
            ensure_months(connection, AT, since=Month(2025, 11))
            connection.exec_driver_sql(
                "INSERT INTO accounts VALUES (1, 'Wh', 'allowance_issued', '', 0, 0, 5, 0, 0),"
                " (2, 'Wh', 'allowance', 'R1', 1, 0, 0, 0, 5)"
            )
            connection.exec_driver_sql(
                "INSERT INTO transfer_keys (id, key, created_at) VALUES (7, 'k7', '2026-02-10Z')"
            )
            connection.exec_driver_sql(
                "INSERT INTO transfers VALUES (7, 'k7', 'Wh', 1, 2, 5, 'top_up', 0, NULL, 'R1', 'p', '',"
                " '2026-02-10Z')"
            )
            connection.exec_driver_sql(
                "INSERT INTO station_event_keys VALUES ('ST1', 'r1', 'BatteryIn', '2026-02-10Z')"
            )
            connection.exec_driver_sql(
                "INSERT INTO station_events VALUES ('ST1', 'r1', 'BatteryIn', '2026-02-10Z', '{}')"
            )
        engine.dispose()
        yield made.replace("postgresql+psycopg://", "postgresql://")


@pytest.mark.parametrize(
    ("statement", "parameters", "partition"),
    [
        (_TRANSFER_BY_ID, {"transfer_id": 7}, "transfers_y2026m02"),
        (_TRANSFER_BY_KEY, {"transfer_key": "k7"}, "transfers_y2026m02"),
        (
            swap_rows.STATION_EVENT,
            {"station_id": "ST1", "request_id": "r1", "event_type": "BatteryIn"},
            "station_events_y2026m02",
        ),
    ],
)
def test_a_lookup_executes_the_one_partition_its_key_row_names(
    url: str, statement: Prepared, parameters: dict[str, Any], partition: str
) -> None:
    sql = str(statement.statement.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    with psycopg.connect(url) as conn:
        plan = [
            row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}", parameters)
        ]
    scans = [line for line in plan if " on transfers_" in line or " on station_events_" in line]
    executed = [line for line in scans if "never executed" not in line]
    assert len(scans) > 3, plan  # every month is in the plan ...
    assert len(executed) == 1 and partition in executed[0], plan  # ... one is executed


def test_a_station_and_its_event_key_read_no_month_of_the_events(url: str) -> None:
    """Every BatteryIn and BatteryOut reads its station and whether it was applied: from the key
    table only (a generic plan that reads a partitioned table locks every month attached, on
    each run); only a repeat reads its recorded result (STATION_EVENT, above)."""
    statement = swap_rows.STATION_WITH_EVENT.statement
    sql = str(statement.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    parameters = {"station_id": "ST1", "request_id": "r1", "event_type": "BatteryIn"}
    with psycopg.connect(url) as conn:
        plan = [row[0] for row in conn.execute(f"EXPLAIN (COSTS OFF) {sql}", parameters)]
    assert any(" on station_event_keys" in line for line in plan), plan
    assert not any(" on station_events" in line for line in plan), plan
