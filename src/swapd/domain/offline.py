"""Swaps a station served while it could not reach swapd, replayed when it is back. Pure: when a
replayed reading is older than what is known of a pack, what a hand-over beyond the allowance
books on credit, and the time a replayed event is metered at.

A station replaying a swap marks each of its BatterySwap events with
``customData: {"vendorId": "org.swapd", "offline": true, "timestamp": "<RFC 3339>"}`` (OCPP's
BatterySwapRequest has no time of its own): the time the event happened at the station. swapd
meters with that time (a time plan bills the hours the rider really held the pack) and judges
with it which of two readings of one pack is the newer (docs/OFFLINE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from swapd.domain.plans import Plan
from swapd.domain.quantities import MAX_PAYMENT_MINOR, ceil_div

# A station's clock may run this far ahead of the server's: a replayed time later than the
# moment it arrives plus this is the station's clock gone wrong, and is metered as "now".
MAX_CLOCK_AHEAD = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ReplayTime:
    at: datetime  # when the event is taken to have happened
    clock_ahead: bool  # the station's time was in the future: ``at`` is the arrival instead


def replay_time(claimed_at: datetime, received_at: datetime) -> ReplayTime:
    """The time a replayed event is metered and ordered at: the station's, unless it is later
    than its arrival (beyond MAX_CLOCK_AHEAD), which no real event can be."""
    assert claimed_at.tzinfo is not None and received_at.tzinfo is not None, "aware times only"
    if claimed_at > received_at + MAX_CLOCK_AHEAD:
        return ReplayTime(received_at, True)
    return ReplayTime(min(claimed_at, received_at), False)


def is_stale(reading_at: datetime, known_since: datetime | None) -> bool:
    """A replayed reading of a pack is stale when swapd has known the pack elsewhere (in a slot,
    with a rider) since a later time: the pack moved on after the reading, so the reading must
    not move it back. Equal times are not stale: the replay is the report of that very move."""
    return known_since is not None and reading_at < known_since


@dataclass(frozen=True, slots=True)
class OfflineCredit:
    """A hand-over an offline station made beyond the rider's allowance, sold on credit: the
    least money whose allowance covers the shortfall at the plan's price, owed as a receivable,
    and the allowance it buys (rounded down, as a top-up of that amount would buy).

    Invariants: ``amount_minor`` >= 1; ``units`` >= ``shortfall_units`` unless the amount was
    capped at MAX_PAYMENT_MINOR (then the hold covers less than the pack requires)."""

    shortfall_units: int
    amount_minor: int
    units: int


def _price(plan: Plan) -> tuple[int, int]:
    """(minor units, allowance units): a prepaid plan's top-up price; a subscription's fee for
    its included units."""
    if plan.is_subscription:
        return plan.fee_minor, plan.included_units
    return plan.price_minor, plan.price_units


def offline_credit(plan: Plan, shortfall_units: int) -> OfflineCredit | None:
    """What covers the ``shortfall_units`` a rider's allowance lacked for a pack an offline
    station handed over; None when nothing lacked, or when the plan bills overage at the return
    anyway (a subscription with an overage price hands over beyond the allowance online too)."""
    assert shortfall_units >= 0
    if shortfall_units == 0 or plan.allows_overage:
        return None
    price_minor, price_units = _price(plan)
    amount = min(ceil_div(shortfall_units * price_minor, price_units), MAX_PAYMENT_MINOR)
    units = amount * price_units // price_minor
    assert amount >= 1 and (units >= shortfall_units or amount == MAX_PAYMENT_MINOR)
    return OfflineCredit(shortfall_units, amount, units)


def beyond_offline_limit(plan: Plan, served_offline: int) -> bool:
    """``served_offline`` hand-overs to one rider in one offline spell of a station pass the
    limit its list gave the station (a station that ignores its list, or a list sent late)."""
    return served_offline > plan.offline_swaps_max
