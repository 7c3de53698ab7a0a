"""Pure tests of the swap lifecycle (swapd.domain.lifecycle): allowed and refused transitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from swapd.domain.errors import Conflict
from swapd.domain.lifecycle import (
    Offer,
    OfferReleased,
    OfferState,
    OfferTaken,
    PackOutcomeKind,
    Possession,
    PossessionClosed,
    PossessionState,
    Swap,
    SwapAbandoned,
    SwapCompleted,
    SwapState,
)

AT_OUT = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
AT_IN = datetime(2024, 5, 1, 10, 30, 30, tzinfo=UTC)


def offer(state: OfferState = OfferState.OFFERED, hold_transfer_id: int | None = 41) -> Offer:
    return Offer(7, "B-0001", 3, 1_583, hold_transfer_id, state)


def possession(at_in: datetime | None = None) -> Possession:
    return Possession(5, "R1", "B-0001", "E1", AT_OUT, 9_800, 9_500, 1_583, 41, at_in)


def test_states_are_the_strings_stored_in_the_database() -> None:
    assert [s.value for s in SwapState] == ["offered", "refused", "completed", "abandoned", "returned"]
    assert [s.value for s in OfferState] == ["offered", "taken", "released"]
    assert SwapState("offered") is SwapState.OFFERED and OfferState("taken") is OfferState.TAKEN
    assert str(PackOutcomeKind.HANDED_OVER) == "handed_over"


def test_an_offered_swap_is_open_and_may_be_abandoned() -> None:
    swap = Swap(7, "ST1", "R1", SwapState.OFFERED)
    assert swap.is_open
    assert swap.abandon() == SwapAbandoned(7, SwapState.ABANDONED)


@pytest.mark.parametrize("state", [s for s in SwapState if s is not SwapState.OFFERED])
def test_a_swap_that_is_no_longer_offered_cannot_be_abandoned(state: SwapState) -> None:
    swap = Swap(7, "ST1", "R1", state)
    assert not swap.is_open
    with pytest.raises(Conflict, match="cannot be abandoned"):
        swap.abandon()


@pytest.mark.parametrize("state", list(SwapState))
def test_a_swap_completes_from_any_state_because_the_packs_are_gone(state: SwapState) -> None:
    assert Swap(7, "ST1", "R1", state).complete() == SwapCompleted(7, state, SwapState.COMPLETED)


def test_an_open_offer_is_taken_with_its_hold() -> None:
    assert offer().take() == OfferTaken(7, "B-0001", 1_583, 41, OfferState.TAKEN)


def test_an_open_offer_is_released_with_its_hold_and_slot() -> None:
    assert offer().release() == OfferReleased(7, "B-0001", 3, 1_583, 41, OfferState.RELEASED)


def test_an_offer_without_a_hold_is_taken_with_none_to_post() -> None:
    taken = offer(hold_transfer_id=None).take()
    assert taken.hold_transfer_id is None


@pytest.mark.parametrize("state", [OfferState.TAKEN, OfferState.RELEASED])
def test_a_taken_or_released_offer_can_be_neither_taken_nor_released_again(state: OfferState) -> None:
    closed = offer(state)
    assert not closed.is_open
    with pytest.raises(Conflict, match="cannot be taken"):
        closed.take()
    with pytest.raises(Conflict, match="cannot be released"):
        closed.release()


def test_an_offer_never_holds_a_negative_amount() -> None:
    with pytest.raises(AssertionError):
        Offer(7, "B-0001", 3, -1, None, OfferState.OFFERED)


def test_an_open_possession_closes_with_the_return_readings() -> None:
    held = possession()
    assert held.state is PossessionState.OPEN
    closed = held.close(
        swap_in_id=9,
        station_in="ST2",
        slot_in=5,
        at_in=AT_IN,
        soc_in_bp=2_000,
        soh_in_bp=9_500,
        usage_units=1_260,
        anomaly=None,
    )
    assert closed == PossessionClosed(5, 9, "ST2", 5, AT_IN, 2_000, 9_500, 1_260, None)


def test_a_closed_possession_cannot_be_closed_again() -> None:
    returned = possession(at_in=AT_IN)
    assert returned.state is PossessionState.CLOSED
    with pytest.raises(Conflict, match="already closed"):
        returned.close(
            swap_in_id=9,
            station_in="ST2",
            slot_in=5,
            at_in=AT_IN,
            soc_in_bp=2_000,
            soh_in_bp=9_500,
            usage_units=1_260,
            anomaly=None,
        )


def test_a_possession_without_a_hold_transfer_has_nothing_held() -> None:
    assert possession().held_units == 1_583
    unheld = Possession(5, "R1", "B-0001", "E1", AT_OUT, 9_800, 9_500, 0, None)
    assert unheld.held_units == 0
