"""Right-sized offers through Authorize, on the in-memory store and on SQLite (see conftest.py):
the question, the rider's yes by a second Authorize or the app, its expiry, its repeat, the
rider who says never, and the rule recorded for the swap's detail."""

from __future__ import annotations

from datetime import timedelta

from tests.plans import SUB
from tests.unit.services.conftest import Network, balance, pack

from swapd.domain.lifecycle import SwapState
from swapd.domain.pack_choice import BALANCED, PickRule
from swapd.domain.packs import PackStatus
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.right_sizing import Consent, ConsentState
from swapd.services import payments, swaps
from swapd.services.swaps import BatteryReading

FLOOR_BP = 3_000


def app(rider_id: str) -> IdToken:
    return IdToken(TokenType.APP, rider_id)


def short_rider_network(network: Network, consent: Consent = Consent.ASK) -> None:
    """The issue's rider: 300 KRW buys 1,000 Wh; a full G2 pack needs 1,700 Wh, the 48 % pack in
    slot 4 needs 816 Wh, the 20 % pack in slot 6 is below ST1's 30 % floor."""
    network.station("ST1")
    network.pack("FULL", station_id="ST1", slot_no=1)
    network.pack("HALF", soc_pct=48, station_id="ST1", slot_no=4)
    network.pack("LOW", soc_pct=20, station_id="ST1", slot_no=6)
    network.rider("R9", top_up_minor=300)
    network.right_size("ST1", FLOOR_BP)
    network.consent("R9", consent)


def choice_of(network: Network, swap_id: int | None) -> object:
    assert swap_id is not None
    return network.db.read(lambda uow: uow.repo.choice(swap_id))


def test_an_asking_rider_is_asked_then_accepts_by_presenting_again(network: Network) -> None:
    short_rider_network(network)
    asked = swaps.authorize(network.db, "ST1", app("R9"))
    assert (asked.accepted, asked.reason, asked.asks) == (False, "no_credit", True)
    assert asked.text.startswith("Only 1,000 Wh left: take slot 4 at 48 %?")
    assert asked.offered_slots == [4] and asked.offered[0].hold_units == 816
    # The pack is kept for the rider's yes: reserved, its hold placed.
    assert pack(network, "HALF").reserved_swap_id == asked.swap_id
    assert balance(network, "R9").held_units == 816

    taken = swaps.authorize(network.db, "ST1", app("R9"))
    assert taken.accepted and taken.right_sized and taken.swap_id == asked.swap_id
    assert taken.offered_slots == [4] and taken.available_units == 1_000 - 816
    again = swaps.authorize(network.db, "ST1", app("R9"))  # a repeat changes nothing
    assert again.accepted and again.swap_id == asked.swap_id
    assert balance(network, "R9").held_units == 816
    choice = choice_of(network, asked.swap_id)
    assert getattr(choice, "consent", None) == ConsentState.CONFIRMED.value

    out = swaps.battery_out(
        network.db, "ST1", "77", [BatteryReading(4, "HALF", 4_800, 10_000)], token=app("R9")
    )
    assert [(p.outcome, p.hold_units) for p in out.packs] == [("handed_over", 816)]
    handed = pack(network, "HALF")
    assert (handed.status, handed.rider_id, handed.cycle_count) == (PackStatus.WITH_RIDER, "R9", 1)


def test_a_question_repeated_by_its_request_is_asked_again_not_accepted(network: Network) -> None:
    short_rider_network(network)
    asked = swaps.authorize(network.db, "ST1", app("R9"), request_id="501")
    repeated = swaps.authorize(network.db, "ST1", app("R9"), request_id="501")
    assert repeated.asks and not repeated.accepted and repeated.swap_id == asked.swap_id
    assert repeated.text == asked.text
    # The app's yes, as a new request, takes the offer under the first request's id.
    yes = swaps.authorize(network.db, "ST1", app("R9"), request_id="502", consented=True)
    assert yes.accepted and yes.swap_id == asked.swap_id and yes.request_id == "501"


def test_a_question_nobody_answers_expires_and_releases_the_pack(network: Network) -> None:
    short_rider_network(network)
    asked = swaps.authorize(network.db, "ST1", app("R9"))
    network.clock.set(network.clock.now() + timedelta(minutes=10))
    assert swaps.expire_stale_offers(network.db, older_than_s=300) == [asked.swap_id]
    assert pack(network, "HALF").reserved_swap_id is None
    assert balance(network, "R9").held_units == 0
    swap = network.db.read(lambda uow: uow.repo.swap(asked.swap_id or 0))
    assert swap is not None and swap.state is SwapState.ABANDONED
    # A later Authorize asks afresh.
    assert swaps.authorize(network.db, "ST1", app("R9")).asks


def test_a_rider_who_always_consents_is_not_asked(network: Network) -> None:
    short_rider_network(network, Consent.ALWAYS)
    taken = swaps.authorize(network.db, "ST1", app("R9"))
    assert taken.accepted and taken.right_sized and taken.offered_slots == [4]
    choice = choice_of(network, taken.swap_id)
    assert getattr(choice, "consent", None) == ConsentState.STANDING.value
    assert getattr(choice, "rule", None) is PickRule.RIGHT_SIZED
    assert getattr(choice, "full_required_units", None) == 1_700


def test_a_rider_who_never_consents_is_refused_and_nothing_is_held(network: Network) -> None:
    short_rider_network(network, Consent.NEVER)
    refused = swaps.authorize(network.db, "ST1", app("R9"))
    assert (refused.accepted, refused.reason, refused.asks) == (False, "no_credit", False)
    assert balance(network, "R9").held_units == 0
    assert pack(network, "HALF").reserved_swap_id is None


def test_an_overage_plan_gets_the_full_pack(network: Network) -> None:
    short_rider_network(network, Consent.ALWAYS)
    network.rider("SUB1", SUB, top_up_minor=None)
    offer = swaps.authorize(network.db, "ST1", app("SUB1"))
    assert offer.accepted and not offer.right_sized and offer.offered_slots == [1]


def test_a_full_offer_records_the_rule_that_chose_its_pack(network: Network) -> None:
    network.station("ST1")
    network.pack("A", station_id="ST1", slot_no=1)
    network.pack("B", soc_pct=98, station_id="ST1", slot_no=2)
    network.rider("R1", top_up_minor=10_000)
    network.right_size("ST1", None, BALANCED)
    offer = swaps.authorize(network.db, "ST1", app("R1"))
    assert offer.accepted and offer.offered_slots == [1]
    choice = choice_of(network, offer.swap_id)
    assert getattr(choice, "right_sized", None) is False
    # Same band, same score (no cycles yet, put in at once): the charge decides.
    assert getattr(choice, "rule", None) is PickRule.FULLEST
    assert getattr(choice, "detail", None) == "slot 1: highest state of charge (100 % vs 98 %)"


def test_a_rider_who_tops_up_after_the_question_gets_the_full_pack(network: Network) -> None:
    short_rider_network(network)
    asked = swaps.authorize(network.db, "ST1", app("R9"))
    payments.top_up(network.db, "R9", 1_000, "pay-R9-more")  # +3,333 Wh
    full = swaps.authorize(network.db, "ST1", app("R9"))
    assert full.accepted and not full.right_sized and full.offered_slots == [1]
    assert full.swap_id != asked.swap_id
    assert pack(network, "HALF").reserved_swap_id is None
    assert balance(network, "R9").held_units == 1_700


def test_a_question_let_go_when_the_full_pack_went_to_another_rider(network: Network) -> None:
    """The rider topped up enough for a full pack, but another rider took the only full one
    meanwhile: the question's offer is let go (its pack free, its hold released) and the
    decision made anew finds no charged pack: the rider can pay for a full one, so no
    right-sized pack is offered instead."""
    short_rider_network(network)
    asked = swaps.authorize(network.db, "ST1", app("R9"))
    network.rider("R8", top_up_minor=10_000)
    other = swaps.authorize(network.db, "ST1", app("R8"))
    assert other.accepted and other.offered_slots == [1]
    payments.top_up(network.db, "R9", 300, "pay-R9-more")  # +1,000 Wh: 816 + 1,184 >= 1,700
    again = swaps.authorize(network.db, "ST1", app("R9"))
    assert (again.accepted, again.reason, again.asks) == (False, "no_charged_pack", False)
    assert again.available_units == 2_000
    assert pack(network, "HALF").reserved_swap_id is None
    assert balance(network, "R9").held_units == 0
    swap = network.db.read(lambda uow: uow.repo.swap(asked.swap_id or 0))
    assert swap is not None and swap.state is SwapState.ABANDONED
