"""A pack's move (``Repository.move_pack``): the slot it left emptied, its record, the slot it
went to filled, the local lists' change mark; a slot another transaction filled first is a Retry.
On PostgreSQL the four writes are one statement (swapd.store.pack_moves)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from swapd.domain.errors import Retry
from swapd.domain.packs import PackMoved, PackStatus
from swapd.services import catalog, local_lists
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.prepared import Prepared
from tests.plans import ENERGY


@pytest.fixture
def station(db: Database) -> Database:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_station(db, "ST1", 4)
    catalog.register_pack(db, "B1", "G2", soc=95, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B2", "G2", soc=95, station_id="ST1", slot_no=2)
    return db


def _slots(db: Database) -> dict[int, str | None]:
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(t.slots.c.slot_no, t.slots.c.pack_serial))
        return {int(r.slot_no): r.pack_serial for r in rows}


def _pack(db: Database, serial: str) -> Any:
    with db.engine.connect() as connection:
        return connection.execute(sa.select(t.packs).where(t.packs.c.serial == serial)).one()


def _move(db: Database, moved: PackMoved) -> None:
    def work(tx: Tx) -> None:
        tx.repo.move_pack(moved, tx.now)

    db.write(work)


def test_a_pack_moved_to_another_slot_empties_the_old_one_and_marks_the_lists(
    station: Database,
) -> None:
    mark_before = local_lists.last_change(station)
    _move(
        station,
        PackMoved("B1", PackStatus.IN_SLOT, "ST1", 3, None, left=("ST1", 1), soc_bp=4000),
    )
    assert _slots(station) == {1: None, 2: "B2", 3: "B1", 4: None}
    pack = _pack(station, "B1")
    assert (pack.station_id, pack.slot_no, pack.soc_bp, pack.status) == ("ST1", 3, 4000, "in_slot")
    assert local_lists.last_change(station) > mark_before


def test_a_pack_moved_into_a_full_slot_is_a_retry_and_changes_nothing(station: Database) -> None:
    mark_before = local_lists.last_change(station)
    with pytest.raises(Retry):
        _move(station, PackMoved("B1", PackStatus.IN_SLOT, "ST1", 2, None, left=("ST1", 1)))
    assert _slots(station) == {1: "B1", 2: "B2", 3: None, 4: None}
    assert _pack(station, "B1").slot_no == 1
    assert local_lists.last_change(station) == mark_before


def test_a_pack_put_back_into_its_own_slot_stays_there(station: Database) -> None:
    _move(station, PackMoved("B2", PackStatus.IN_SLOT, "ST1", 2, None, left=("ST1", 2), soc_bp=10))
    assert _slots(station) == {1: "B1", 2: "B2", 3: None, 4: None}
    assert _pack(station, "B2").soc_bp == 10


def test_a_move_is_one_statement_on_postgresql_and_four_on_sqlite(
    station: Database, request: pytest.FixtureRequest
) -> None:
    """Every swap moves two packs: on PostgreSQL each move is one round trip, not four."""
    catalog.add_plan(station, ENERGY)
    catalog.add_rider(station, "R1", ENERGY.id)
    sent: list[Prepared] = request.getfixturevalue("prepared_runs")
    _move(station, PackMoved("B1", PackStatus.WITH_RIDER, None, None, "R1", left=("ST1", 1)))
    assert len(sent) == (1 if station.dialect == "postgresql" else 3), sent
    assert _slots(station)[1] is None
    assert _pack(station, "B1").rider_id == "R1"
