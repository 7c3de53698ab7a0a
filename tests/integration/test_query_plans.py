"""The lookups Authorize makes on every decision stay on an index whose size does not grow with
a rider's history (SQLite's plan; the statement must keep the state a literal for the partial
index to apply)."""

from __future__ import annotations

from pathlib import Path

from swapd.store import swap_rows
from swapd.store.engine import make_engine, upgrade


def test_a_riders_open_offers_are_read_through_the_partial_index(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(engine)
    sql = str(swap_rows.OFFERED_TO_RIDER.statement.compile(dialect=engine.dialect))
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("R1",)).all()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_swaps_offered (rider_id=?)" in details, details
    engine.dispose()
