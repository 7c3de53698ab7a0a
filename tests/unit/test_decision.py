"""Pure tests of R6 (swapd.domain.decision) and of the pack and station checks that feed it."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.domain.decision import (
    REFUSAL_TEXT,
    Decision,
    Offer,
    RefusalReason,
    check_returned_pack,
    decide,
    is_charged,
    is_token_pack_mismatch,
    refuse,
)
from swapd.domain.errors import InvalidInput
from swapd.domain.packs import Pack, PackModel, PackStatus, validate_code, validate_serial
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import Rider, RiderStatus
from swapd.domain.stations import MAX_SLOTS, Station, validate_slot_count
from tests.plans import DELIVERIES, ENERGY, SUB, TIME

ST2 = Station("ST2", 8)  # defaults: charged at SoC >= 90.00 %, handed out at SoH >= 70.00 %
SUB_OVERAGE = SUB  # overage 300 KRW per kWh beyond the included allowance
SUB_NO_OVERAGE = Plan(
    "S0",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    0,
    1_000,
    fee_minor=30_000,
    included_units=100_000,
)
R1 = Rider("R1", ENERGY.id)  # a one-pack vehicle


def slot_pack(
    serial: str,
    slot_no: int | None,
    *,
    soc_bp: int = 10_000,
    soh_bp: int = 10_000,
    model: str = "G2",
    status: PackStatus = PackStatus.IN_SLOT,
    reserved_swap_id: int | None = None,
) -> Pack:
    """A G2 pack (1,700 Wh nominal) in a slot of ST2."""
    return Pack(serial, model, 1_700, soh_bp, soc_bp, 0, status, "ST2", slot_no, None, reserved_swap_id)


def rider_pack(serial: str, *, soh_bp: int = 9_500, model: str = "G2") -> Pack:
    return Pack(serial, model, 1_700, soh_bp, 9_800, 0, PackStatus.WITH_RIDER, rider_id="R1")


def run(
    plan: Plan = ENERGY,
    available: int = 100_000,
    *,
    rider: Rider = R1,
    station: Station = ST2,
    held_count: int = 0,
    returning: Sequence[Pack] = (),
    stock: Sequence[Pack] = (),
    wanted: int | None = None,
) -> Decision:
    return decide(
        station=station,
        rider=rider,
        plan=plan,
        available_units=available,
        held_count=held_count,
        returning=returning,
        stock=stock,
        wanted=wanted,
    )


# ---------------------------------------------------------------------------------------------
# The worked examples
# ---------------------------------------------------------------------------------------------


def test_e1_step_4_swap_after_return() -> None:
    # R1 returns B-0001 at ST2; B-0002 (SoC 100, SoH 100) is offered with a 1700 Wh hold.
    # The hold of B-0001 is still counted: 33333 - 1583 = 31750 Wh available.
    b0002 = slot_pack("B-0002", 1)
    decision = run(available=31_750, held_count=1, returning=[rider_pack("B-0001")], stock=[b0002])
    assert decision == Decision(True, None, (Offer(b0002, 1_700),), 1_700, 31_750)
    assert decision.text == "Accepted"


def test_e2_no_credit_then_accepted_after_top_up() -> None:
    # The charged packs hold >= 1,600 Wh each:
    best = slot_pack("B-0101", 1, soc_bp=9_600, soh_bp=9_800)  # ceil(1700*0.98*0.96) = 1600
    other = slot_pack("B-0102", 2, soc_bp=9_500)  # 1700 * 0.95 = 1615
    stock = [other, best]
    refused = run(available=1_000, stock=stock)
    assert refused == Decision(False, RefusalReason.NO_CREDIT, (), 1_600, 1_000)
    assert refused.text == "Not enough allowance: please top up"
    # + 1,000 KRW = + 3,333 Wh: 4333 Wh >= 1600 Wh
    accepted = run(available=1_000 + 3_333, stock=stock)
    assert accepted == Decision(True, None, (Offer(best, 1_600),), 1_600, 4_333)


def test_e3_time_plan_holds_the_time_hold() -> None:
    pack = slot_pack("B-0201", 1)
    assert run(TIME, 18_000, stock=[pack]) == Decision(True, None, (Offer(pack, 3_600),), 3_600, 18_000)
    assert run(TIME, 3_599, stock=[pack]) == refuse(
        RefusalReason.NO_CREDIT, available_units=3_599, required_units=3_600
    )


def test_e4_two_pack_vehicle_takes_two_deliveries() -> None:
    r4 = Rider("R4", DELIVERIES.id, vehicle_packs=2)
    a, b, c = slot_pack("B-1", 1, soc_bp=9_500), slot_pack("B-2", 2), slot_pack("B-3", 3)
    decision = run(DELIVERIES, 10, rider=r4, stock=[a, b, c])
    # highest SoC first, then lowest slot: B-2 (100 %), B-3 (100 %); 1 delivery held per pack
    assert decision == Decision(True, None, (Offer(b, 1), Offer(c, 1)), 2, 10)
    assert run(DELIVERIES, 1, rider=r4, stock=[a, b, c]) == refuse(
        RefusalReason.NO_CREDIT, available_units=1, required_units=2
    )


# ---------------------------------------------------------------------------------------------
# Credit boundaries and overage
# ---------------------------------------------------------------------------------------------


def test_allowance_exactly_covering_the_requirement_is_enough() -> None:
    pack = slot_pack("B-1", 1, soc_bp=9_800, soh_bp=9_500)  # ceil(1700*0.95*0.98) = 1583
    assert run(available=1_583, stock=[pack]).accepted
    assert run(available=1_582, stock=[pack]) == refuse(
        RefusalReason.NO_CREDIT, available_units=1_582, required_units=1_583
    )


def test_two_packs_need_the_sum_of_their_requirements() -> None:
    r = Rider("R5", ENERGY.id, vehicle_packs=2)
    a, b = slot_pack("B-1", 1), slot_pack("B-2", 2, soc_bp=9_500)  # 1700 + 1615 = 3315
    assert run(available=3_315, rider=r, stock=[a, b]) == Decision(
        True, None, (Offer(a, 1_700), Offer(b, 1_615)), 3_315, 3_315
    )
    assert run(available=3_314, rider=r, stock=[a, b]).reason is RefusalReason.NO_CREDIT


def test_overage_plan_holds_only_what_the_allowance_covers() -> None:
    r = Rider("R6", SUB.id, vehicle_packs=2)
    a, b = slot_pack("B-1", 1), slot_pack("B-2", 2)  # 1700 Wh each, 3400 required
    assert run(SUB_OVERAGE, 1_000, rider=r, stock=[a, b]) == Decision(
        True, None, (Offer(a, 1_000), Offer(b, 0)), 3_400, 1_000
    )
    assert run(SUB_OVERAGE, 2_000, rider=r, stock=[a, b]).offers == (Offer(a, 1_700), Offer(b, 300))
    # an overdrawn allowance never makes a negative hold
    assert run(SUB_OVERAGE, -5, rider=r, stock=[a, b]).offers == (Offer(a, 0), Offer(b, 0))


def test_subscription_without_overage_is_refused_like_prepaid() -> None:
    assert run(SUB_NO_OVERAGE, 1_000, stock=[slot_pack("B-1", 1)]) == refuse(
        RefusalReason.NO_CREDIT, available_units=1_000, required_units=1_700
    )


# ---------------------------------------------------------------------------------------------
# Which packs are offered
# ---------------------------------------------------------------------------------------------


def test_best_packs_first_soc_then_soh_then_slot() -> None:
    r = Rider("R7", ENERGY.id, vehicle_packs=3)
    s4 = slot_pack("B-4", 4, soc_bp=9_500)
    s2 = slot_pack("B-2", 2, soh_bp=9_000)
    s3 = slot_pack("B-3", 3, soh_bp=9_500)
    s1 = slot_pack("B-1", 1, soh_bp=9_500)
    decision = run(rider=r, stock=[s4, s2, s3, s1])
    assert [o.pack.serial for o in decision.offers] == ["B-1", "B-3", "B-2"]


@pytest.mark.parametrize(
    ("pack", "charged"),
    [
        (slot_pack("B-1", 1, soc_bp=9_000), True),  # exactly the charged threshold
        (slot_pack("B-1", 1, soc_bp=8_999), False),
        (slot_pack("B-1", 1, soh_bp=7_000), True),  # exactly the SoH threshold
        (slot_pack("B-1", 1, soh_bp=6_999), False),
        (slot_pack("B-1", 1, reserved_swap_id=42), False),  # promised to another swap
        (slot_pack("B-1", 1, status=PackStatus.QUARANTINED), False),
        (slot_pack("B-1", 1, status=PackStatus.WITH_RIDER), False),
        (slot_pack("B-1", 1, status=PackStatus.IN_STOCK), False),
    ],
)
def test_is_charged(pack: Pack, charged: bool) -> None:
    assert is_charged(pack, ST2) is charged


def test_is_charged_uses_the_station_thresholds() -> None:
    strict = Station("ST9", 4, charged_soc_bp=9_900, min_soh_bp=9_000)
    assert not is_charged(slot_pack("B-1", 1, soc_bp=9_800), strict)
    assert not is_charged(slot_pack("B-1", 1, soh_bp=8_999), strict)
    assert is_charged(slot_pack("B-1", 1, soc_bp=9_900, soh_bp=9_000), strict)


def test_uncharged_packs_are_never_offered() -> None:
    stock = [
        slot_pack("B-1", 1, soc_bp=8_999),
        slot_pack("B-2", 2, soh_bp=6_999),
        slot_pack("B-3", 3, reserved_swap_id=7),
    ]
    assert run(available=500, stock=stock) == refuse(RefusalReason.NO_CHARGED_PACK, available_units=500)
    assert run(available=500, stock=stock).text == "No charged battery available here now"


def test_a_returned_model_is_replaced_by_the_same_model() -> None:
    g3 = slot_pack("B-G3", 1, model="G3")  # 100 % SoC, better than the G2 below
    g2 = slot_pack("B-G2", 2, soc_bp=9_500)
    returning = [rider_pack("B-0001", model="G2")]
    assert run(held_count=1, returning=returning, stock=[g3, g2]).offers == (Offer(g2, 1_615),)
    assert run(held_count=1, returning=returning, stock=[g3]).reason is RefusalReason.NO_CHARGED_PACK
    # with nothing returned, any model will do
    assert run(stock=[g3, g2]).offers == (Offer(g3, 1_700),)


# ---------------------------------------------------------------------------------------------
# Refusal order and reasons
# ---------------------------------------------------------------------------------------------


def test_disabled_station_refuses_first() -> None:
    off = Station("ST2", 8, enabled=False)
    blocked = Rider("R8", ENERGY.id, RiderStatus.BLOCKED)
    decision = run(station=off, rider=blocked, stock=[slot_pack("B-1", 1)])
    assert decision == refuse(RefusalReason.STATION_DISABLED)
    assert decision.text == "Station out of service"


def test_blocked_rider_is_refused_even_with_credit_and_stock() -> None:
    blocked = Rider("R8", ENERGY.id, RiderStatus.BLOCKED)
    decision = run(available=10**9, rider=blocked, stock=[slot_pack("B-1", 1)])
    assert decision == refuse(RefusalReason.RIDER_BLOCKED)
    assert decision.text == "Account blocked: please contact support"


@pytest.mark.parametrize(
    ("vehicle_packs", "held_count", "returning", "wanted"),
    [
        (1, 1, 0, None),  # holds its one pack and returns nothing: wants 1 more, 1 + 1 > 1
        (1, 0, 0, 2),  # asks for two on a one-pack vehicle
        (2, 2, 1, 2),  # 2 - 1 + 2 = 3 > 2
        (2, 0, 0, 0),  # asks for nothing
    ],
)
def test_vehicle_full(vehicle_packs: int, held_count: int, returning: int, wanted: int | None) -> None:
    r = Rider("R9", ENERGY.id, vehicle_packs=vehicle_packs)
    packs = [rider_pack(f"B-R{i}") for i in range(returning)]
    stock = [slot_pack(f"B-{i}", i) for i in range(1, 5)]
    decision = run(rider=r, held_count=held_count, returning=packs, stock=stock, wanted=wanted)
    assert decision == refuse(RefusalReason.VEHICLE_FULL)
    assert decision.text == "You already hold as many batteries as your vehicle takes"


def test_returning_two_of_two_may_take_two() -> None:
    r = Rider("R9", ENERGY.id, vehicle_packs=2)
    returning = [rider_pack("B-R1"), rider_pack("B-R2")]
    stock = [slot_pack("B-1", 1), slot_pack("B-2", 2)]
    decision = run(rider=r, held_count=2, returning=returning, stock=stock)
    assert [o.pack.serial for o in decision.offers] == ["B-1", "B-2"]


def test_no_charged_pack_is_checked_before_credit() -> None:
    assert run(available=0, stock=[]) == Decision(False, RefusalReason.NO_CHARGED_PACK, (), 0, 0)


def test_every_refusal_reason_has_station_text() -> None:
    assert set(REFUSAL_TEXT) == set(RefusalReason)
    for reason in RefusalReason:
        assert refuse(reason).text == REFUSAL_TEXT[reason]
        assert REFUSAL_TEXT[reason]
    assert REFUSAL_TEXT[RefusalReason.UNKNOWN_PACK] == "This battery is not from our network"
    assert REFUSAL_TEXT[RefusalReason.PACK_NOT_ASSIGNED] == "This battery is not rented to anyone"
    assert REFUSAL_TEXT[RefusalReason.PACK_SOH_LOW] == "Battery worn out: please contact support"


# ---------------------------------------------------------------------------------------------
# R3: the returned pack as the rider's key
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack", "reason"),
    [
        (None, RefusalReason.UNKNOWN_PACK),  # E6: serial unknown
        (slot_pack("B-1", 1), RefusalReason.PACK_NOT_ASSIGNED),  # E6: known, held by no one
        (slot_pack("B-1", None, status=PackStatus.IN_STOCK), RefusalReason.PACK_NOT_ASSIGNED),
        (slot_pack("B-1", 1, status=PackStatus.QUARANTINED), RefusalReason.PACK_DAMAGED),
        (slot_pack("B-1", 1, status=PackStatus.RETIRED), RefusalReason.PACK_DAMAGED),
        # damaged wins over low SoH
        (slot_pack("B-1", 1, status=PackStatus.QUARANTINED, soh_bp=5_000), RefusalReason.PACK_DAMAGED),
        (rider_pack("B-1", soh_bp=6_999), RefusalReason.PACK_SOH_LOW),
        (rider_pack("B-1", soh_bp=7_000), None),  # exactly the threshold is fine
        (rider_pack("B-1"), None),
    ],
)
def test_check_returned_pack(pack: Pack | None, reason: RefusalReason | None) -> None:
    assert check_returned_pack(pack, ST2) is reason


# ---------------------------------------------------------------------------------------------
# Properties of decide()
# ---------------------------------------------------------------------------------------------

stock_pack = st.builds(
    lambda soc, soh, reserved, status, model: (soc, soh, reserved, status, model),
    st.integers(min_value=8_500, max_value=10_000),
    st.integers(min_value=6_500, max_value=10_000),
    st.booleans(),
    st.sampled_from([PackStatus.IN_SLOT, PackStatus.IN_SLOT, PackStatus.QUARANTINED]),
    st.sampled_from(["G2", "G3"]),
)


def _stock(specs: list[tuple[int, int, bool, PackStatus, str]]) -> list[Pack]:
    return [
        slot_pack(
            f"B-{slot}",
            slot,
            soc_bp=soc,
            soh_bp=soh,
            model=model,
            status=status,
            reserved_swap_id=1 if reserved else None,
        )
        for slot, (soc, soh, reserved, status, model) in enumerate(specs, start=1)
    ]


def _key(p: Pack) -> tuple[int, int, int]:
    return (-p.soc_bp, -p.soh_bp, p.slot_no or 0)


@given(
    specs=st.lists(stock_pack, max_size=8),
    plan=st.sampled_from([ENERGY, TIME, DELIVERIES, SUB_NO_OVERAGE]),
    available=st.integers(min_value=0, max_value=8_000),
    vehicle_packs=st.integers(min_value=1, max_value=3),
)
def test_decide_never_offers_more_than_the_allowance_covers(
    specs: list[tuple[int, int, bool, PackStatus, str]], plan: Plan, available: int, vehicle_packs: int
) -> None:
    stock = _stock(specs)
    rider = Rider("RX", plan.id, vehicle_packs=vehicle_packs)
    decision = run(plan, available, rider=rider, stock=stock)
    charged = sorted((p for p in stock if is_charged(p, ST2)), key=_key)
    assert decision.available_units == available
    if len(charged) < vehicle_packs:
        assert decision == refuse(RefusalReason.NO_CHARGED_PACK, available_units=available)
        return
    chosen = charged[:vehicle_packs]
    required = sum(plan.requirement_for(p) for p in chosen)
    if required > available:
        assert decision == refuse(
            RefusalReason.NO_CREDIT, available_units=available, required_units=required
        )
        return
    assert decision.accepted and decision.reason is None
    assert [o.pack for o in decision.offers] == chosen  # the best charged packs, in order
    assert all(o.hold_units == plan.requirement_for(o.pack) for o in decision.offers)
    assert sum(o.hold_units for o in decision.offers) == decision.required_units == required
    assert required <= available


@given(
    specs=st.lists(stock_pack, max_size=8),
    available=st.integers(min_value=-2_000, max_value=8_000),
    vehicle_packs=st.integers(min_value=1, max_value=3),
)
def test_overage_holds_never_exceed_the_allowance(
    specs: list[tuple[int, int, bool, PackStatus, str]], available: int, vehicle_packs: int
) -> None:
    stock = _stock(specs)
    rider = Rider("RX", SUB.id, vehicle_packs=vehicle_packs)
    decision = run(SUB_OVERAGE, available, rider=rider, stock=stock)
    charged = [p for p in stock if is_charged(p, ST2)]
    assert decision.accepted == (len(charged) >= vehicle_packs)
    if decision.accepted:
        holds = [o.hold_units for o in decision.offers]
        assert all(
            0 <= h <= SUB_OVERAGE.requirement_for(o.pack)
            for h, o in zip(holds, decision.offers, strict=True)
        )
        assert sum(holds) == min(decision.required_units, max(available, 0))
    else:
        assert decision.offers == ()


# ---------------------------------------------------------------------------------------------
# Packs: serials, operator codes, models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("serial", ["B-0001", "A", "A" * 50, "SN:12/34#5*6+7@8=9", "b.0001_x", "0"])
def test_validate_serial_accepts(serial: str) -> None:
    assert validate_serial(serial) == serial


@pytest.mark.parametrize(
    "serial",
    ["", "A" * 51, " B-0001", "B 0001", "-B0001", "B-0001\n", "B\t1", "Б-0001", None, 1234, b"B-0001"],
)
def test_validate_serial_refuses(serial: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_serial(serial)
    assert raised.value.message == (
        f"pack serial must be 1-50 printable characters without spaces, got {serial!r}"
    )


@pytest.mark.parametrize("code", ["ST1", "a" * 40, "st-1.b_2"])
def test_validate_code_accepts(code: str) -> None:
    assert validate_code(code, "station") == code


@pytest.mark.parametrize("code", ["", "a" * 41, "ST 1", "ST/1", "_ST1", None, 7])
def test_validate_code_refuses(code: object) -> None:
    expected = f"station id must be 1-40 characters of letters, digits, '.', '_' or '-', got {code!r}"
    with pytest.raises(InvalidInput, match=f"^{re.escape(expected)}$"):
        validate_code(code, "station")


def test_pack_model() -> None:
    assert PackModel("G2", 1_700).nominal_wh == 1_700
    assert PackModel("BIG", 1_000_000).nominal_wh == 1_000_000


@pytest.mark.parametrize(
    ("code", "nominal_wh", "message"),
    [
        ("G2", 0, "nominal_wh must be 1..1,000,000 Wh, got 0"),
        ("G2", 1_000_001, "nominal_wh must be 1..1,000,000 Wh, got 1000001"),
        ("G2", True, "nominal_wh must be an integer, got True"),
        ("G2", 1_700.0, "nominal_wh must be an integer, got 1700.0"),
        ("G 2", 1_700, "pack model id must be 1-40 characters"),
    ],
)
def test_pack_model_refuses(code: str, nominal_wh: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}"):
        PackModel(code, nominal_wh)  # type: ignore[arg-type]


def test_pack_place() -> None:
    assert slot_pack("B-1", 3).place() == "slot 3 of station ST2"
    assert rider_pack("B-1").place() == "with rider R1"
    assert slot_pack("B-1", 1, status=PackStatus.IN_STOCK).place() == "in stock"
    assert slot_pack("B-1", 1, status=PackStatus.QUARANTINED).place() == "quarantined"


def test_rider_vehicle_takes_one_to_eight_packs() -> None:
    assert Rider("R1", ENERGY.id, vehicle_packs=8).vehicle_packs == 8
    for bad in (0, 9):
        with pytest.raises(InvalidInput, match=f"^a vehicle takes 1..8 packs, got {bad}$"):
            Rider("R1", ENERGY.id, vehicle_packs=bad)


# ---------------------------------------------------------------------------------------------
# Stations: slots 1..S
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slot_no", [1, 5, 8])
def test_check_slot_accepts(slot_no: int) -> None:
    assert ST2.check_slot(slot_no) == slot_no


@pytest.mark.parametrize("slot_no", [0, 9, -1, 512])
def test_check_slot_refuses_slots_that_do_not_exist(slot_no: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        ST2.check_slot(slot_no)
    assert raised.value.message == f"slot {slot_no} does not exist at station ST2 (slots 1..8)"


@pytest.mark.parametrize("slot_no", [True, False, "3", 3.0, None])
def test_check_slot_refuses_non_integers(slot_no: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        ST2.check_slot(slot_no)
    assert raised.value.message == f"slot number must be an integer, got {slot_no!r}"


@given(slot_count=st.integers(min_value=2, max_value=MAX_SLOTS), slot_no=st.integers(-5, 600))
def test_check_slot_accepts_exactly_one_to_s(slot_count: int, slot_no: int) -> None:
    station = Station("STX", slot_count)
    if 1 <= slot_no <= slot_count:
        assert station.check_slot(slot_no) == slot_no
    else:
        with pytest.raises(InvalidInput, match="does not exist"):
            station.check_slot(slot_no)


@pytest.mark.parametrize("slot_count", [2, 8, MAX_SLOTS])
def test_validate_slot_count_accepts(slot_count: int) -> None:
    assert validate_slot_count(slot_count) == slot_count


@pytest.mark.parametrize(
    ("slot_count", "message"),
    [
        (1, "a station has 2..512 slots, got 1"),  # the method needs S >= 2
        (0, "a station has 2..512 slots, got 0"),
        (513, "a station has 2..512 slots, got 513"),
        (True, "slot count must be an integer, got True"),
        (8.0, "slot count must be an integer, got 8.0"),
        ("8", "slot count must be an integer, got '8'"),
    ],
)
def test_validate_slot_count_refuses(slot_count: object, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_slot_count(slot_count)
    assert raised.value.message == message


# -- R3: the token and the returned packs ---------------------------------------------------------


def test_a_token_naming_a_rider_who_holds_none_of_the_packs_is_a_mismatch() -> None:
    assert is_token_pack_mismatch("RB", {"RA"})


def test_a_token_naming_one_of_the_holders_is_no_mismatch() -> None:
    assert not is_token_pack_mismatch("RA", {"RA"})
    assert not is_token_pack_mismatch("RA", {"RA", "RC"})


def test_a_token_naming_nobody_or_packs_held_by_nobody_is_no_mismatch() -> None:
    assert not is_token_pack_mismatch(None, {"RA"})
    assert not is_token_pack_mismatch("RB", set())
