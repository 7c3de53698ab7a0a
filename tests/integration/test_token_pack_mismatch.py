"""A card names one rider, the returned pack another: the pack decides who is billed (R3), the
disagreement is an alert, and the offer the card was given is released at once."""

from __future__ import annotations

from swapd.domain.riders import IdToken, TokenType
from swapd.ledger.model import TransferCode
from swapd.readmodels import alerts
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.readmodels.stations import station_view
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database
from swapd.store.ledger_check import check_ledger
from tests import network as net

CARD_B = IdToken(TokenType.RFID, "CARD-B")
RETURN_A = [BatteryReading(5, "P-A", 2_000, 10_000)]


def _a_holds_a_pack_and_b_is_offered_packs_at_st1(db: Database) -> swaps.AuthorizeResult:
    net.network(db)
    net.pack(db, "P-A", station_id="ST2", slot_no=1)
    net.pack(db, "P-1", station_id="ST1", slot_no=1)
    net.rider(db, "RA")
    net.rider(db, "RB")
    net.card(db, "RB", "CARD-B")
    payments.top_up(db, "RA", 10_000, "pay-a")
    payments.top_up(db, "RB", 10_000, "pay-b")
    app_a = IdToken(TokenType.APP, "RA")
    assert swaps.authorize(db, "ST2", app_a).accepted
    swaps.battery_out(db, "ST2", "out-a", [BatteryReading(1, "P-A", 10_000, 10_000)], token=app_a)
    assert rider_balance(db, "RB").available_units == 33_333
    offer = swaps.authorize(db, "ST1", CARD_B)
    assert offer.accepted and offer.rider_id == "RB" and offer.offered_slots == [1]
    assert rider_balance(db, "RB").available_units == 33_333 - 1_700
    return offer


def _mismatch_alerts(db: Database) -> list[alerts.AlertRow]:
    return alerts.alerts(db, kind="token_pack_mismatch")


def test_the_pack_is_billed_the_card_rider_alerted_and_their_offer_released(db: Database) -> None:
    offer = _a_holds_a_pack_and_b_is_offered_packs_at_st1(db)

    result = swaps.battery_in(db, "ST1", "in-1", RETURN_A, token=CARD_B)

    (pack,) = result.packs
    assert (pack.outcome, pack.rider_id, pack.usage_units) == ("returned", "RA", 1_360)
    assert rider_balance(db, "RA").posted_units == 33_333 - 1_360
    (alert,) = _mismatch_alerts(db)
    assert (alert.station_id, alert.pack_serial, alert.rider_id) == ("ST1", "P-A", "RB")
    assert "RA" in alert.detail and "RB" in alert.detail
    assert "request in-1" in alert.detail and f"offer {offer.swap_id}" in alert.detail
    balance = rider_balance(db, "RB")
    assert (balance.posted_units, balance.held_units, balance.available_units) == (33_333, 0, 33_333)
    assert station_view(db, "ST1").packs["P-1"].reserved_swap_id is None
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def test_a_repeated_battery_in_neither_alerts_nor_releases_again(db: Database) -> None:
    _a_holds_a_pack_and_b_is_offered_packs_at_st1(db)
    first = swaps.battery_in(db, "ST1", "in-1", RETURN_A, token=CARD_B)

    again = swaps.battery_in(db, "ST1", "in-1", RETURN_A, token=CARD_B)
    # Reported again under a new requestId: the pack is in its slot now, held by nobody.
    swaps.battery_in(db, "ST1", "in-2", RETURN_A, token=CARD_B)

    assert again.repeated and again.packs == first.packs
    assert len(_mismatch_alerts(db)) == 1
    releases = [tr for tr in transfers_of(db, "RB") if tr.code is TransferCode.RELEASE]
    assert [tr.amount for tr in releases] == [1_700]
    assert rider_balance(db, "RB").available_units == 33_333


def test_the_offer_expiry_finds_nothing_left_to_release(db: Database) -> None:
    offer = _a_holds_a_pack_and_b_is_offered_packs_at_st1(db)
    swaps.battery_in(db, "ST1", "in-1", RETURN_A, token=CARD_B)
    assert swaps.abandon_offer(db, offer.swap_id).packs == ()


def test_the_card_of_the_packs_holder_raises_no_alert(db: Database) -> None:
    _a_holds_a_pack_and_b_is_offered_packs_at_st1(db)
    catalog.add_token(db, TokenType.RFID, "CARD-A", rider_id="RA")
    swaps.battery_in(db, "ST1", "in-1", RETURN_A, token=IdToken(TokenType.RFID, "CARD-A"))
    assert _mismatch_alerts(db) == []
    assert rider_balance(db, "RB").held_units == 1_700  # B's offer stands until used or expired
