"""An accepted Authorize answers from what its own transaction wrote (no read-back); a repeat of
the same request rebuilds the answer from the database. Both must be the same answer, and the
balance it carries must be the one the balance view shows."""

from __future__ import annotations

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.readmodels import money
from swapd.services import catalog, payments, swaps
from swapd.store.database import Database

PLAN = Plan("energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)


def test_fresh_and_repeated_answers_are_equal_and_carry_the_balance(db: Database) -> None:
    catalog.add_pack_model(db, "M1", 1700)
    catalog.add_plan(db, PLAN)
    catalog.add_station(db, "ST1", 4)
    catalog.add_rider(db, "R1", PLAN.id, vehicle_packs=2)
    payments.top_up(db, "R1", 10_000, "pay-1")
    # The decision picks by charge (slots 3 then 2); the answer lists the slots in order.
    for slot_no, soc in ((3, 100), (1, 95), (2, 97)):
        catalog.register_pack(
            db, f"P{slot_no}", "M1", soc=soc, soh=100, station_id="ST1", slot_no=slot_no
        )
    token = IdToken(TokenType.APP, "R1")

    fresh = swaps.authorize(db, "ST1", token, request_id="1", wanted=2)
    repeated = swaps.authorize(db, "ST1", token, request_id="1", wanted=2)

    assert fresh.accepted and len(fresh.offered) == 2
    assert fresh == repeated
    assert fresh.offered_slots == sorted(fresh.offered_slots)
    balance = money.rider_balance(db, "R1")
    assert fresh.available_units == balance.available_units
    assert fresh.available_value_minor == balance.available_value_minor
    assert fresh.currency == "KRW" and fresh.unit == "Wh"
    assert 0 < fresh.available_value_minor < 10_000  # the holds took part of the allowance
