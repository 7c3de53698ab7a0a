"""The local lists' storage side (swapd.services.local_lists) without a station: the change
marks every list-relevant write leaves, their trimming, the lease of a push, and the facts."""

from __future__ import annotations

import pytest

from swapd.domain.errors import NotFound, StationOffline
from swapd.domain.local_lists import ListStatus
from swapd.domain.riders import IdToken, RiderStatus, TokenType
from swapd.services import catalog, local_lists, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database
from tests import network as net


def test_list_relevant_writes_leave_a_change_mark_and_trimming_keeps_the_newest(db: Database) -> None:
    net.network(db, station_ids=("ST1",))
    before = local_lists.last_change(db)
    net.pack(db, "P1", station_id="ST1", slot_no=1)  # a new pack
    after_pack = local_lists.last_change(db)
    net.rider(db, "R1", top_up_minor=10_000)
    app = IdToken(TokenType.APP, "R1")
    assert swaps.authorize(db, "ST1", app).accepted
    swaps.battery_out(db, "ST1", "1", [BatteryReading(1, "P1", 10_000, 10_000)], token=app)
    after_swap = local_lists.last_change(db)
    catalog.set_rider_status(db, "R1", RiderStatus.BLOCKED)
    after_block = local_lists.last_change(db)
    net.card(db, "R1", "CARD-1")
    after_card = local_lists.last_change(db)
    assert before < after_pack < after_swap < after_block < after_card

    assert local_lists.trim_changes(db) == 3  # of the four marks
    assert local_lists.last_change(db) == after_card  # the newest stays: nothing looks new
    assert local_lists.trim_changes(db) == 0


def test_the_list_wanted_follows_the_facts(db: Database) -> None:
    net.network(db, station_ids=("ST1",))
    net.pack(db, "P1", station_id="ST1", slot_no=1)
    net.rider(db, "R1", top_up_minor=10_000)
    net.card(db, "R1", "CARD-1")
    wanted = local_lists.wanted(db)
    assert wanted[("BatterySerial", "P1")].status is ListStatus.BLOCKED  # in a slot: nobody's
    assert wanted[("ISO14443", "CARD-1")].offline_swaps_max == 1
    app = IdToken(TokenType.APP, "R1")
    assert swaps.authorize(db, "ST1", app).accepted
    swaps.battery_out(db, "ST1", "1", [BatteryReading(1, "P1", 10_000, 10_000)], token=app)
    held = local_lists.wanted(db)[("BatterySerial", "P1")]
    assert (held.status, held.group_id) == (ListStatus.ACCEPTED, "R1")


def test_a_push_to_a_station_away_is_refused_and_writes_nothing(db: Database) -> None:
    net.network(db, station_ids=("ST1",))
    with pytest.raises(StationOffline, match="not connected"):
        local_lists.push(db, "ST1", full=True)
    held = local_lists.station_list(db, "ST1")
    assert (held.version, held.entries, held.last_error) == (0, {}, None)
    assert local_lists.enrolled(db) == set()
    with pytest.raises(NotFound):
        local_lists.push(db, "NOPE")
