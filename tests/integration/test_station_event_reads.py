"""A station event's first read: the station and whether the event was applied already, in one
statement for a new event (``Repository.station_and_event``; a repeat reads its recorded result
in a second), answering as ``station`` and ``station_event``."""

from __future__ import annotations

from typing import Any

import pytest

from swapd.domain.lifecycle import SwapState
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog
from swapd.store.database import Database, Tx
from swapd.store.prepared import Prepared


def test_the_station_and_its_event_read_together_answer_as_read_apart(
    db: Database, request: pytest.FixtureRequest
) -> None:
    catalog.add_station(db, "ST1", 4)

    def both(tx: Tx) -> tuple[Any, Any, Any, Any]:
        together = tx.repo.station_and_event("ST1", "req-1", "BatteryIn")
        apart = tx.repo.station("ST1"), tx.repo.station_event("ST1", "req-1", "BatteryIn")
        return together, apart, tx.repo.station_and_event("ST9", "req-1", "BatteryIn"), None

    together, apart, unknown, _ = db.read(both)
    assert together == apart == (apart[0], None)
    assert apart[0] is not None and apart[0].id == "ST1"
    assert unknown == (None, None)

    def record(tx: Tx) -> None:
        tx.repo.insert_station_event("ST1", "req-1", "BatteryIn", tx.now, {"swap_id": 7})

    db.write(record)
    sent: list[Prepared] = request.getfixturevalue("prepared_runs")
    other = db.read(lambda tx: tx.repo.station_and_event("ST1", "req-1", "BatteryOut"))
    assert other == (apart[0], None)
    assert len(sent) == 1  # a new event: the station and the key table, one statement
    station, recorded = db.read(lambda tx: tx.repo.station_and_event("ST1", "req-1", "BatteryIn"))
    assert station == apart[0]
    assert recorded is not None and dict(recorded) == {"swap_id": 7}
    assert len(sent) == 3  # a repeat: and its recorded result, from the events' own table


def test_the_station_and_a_requests_swap_read_together_answer_as_read_apart(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """An Authorize's first read: its station and the swap its requestId names there already."""
    catalog.add_station(db, "ST1", 4)
    catalog.add_station(db, "ST2", 4)
    token = IdToken(TokenType.RFID, "CARD1")

    def insert(tx: Tx) -> int:
        return tx.repo.insert_swap(
            "ST1", token, SwapState.REFUSED, tx.now, rider_id=None, request_id="req-1", reason="x"
        )

    swap_id = db.write(insert)
    sent: list[Prepared] = request.getfixturevalue("prepared_runs")
    station, swap = db.read(lambda tx: tx.repo.station_and_request("ST1", "req-1"))
    assert len(sent) == 1
    assert station is not None and station.id == "ST1"
    assert swap is not None and swap.id == swap_id
    assert swap == db.read(lambda tx: tx.repo.swap_by_request("ST1", "req-1"))
    assert swap.token == token and swap.state is SwapState.REFUSED
    other_station, none = db.read(lambda tx: tx.repo.station_and_request("ST2", "req-1"))
    assert other_station is not None and other_station.id == "ST2" and none is None
    assert db.read(lambda tx: tx.repo.station_and_request("ST1", "req-2"))[1] is None
    assert db.read(lambda tx: tx.repo.station_and_request("ST9", "req-1")) == (None, None)
