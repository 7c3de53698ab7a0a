"""The local authorization list's pure model: the list wanted from the facts, the differences
from what a station holds, the messages that carry them, and the station's offline rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from swapd.domain.local_lists import (
    MAX_LIST_VERSION,
    MAX_LOCAL_LIST_BYTES,
    ListEntry,
    ListFacts,
    ListStatus,
    ListUpdate,
    OfflineAnswer,
    RiderStanding,
    UpdateType,
    desired_list,
    diff,
    offline_answer,
    plan_updates,
)
from swapd.domain.riders import RiderStatus
from swapd.services.station_requests import MAX_REQUEST_BYTES, check_request

ACTIVE = RiderStanding(RiderStatus.ACTIVE, 2)
BLOCKED = RiderStanding(RiderStatus.BLOCKED, 2)


def facts(**changes: Any) -> ListFacts:
    base: dict[str, Any] = {
        "riders": {"R1": ACTIVE, "R2": BLOCKED},
        "cards": [("ISO14443", "CARD-1", "R1"), ("ISO14443", "CARD-2", "R2")],
        "packs": [("P1", "R1"), ("P2", "R2"), ("P3", None)],
    }
    base.update(changes)
    return ListFacts(**base)


def test_a_riders_cards_and_packs_are_accepted_for_the_rider_with_the_offline_limit() -> None:
    wanted = desired_list(facts())
    accepted = ListStatus.ACCEPTED
    assert wanted[("ISO14443", "CARD-1")] == ListEntry("ISO14443", "CARD-1", accepted, "R1", 2)
    assert wanted[("BatterySerial", "P1")] == ListEntry("BatterySerial", "P1", accepted, "R1", 2)
    assert wanted[("BatterySerial", "P1")].to_wire() == {
        "idToken": {"idToken": "P1", "type": "BatterySerial"},
        "idTokenInfo": {
            "status": "Accepted",
            "groupIdToken": {"idToken": "R1", "type": "Central"},
            "customData": {"vendorId": "org.swapd", "offlineSwapsMax": 2},
        },
    }


def test_a_blocked_rider_and_a_pack_nobody_holds_are_blocked() -> None:
    wanted = desired_list(facts())
    assert wanted[("ISO14443", "CARD-2")].status is ListStatus.BLOCKED
    assert wanted[("BatterySerial", "P2")] == ListEntry("BatterySerial", "P2", ListStatus.BLOCKED, "R2")
    assert wanted[("BatterySerial", "P3")] == ListEntry("BatterySerial", "P3", ListStatus.BLOCKED)
    assert "customData" not in wanted[("BatterySerial", "P3")].to_wire()["idTokenInfo"]
    assert len(wanted) == 5


def test_an_entry_reads_back_from_the_wire_as_it_was_sent() -> None:
    for entry in desired_list(facts()).values():
        assert ListEntry.from_wire(entry.to_wire()) == entry
    assert ListEntry.from_wire({"idToken": {"idToken": "P1", "type": "BatterySerial"}}) is None


def test_the_diff_sends_only_what_changed_and_removes_what_went() -> None:
    held = desired_list(facts())
    moved = facts(packs=[("P1", None), ("P2", "R2"), ("P3", "R1")], cards=[("ISO14443", "CARD-1", "R1")])
    changes = diff(held, desired_list(moved))
    assert [e.key for e in changes.upserts] == [("BatterySerial", "P1"), ("BatterySerial", "P3")]
    assert changes.upserts[0].status is ListStatus.BLOCKED
    assert changes.upserts[1] == ListEntry("BatterySerial", "P3", ListStatus.ACCEPTED, "R1", 2)
    assert changes.removals == (("ISO14443", "CARD-2"),)
    assert len(diff(held, held)) == 0


def test_a_differential_update_takes_the_next_versions_and_applies_as_a_station_would() -> None:
    held = desired_list(facts())
    wanted = desired_list(facts(packs=[("P1", None), ("P2", "R2"), ("P3", "R1")], cards=[]))
    updates = plan_updates(7, held, wanted, full=False, max_items=2)
    assert [(u.update_type, u.version) for u in updates] == [
        (UpdateType.DIFFERENTIAL, 8),
        (UpdateType.DIFFERENTIAL, 9),
    ]
    after = held
    for update in updates:
        after = update.apply(after)
    assert after == wanted
    assert plan_updates(7, wanted, wanted, full=False) == []


def test_a_long_full_list_goes_as_one_full_message_then_differential_ones() -> None:
    packs = [(f"P{n:03}", "R1" if n % 2 else None) for n in range(25)]
    wanted = desired_list(facts(packs=packs))
    updates = plan_updates(3, {}, wanted, full=True, max_items=10)
    assert [(u.update_type, u.version, len(u.upserts)) for u in updates] == [
        (UpdateType.FULL, 4, 10),
        (UpdateType.DIFFERENTIAL, 5, 10),
        (UpdateType.DIFFERENTIAL, 6, 7),
    ]
    stale = {("BatterySerial", "GONE"): ListEntry("BatterySerial", "GONE", ListStatus.BLOCKED)}
    after = stale
    for update in updates:
        after = update.apply(after)
    assert after == wanted  # the Full message replaced what the station held


def test_an_empty_full_list_is_one_message_without_a_list() -> None:
    (update,) = plan_updates(0, {}, {}, full=True)
    assert update.to_wire() == {"versionNumber": 1, "updateType": "Full"}
    check_request("SendLocalList", update.to_wire())


def test_versions_past_the_bound_start_again_with_a_full_list() -> None:
    wanted = desired_list(facts())
    (update,) = plan_updates(MAX_LIST_VERSION, {}, wanted, full=False)
    assert (update.update_type, update.version) == (UpdateType.FULL, 1)


def test_every_message_passes_the_ocpp_schema_and_the_largest_fits_a_request() -> None:
    # The largest entries there can be: 255-character card values that JSON escapes to 12 bytes
    # a character, and 40-character rider ids.
    rider = "R" * 40
    cards = [("ISO15693", f"{n:03}" + "\U0001f50b" * 126, rider) for n in range(300)]
    wanted = desired_list(facts(riders={rider: ACTIVE}, cards=cards, packs=[]))
    updates = plan_updates(0, {}, wanted, full=True)
    assert len(updates) > 3  # split by size, not only by count
    for update in updates:
        payload = update.to_wire()
        check_request("SendLocalList", payload)
        size = len(json.dumps(payload, separators=(",", ":")))
        assert size <= MAX_REQUEST_BYTES
        assert size <= MAX_LOCAL_LIST_BYTES + 100
    removal = ListUpdate(UpdateType.DIFFERENTIAL, 2, (), (("BatterySerial", "P1"),))
    check_request("SendLocalList", removal.to_wire())


def test_a_full_update_names_no_removals() -> None:
    with pytest.raises(AssertionError):
        ListUpdate(UpdateType.FULL, 1, (), (("BatterySerial", "P1"),))


@pytest.mark.parametrize(
    ("entry", "served", "answer"),
    [
        (None, 0, OfflineAnswer.UNKNOWN),
        (ListEntry("BatterySerial", "P", ListStatus.BLOCKED, "R1"), 0, OfflineAnswer.BLOCKED),
        (ListEntry("BatterySerial", "P", ListStatus.ACCEPTED, "R1", 2), 0, OfflineAnswer.ACCEPTED),
        (ListEntry("BatterySerial", "P", ListStatus.ACCEPTED, "R1", 2), 1, OfflineAnswer.ACCEPTED),
        (ListEntry("BatterySerial", "P", ListStatus.ACCEPTED, "R1", 2), 2, OfflineAnswer.NO_CREDIT),
        (ListEntry("ISO14443", "C", ListStatus.ACCEPTED, "R1", 0), 0, OfflineAnswer.NO_CREDIT),
    ],
)
def test_a_station_serves_offline_within_the_riders_limit_only(
    entry: ListEntry | None, served: int, answer: OfflineAnswer
) -> None:
    assert offline_answer(entry, served) is answer
