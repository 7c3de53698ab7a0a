"""Pure tests of the fleet-aware choice of pack (swapd.domain.pack_choice)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.domain.decision import decide
from swapd.domain.errors import InvalidInput
from swapd.domain.pack_choice import BALANCED, PackPolicy, PickRule, choose, rank
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.riders import Rider
from swapd.domain.stations import Station
from tests.plans import ENERGY

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
MIN_SOH_BP = 7_000


def pack(
    slot_no: int,
    *,
    soc_bp: int = 10_000,
    soh_bp: int = 10_000,
    cycles: int = 0,
    rested_h: float = 0,
    status: PackStatus = PackStatus.IN_SLOT,
    reserved: bool = False,
) -> Pack:
    return Pack(
        f"B-{slot_no}",
        "G2",
        1_700,
        soh_bp,
        soc_bp,
        cycles,
        status,
        "ST" if status is PackStatus.IN_SLOT else None,
        slot_no if status is PackStatus.IN_SLOT else None,
        reserved_swap_id=1 if reserved else None,
        placed_at=NOW - timedelta(hours=rested_h),
    )


def pick_one(packs: list[Pack], policy: PackPolicy = BALANCED) -> tuple[int | None, PickRule]:
    (picked,) = choose(packs, 1, policy, min_soh_bp=MIN_SOH_BP, now=NOW)
    return picked.pack.slot_no, picked.rule


def test_no_weights_is_the_old_order_soc_then_soh_then_slot() -> None:
    packs = [pack(1, soc_bp=9_500), pack(2, soc_bp=9_800, soh_bp=9_000), pack(3, soc_bp=9_800)]
    assert pick_one(packs, PackPolicy()) == (3, PickRule.FULLEST)
    ranked = rank(packs, PackPolicy(), min_soh_bp=MIN_SOH_BP, now=NOW)
    assert [r.pack.slot_no for r in ranked] == [3, 2, 1]


def test_fewest_cycles_first_within_a_soc_band() -> None:
    packs = [pack(1, soc_bp=10_000, cycles=300), pack(2, soc_bp=9_700, cycles=40)]
    slot, rule = pick_one(packs, PackPolicy(soc_band_bp=500, cycles_weight=1))
    assert (slot, rule) == (2, PickRule.FEWEST_CYCLES)


def test_a_higher_band_wins_over_fewer_cycles() -> None:
    packs = [pack(1, soc_bp=10_000, cycles=300), pack(2, soc_bp=9_400, cycles=40)]
    assert pick_one(packs, PackPolicy(soc_band_bp=500, cycles_weight=1)) == (1, PickRule.FULLEST)


def test_the_pack_that_rested_longest_is_preferred() -> None:
    packs = [pack(1, rested_h=1), pack(2, rested_h=9), pack(3, rested_h=4)]
    assert pick_one(packs, PackPolicy(rest_weight=1)) == (2, PickRule.RESTED)


def test_packs_near_retirement_are_kept_for_short_trips() -> None:
    worn = pack(1, soh_bp=7_200)  # within 5 % of the 70 % minimum
    healthy = pack(2, soh_bp=9_000, cycles=10)
    policy = PackPolicy(soh_weight=5, cycles_weight=1)
    assert pick_one([worn, healthy], policy) == (2, PickRule.SOH_KEPT)
    # A right-sized offer is a short trip: the worn pack goes first.
    ranked = rank([worn, healthy], policy, min_soh_bp=MIN_SOH_BP, now=NOW, short_trip=True)
    assert ranked[0].pack.slot_no == 1


def test_the_only_pack_is_chosen_as_such() -> None:
    assert pick_one([pack(5)]) == (5, PickRule.ONLY_CHOICE)


def test_equal_packs_fall_to_the_lowest_slot() -> None:
    assert pick_one([pack(4), pack(2)]) == (2, PickRule.SLOT_ORDER)


def test_weights_are_weighed_against_each_other() -> None:
    # One pack rested longer, the other has fewer cycles: the heavier weight decides.
    a = pack(1, rested_h=10, cycles=100)
    b = pack(2, rested_h=1, cycles=10)
    assert pick_one([a, b], PackPolicy(rest_weight=3, cycles_weight=1)) == (1, PickRule.RESTED)
    assert pick_one([a, b], PackPolicy(rest_weight=1, cycles_weight=3)) == (2, PickRule.FEWEST_CYCLES)


@pytest.mark.parametrize(
    "fields",
    [
        {"rest_weight": -1},
        {"cycles_weight": 101},
        {"soh_weight": True},
        {"soc_band_bp": 10_001},
        {"retirement_margin_bp": -5},
    ],
)
def test_policy_refuses_weights_out_of_range(fields: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        PackPolicy(**fields)


_pack_specs = st.tuples(
    st.integers(min_value=8_000, max_value=10_000),  # soc
    st.integers(min_value=6_000, max_value=10_000),  # soh
    st.integers(min_value=0, max_value=3_000),  # cycles
    st.integers(min_value=0, max_value=48),  # hours rested
    st.sampled_from(["in_slot", "in_slot", "in_slot", "quarantined", "reserved", "out_of_service"]),
)


@given(
    specs=st.lists(_pack_specs, min_size=1, max_size=10),
    band=st.integers(min_value=0, max_value=2_000),
    weights=st.tuples(*(st.integers(min_value=0, max_value=100) for _ in range(3))),
)
def test_the_decision_never_offers_a_reserved_quarantined_or_out_of_service_pack(
    specs: list[tuple[int, int, int, int, str]], band: int, weights: tuple[int, int, int]
) -> None:
    packs = [
        pack(
            i,
            soc_bp=soc,
            soh_bp=soh,
            cycles=cycles,
            rested_h=hours,
            status=PackStatus.QUARANTINED if kind == "quarantined" else PackStatus.IN_SLOT,
            reserved=kind == "reserved",
        )
        for i, (soc, soh, cycles, hours, kind) in enumerate(specs, start=1)
    ]
    out = frozenset(i for i, s in enumerate(specs, start=1) if s[4] == "out_of_service")
    policy = PackPolicy(band, *weights)
    station = Station("ST", 12, policy=policy)
    decision = decide(
        station=station,
        rider=Rider("R", ENERGY.id),
        plan=ENERGY,
        available_units=100_000,
        held_count=0,
        returning=(),
        stock=packs,
        out_of_service=out,
        now=NOW,
    )
    qualifying = [
        p
        for p in packs
        if p.status is PackStatus.IN_SLOT
        and p.reserved_swap_id is None
        and p.slot_no not in out
        and p.soc_bp >= station.charged_soc_bp
        and p.soh_bp >= station.min_soh_bp
    ]
    assert decision.accepted == bool(qualifying)
    for offer in decision.offers:
        assert offer.pack in qualifying
        # Never from a lower SoC band than the fullest pack that qualifies.
        top = max(p.soc_bp for p in qualifying)
        if band == 0:
            assert offer.pack.soc_bp == top
        else:
            assert (top - offer.pack.soc_bp) // band == 0
    assert len(decision.picks) == len(decision.offers)
