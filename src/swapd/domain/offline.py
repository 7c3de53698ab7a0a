"""Swaps a station served while it could not reach swapd, replayed when it is back. Pure: when a
replayed reading is older than what is known of a pack, when a hand-over beyond the allowance is
on credit and at what price its overdraw is billed, and the time a replayed event is metered at.

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


def on_credit(plan: Plan, shortfall_units: int) -> bool:
    """A pack an offline station handed over although the rider's allowance lacked
    ``shortfall_units`` of what the pack requires is on credit: what its return meters beyond
    the allowance is billed at the plan's price as a receivable (``overdraw_price``), not owed
    in units. A plan that bills overage does that for every hand-over already."""
    assert shortfall_units >= 0
    return shortfall_units > 0 and not plan.allows_overage


def overdraw_price(plan: Plan) -> tuple[int, int]:
    """(minor units, allowance units): the price of usage beyond the allowance on credit. A
    prepaid plan's top-up price; a subscription's fee for its included units, or its overage
    price where it has one. At most MAX_PAYMENT_MINOR for at least one unit (the plan's bounds)."""
    if plan.is_subscription and not plan.allows_overage:
        return plan.fee_minor, plan.included_units
    return plan.price_minor, plan.price_units


def beyond_offline_limit(plan: Plan, served_offline: int) -> bool:
    """``served_offline`` hand-overs to one rider in one offline spell of a station pass the
    limit its list gave the station (a station that ignores its list, or a list sent late)."""
    return served_offline > plan.offline_swaps_max
