"""Pack moves (domain.packs): every change of where a pack is, as one value the store writes."""

from __future__ import annotations

import pytest

from swapd.domain.packs import Pack, PackMoved, PackStatus


def _pack(
    status: PackStatus,
    station_id: str | None = None,
    slot_no: int | None = None,
    rider_id: str | None = None,
) -> Pack:
    return Pack("P1", "G2", 1_700, 9_500, 9_800, 3, status, station_id, slot_no, rider_id, 12)


def test_a_pack_handed_over_leaves_its_slot_with_the_rider_and_starts_a_cycle() -> None:
    pack = _pack(PackStatus.IN_SLOT, "ST1", 3)
    moved = pack.to_rider("R1", 9_700, 9_400)
    cycles = pack.cycle_count + 1
    assert moved == PackMoved(
        "P1", PackStatus.WITH_RIDER, None, None, "R1", ("ST1", 3), 9_700, 9_400, cycles
    )


def test_a_returned_pack_goes_into_its_slot_and_leaves_none() -> None:
    moved = _pack(PackStatus.WITH_RIDER, rider_id="R1").into_slot("ST2", 5, 2_000, 9_300)
    assert moved == PackMoved("P1", PackStatus.IN_SLOT, "ST2", 5, None, None, 2_000, 9_300)


def test_withdrawn_and_quarantined_packs_leave_their_slot() -> None:
    in_slot = _pack(PackStatus.IN_SLOT, "ST1", 2)
    assert in_slot.to_stock(9_900, 9_500).left == ("ST1", 2)
    quarantined = in_slot.to_quarantine()
    assert (quarantined.status, quarantined.left, quarantined.soc_bp) == (
        PackStatus.QUARANTINED,
        ("ST1", 2),
        None,  # readings unchanged
    )
    assert _pack(PackStatus.IN_STOCK).to_quarantine().left is None


def test_a_move_that_breaks_the_place_invariant_is_refused() -> None:
    with pytest.raises(AssertionError):
        PackMoved("P1", PackStatus.IN_SLOT, None, None, None, None)
    with pytest.raises(AssertionError):
        PackMoved("P1", PackStatus.WITH_RIDER, None, None, None, None)
    with pytest.raises(AssertionError):
        PackMoved("P1", PackStatus.IN_STOCK, "ST1", 1, None, None)
