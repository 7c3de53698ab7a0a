"""Pure tests of right-sized offers (swapd.domain.right_sizing) through the swap decision."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.domain.decision import Decision, RefusalReason, decide
from swapd.domain.errors import InvalidInput
from swapd.domain.pack_choice import BALANCED, PickRule
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.riders import Rider
from swapd.domain.right_sizing import Consent, ask_text, parse_consent, validate_floor_bp
from swapd.domain.stations import Station
from tests.plans import DELIVERIES, ENERGY, SUB, TIME

FLOOR_BP = 3_000
ST = Station("ST", 8, right_size_floor_bp=FLOOR_BP)


def pack(slot_no: int, soc_bp: int, *, soh_bp: int = 10_000, cycles: int = 0) -> Pack:
    """A G2 pack (1,700 Wh nominal) in a slot of ST."""
    return Pack(f"B-{slot_no}", "G2", 1_700, soh_bp, soc_bp, cycles, PackStatus.IN_SLOT, "ST", slot_no)


def run(
    available: int,
    stock: Sequence[Pack],
    *,
    consent: Consent = Consent.ASK,
    plan: Plan = ENERGY,
    station: Station = ST,
    consented: bool = False,
    vehicle_packs: int = 1,
    out_of_service: frozenset[int] = frozenset(),
) -> Decision:
    rider = Rider("R", plan.id, right_size_consent=consent, vehicle_packs=vehicle_packs)
    return decide(
        station=station,
        rider=rider,
        plan=plan,
        available_units=available,
        held_count=0,
        returning=(),
        stock=stock,
        out_of_service=out_of_service,
        consented=consented,
    )


# The issue's rider: 900 Wh left, a full G2 holds 1,700 Wh; a pack at 48 % holds 816 Wh.
STOCK = [pack(1, 10_000), pack(4, 4_800), pack(6, 6_000), pack(7, 2_000)]


def test_a_rider_who_always_consents_gets_the_highest_soc_that_fits() -> None:
    decision = run(900, STOCK, consent=Consent.ALWAYS)
    assert decision.accepted and decision.right_sized and not decision.asks
    assert [o.pack.slot_no for o in decision.offers] == [4]
    assert decision.offers[0].hold_units == 816  # ceil(1700 * 1.00 * 0.48): the hold follows the pack
    assert decision.required_units == 816
    assert decision.full_required_units == 1_700
    assert decision.picks[0].rule is PickRule.RIGHT_SIZED


def test_a_rider_who_is_asked_is_refused_no_credit_with_the_proposal() -> None:
    decision = run(900, STOCK)
    assert not decision.accepted and decision.asks and decision.right_sized
    assert decision.reason is RefusalReason.NO_CREDIT
    assert [o.pack.slot_no for o in decision.offers] == [4]


def test_consent_given_for_this_offer_accepts_an_asking_rider() -> None:
    decision = run(900, STOCK, consented=True)
    assert decision.accepted and decision.right_sized
    assert [o.pack.slot_no for o in decision.offers] == [4]


def test_a_rider_who_never_consents_is_refused_as_before() -> None:
    decision = run(900, STOCK, consent=Consent.NEVER, consented=True)
    assert not decision.accepted and not decision.asks and decision.offers == ()
    assert decision.reason is RefusalReason.NO_CREDIT
    assert decision.required_units == 1_700


def test_a_station_without_a_floor_refuses_as_before() -> None:
    decision = run(900, STOCK, consent=Consent.ALWAYS, station=Station("ST", 8))
    assert decision.reason is RefusalReason.NO_CREDIT and decision.offers == ()


def test_nothing_below_the_floor_is_offered() -> None:
    decision = run(500, STOCK, consent=Consent.ALWAYS)  # only the 20 % pack fits: below 30 %
    assert decision.reason is RefusalReason.NO_CREDIT and decision.offers == ()


def test_a_rider_whose_allowance_covers_the_full_pack_gets_it() -> None:
    decision = run(2_000, STOCK, consent=Consent.ALWAYS)
    assert decision.accepted and not decision.right_sized
    assert [o.pack.slot_no for o in decision.offers] == [1]


def test_overage_plans_are_unaffected() -> None:
    decision = run(900, STOCK, plan=SUB, consent=Consent.ALWAYS)
    assert decision.accepted and not decision.right_sized
    assert [o.pack.slot_no for o in decision.offers] == [1]
    assert decision.offers[0].hold_units == 900  # the overage covers the rest, as before


def test_time_and_delivery_plans_cannot_be_right_sized() -> None:
    # Their hold does not depend on the charge: a smaller pack needs the same allowance.
    for plan, available in ((TIME, 60), (DELIVERIES, 0)):
        decision = run(available, STOCK, plan=plan, consent=Consent.ALWAYS)
        assert decision.reason is RefusalReason.NO_CREDIT and decision.offers == ()


def test_a_slot_out_of_service_is_never_right_sized() -> None:
    decision = run(900, STOCK, consent=Consent.ALWAYS, out_of_service=frozenset({4}))
    assert [o.pack.slot_no for o in decision.offers] == [6] or decision.offers == ()
    assert all(o.pack.slot_no != 4 for o in decision.offers)


def test_two_packs_are_right_sized_together_or_not_at_all() -> None:
    stock = [pack(1, 10_000), pack(2, 10_000), pack(3, 5_000), pack(4, 4_000), pack(5, 3_000)]
    decision = run(1_500, stock, consent=Consent.ALWAYS, vehicle_packs=2)
    assert decision.accepted
    assert sorted(o.pack.slot_no for o in decision.offers) == [3, 5]  # 850 + 510 <= 1,500
    assert decision.required_units <= 1_500
    assert run(900, stock, consent=Consent.ALWAYS, vehicle_packs=2).offers == ()


def test_ask_text_reads_as_the_issue_wants() -> None:
    text = ask_text(900, "Wh", [(4, 4_800)])
    assert text.startswith("Only 900 Wh left: take slot 4 at 48 %?")
    assert text.endswith("Top up for a full pack")


@pytest.mark.parametrize("value", ["sometimes", "", None, 1])
def test_parse_consent_refuses(value: object) -> None:
    with pytest.raises(InvalidInput, match="always, ask, never"):
        parse_consent(value)


@pytest.mark.parametrize("value", [0, 10_001, -1, True, 30.0, "3000"])
def test_validate_floor_refuses(value: object) -> None:
    with pytest.raises(InvalidInput, match="floor"):
        validate_floor_bp(value)


def test_validate_floor_accepts_none_and_basis_points() -> None:
    assert validate_floor_bp(None) is None
    assert validate_floor_bp(3_000) == 3_000


_socs = st.integers(min_value=0, max_value=10_000)
_sohs = st.integers(min_value=6_500, max_value=10_000)


@given(
    specs=st.lists(st.tuples(_socs, _sohs, st.integers(0, 2_000)), max_size=8),
    available=st.integers(min_value=-500, max_value=4_000),
    floor_bp=st.integers(min_value=1, max_value=10_000),
    consent=st.sampled_from(list(Consent)),
    consented=st.booleans(),
    vehicle_packs=st.integers(min_value=1, max_value=3),
    fleet_aware=st.booleans(),
)
def test_a_right_sized_offer_never_exceeds_the_allowance_nor_goes_below_the_floor(
    specs: list[tuple[int, int, int]],
    available: int,
    floor_bp: int,
    consent: Consent,
    consented: bool,
    vehicle_packs: int,
    fleet_aware: bool,
) -> None:
    stock = [pack(i, soc, soh_bp=soh, cycles=c) for i, (soc, soh, c) in enumerate(specs, start=1)]
    policy = BALANCED if fleet_aware else ST.policy
    station = Station("ST", 8, right_size_floor_bp=floor_bp, policy=policy)
    decision = run(
        available,
        stock,
        consent=consent,
        station=station,
        consented=consented,
        vehicle_packs=vehicle_packs,
    )
    if decision.right_sized:
        holds = sum(o.hold_units for o in decision.offers)
        assert holds <= available  # the hold never exceeds the allowance
        assert all(o.pack.soc_bp >= floor_bp for o in decision.offers)  # never below the floor
        assert len(decision.offers) == vehicle_packs
        assert all(o.pack.soh_bp >= station.min_soh_bp for o in decision.offers)
        # Consent is respected: never without it, asked when asking, given when given.
        assert consent is not Consent.NEVER
        assert decision.accepted == (consent is Consent.ALWAYS or consented)
        assert decision.asks == (not decision.accepted)
    elif decision.accepted:
        # A full offer: what it holds is covered (no overage on ENERGY).
        assert decision.required_units <= available
    else:
        assert decision.offers == () and not decision.asks


@given(
    specs=st.lists(st.tuples(_socs, _sohs), min_size=1, max_size=8),
    available=st.integers(min_value=0, max_value=1_700),
)
def test_the_right_sized_pack_is_the_highest_soc_that_fits(
    specs: list[tuple[int, int]], available: int
) -> None:
    stock = [pack(i, soc, soh_bp=soh) for i, (soc, soh) in enumerate(specs, start=1)]
    decision = run(available, stock, consent=Consent.ALWAYS)
    if not decision.right_sized:
        return
    chosen = decision.offers[0].pack
    fitting = [
        p
        for p in stock
        if p.soc_bp >= FLOOR_BP and p.soh_bp >= ST.min_soh_bp and p.deliverable_wh <= available
    ]
    assert chosen.soc_bp == max(p.soc_bp for p in fitting)
