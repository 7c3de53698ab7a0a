"""Offers nobody took: the station's BatteryOutTimeout, and the server's own expiry of offers no
station event answered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from swapd.domain.errors import InvalidInput, NotFound
from swapd.domain.riders import IdToken
from swapd.services.ports import Transactions, UnitOfWork
from swapd.services.swaps.checks import check_batteries, check_request_id, check_token
from swapd.services.swaps.event_records import record, station_and_repeat
from swapd.services.swaps.offers import abandon, swap_for_event
from swapd.services.swaps.records import BatteryReading, EventResult, EventType


def battery_out_timeout(
    db: Transactions,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading] = (),
    *,
    token: IdToken | None = None,
) -> EventResult:
    """The offered packs were not taken: release their holds; they stay in stock."""
    request_id = check_request_id(request_id)
    if token is not None:
        check_token(token)

    def work(uow: UnitOfWork) -> EventResult:
        event = EventType.BATTERY_OUT_TIMEOUT
        station, repeated = station_and_repeat(uow, station_id, request_id, event)
        if batteries:
            check_batteries(station, batteries)
        if repeated is not None:
            return repeated
        swap = swap_for_event(uow, station_id, request_id, token)
        outcomes = [] if swap is None else abandon(uow, swap)
        swap_id = None if swap is None else swap.id
        result = EventResult(swap_id, EventType.BATTERY_OUT_TIMEOUT, tuple(outcomes))
        return record(uow, station_id, request_id, result)

    return db.write(work)


def abandon_offer(db: Transactions, swap_id: int) -> EventResult:
    """Server-side: give up an offer no station event ever answered (the rider walked away)."""

    def work(uow: UnitOfWork) -> EventResult:
        swap = uow.repo.swap(swap_id)
        if swap is None:
            raise NotFound(f"unknown swap {swap_id}")
        return EventResult(swap_id, EventType.BATTERY_OUT_TIMEOUT, tuple(abandon(uow, swap)))

    return db.write(work)


# Offers expired per pass: a pass is bounded, the gateway runs the next one soon after.
_EXPIRED_AT_ONCE = 500


def expire_stale_offers(db: Transactions, *, older_than_s: int) -> list[int]:
    """Abandon offers that no station event answered in time: their packs go back in stock and
    their holds are released. The gateway runs this now and then; returns the swaps abandoned."""
    if older_than_s <= 0:
        raise InvalidInput("older_than_s must be positive")

    def stale(uow: UnitOfWork) -> list[int]:
        cutoff = uow.now - timedelta(seconds=older_than_s)
        return uow.repo.stale_offers(cutoff, _EXPIRED_AT_ONCE)

    expired = []
    for swap_id in db.read(stale):
        result = abandon_offer(db, swap_id)
        if result.packs:
            expired.append(swap_id)
    return expired
