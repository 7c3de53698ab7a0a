"""A rider who owes money: a subscription whose allowance is used up, then one pack whose energy is
all overage (the receivable the billing method's subscription plans create)."""

from __future__ import annotations

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.services import payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database
from tests import network as net

# 5,000 KRW a month for 2,000 Wh; overage 250 KRW per 1,000 Wh; no pro-rating, so that the
# included allowance does not depend on the day the test runs.
OWING_PLAN = Plan(
    "owing",
    PlanKind.SUBSCRIPTION,
    Unit.ENERGY_WH,
    "KRW",
    250,
    1000,
    fee_minor=5_000,
    included_units=2_000,
    prorate_first_cycle=False,
)
# 1,700 Wh of a G2 pack (100 % SoH, 100 % -> 0 % SoC), all beyond the allowance: 1,700 x 250 / 1,000.
OWED_MINOR = 425


def owing(db: Database, rider_id: str) -> int:
    """Plan ``owing``, pack model G2, station ST-OWE and pack B-OWE on a database that has none of
    them; ``rider_id`` subscribes, has the allowance taken away and uses one pack. Returns what
    the rider owes."""
    net.pack_model(db)
    net.plans(db, OWING_PLAN)
    net.station(db, "ST-OWE", slot_count=4)
    net.pack(db, "B-OWE", station_id="ST-OWE", slot_no=1)
    net.rider(db, rider_id, plan_id=OWING_PLAN.id)
    payments.subscribe(db, rider_id, f"sub-{rider_id}")
    payments.adjust(db, rider_id, -2_000, reason="test: used up", actor="test", key=f"use-{rider_id}")
    app = IdToken(TokenType.APP, rider_id)
    offer = swaps.authorize(db, "ST-OWE", app)
    assert offer.accepted, offer.reason
    reading = BatteryReading(1, "B-OWE", 10_000, 10_000)
    swaps.battery_out(db, "ST-OWE", "owe-out", [reading], token=app)
    back = BatteryReading(2, "B-OWE", 0, 10_000)
    serial = IdToken(TokenType.BATTERY_SERIAL, "B-OWE")
    (pack,) = swaps.battery_in(db, "ST-OWE", "owe-in", [back], token=serial).packs
    assert (pack.rider_id, pack.overage_minor) == (rider_id, OWED_MINOR)
    return OWED_MINOR
