"""Offers that no station event answers are abandoned after a while: packs and allowance return."""

from __future__ import annotations

from datetime import timedelta

from swapd.domain.riders import IdToken, TokenType
from swapd.readmodels.money import rider_balance
from swapd.readmodels.stations import station_view
from swapd.services import catalog, payments, swaps
from swapd.store.database import Database, ManualClock
from tests.plans import ENERGY


def test_stale_offer_is_abandoned(db: Database, clock: ManualClock) -> None:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    catalog.add_station(db, "ST1", 4)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.add_rider(db, "R1", "energy")
    payments.top_up(db, "R1", 3_000, "pay-1")
    offer = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R1"))
    assert offer.accepted and rider_balance(db, "R1").held_units == 1_700

    clock.set(clock.now() + timedelta(seconds=599))
    assert swaps.expire_stale_offers(db, older_than_s=600) == []
    assert rider_balance(db, "R1").held_units == 1_700

    clock.set(clock.now() + timedelta(seconds=2))
    assert swaps.expire_stale_offers(db, older_than_s=600) == [offer.swap_id]
    balance = rider_balance(db, "R1")
    assert (balance.held_units, balance.available_units) == (0, 10_000)
    assert station_view(db, "ST1").packs["B-1"].reserved_swap_id is None
    assert swaps.expire_stale_offers(db, older_than_s=600) == []
