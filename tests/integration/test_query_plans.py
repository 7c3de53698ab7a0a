"""The lookups Authorize makes on every decision stay on an index whose size does not grow with
a rider's history (SQLite's plan; the statement must keep the state a literal for the partial
index to apply)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapd.store import swap_rows
from swapd.store.engine import make_engine, upgrade
from tests.pg_databases import require_postgres, temporary_database


def test_a_riders_open_offers_are_read_through_the_partial_index(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(engine)
    sql = str(swap_rows.OFFERED_TO_RIDER.statement.compile(dialect=engine.dialect))
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("R1",)).all()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_swaps_offered (rider_id=?)" in details, details
    engine.dispose()


_OPEN_POSSESSIONS = """
INSERT INTO pack_models (code, nominal_wh) VALUES ('G2', 1700);
INSERT INTO plans (id, kind, unit, currency, price_minor, price_units, granularity_s,
                   time_hold_s, fee_minor, included_units, carry_over, prorate_first_cycle)
VALUES ('energy', 'prepaid_energy', 'Wh', 'KRW', 300, 1000, 0, 0, 0, 0, false, false);
INSERT INTO riders (id, plan_id, status, vehicle_packs, created_at)
SELECT 'R' || g, 'energy', 'active', 1, now() FROM generate_series(1, 500) g;
INSERT INTO packs (serial, model_code, soh_bp, soc_bp, cycle_count, status, rider_id, updated_at)
SELECT 'B' || g, 'G2', 9000, 5000, 0, 'with_rider', 'R' || g, now() FROM generate_series(1, 500) g;
INSERT INTO possessions (rider_id, pack_serial, plan_id, station_out, slot_out, at_out,
                         soc_out_bp, soh_out_bp, hold_units)
SELECT 'R' || g, 'B' || g, 'energy', 'ST1', 1, now(), 9000, 9000, 1000
FROM generate_series(1, 500) g;
"""


@pytest.mark.postgres
def test_a_packs_open_possession_is_found_through_its_unique_index_before_any_analyze() -> None:
    """A return looks up the returned pack's open possession. In a database not yet analyzed
    (a new deployment, the bench), PostgreSQL's generic plan of that prepared statement took the
    index on at_in and scanned every open possession: one per pack out with a rider."""
    require_postgres()
    with temporary_database("swapd_plans", migrated_to="head") as url:
        engine = make_engine(url)
        try:
            sql = str(swap_rows.OPEN_POSSESSION.statement.compile(dialect=engine.dialect))
            with engine.begin() as connection:
                connection.exec_driver_sql(_OPEN_POSSESSIONS)
                connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                connection.exec_driver_sql(
                    "PREPARE open_possession(varchar) AS " + sql.replace("%(serial)s", "$1")
                )
                plan = connection.exec_driver_sql("EXPLAIN EXECUTE open_possession('B7')").all()
        finally:
            engine.dispose()
    details = " ".join(str(row[0]) for row in plan)
    assert "ux_possessions_open_pack" in details, details
