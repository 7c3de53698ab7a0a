"""R5: how a metered usage is split between the rider's allowance and what lies beyond it.

Pure: the caller posts the ledger transfers. The usage is taken first from the possession's pending
hold, then from the free allowance (available after every other hold), and what is left is beyond
the allowance: billed as overage at the plan's overage price (subscriptions that price it), or owed
as overdrawn units that the next top-up settles.

Bounds: every unit amount is 0..MAX_TRANSFER_AMOUNT (one ledger transfer), a price is
0..MAX_PAYMENT_MINOR for ``price_units`` of 1..MAX_TRANSFER_AMOUNT; Python integers do not overflow,
and each part is at most ``usage_units``, so each part fits one transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

from swapd.domain.plans import Plan
from swapd.domain.quantities import round_half_even


@dataclass(frozen=True, slots=True)
class ChargeSplit:
    """Invariants: ``from_hold_units + from_free_units + beyond_units == usage_units``, each part
    >= 0, and ``overage_minor`` is 0 unless the plan bills overage and something is beyond."""

    usage_units: int
    from_hold_units: int  # posted from the possession's pending hold
    from_free_units: int  # taken from the allowance still available
    beyond_units: int  # used beyond the allowance
    overage_minor: int  # the money billed for beyond_units; 0 when they are owed as overdrawn
    overage_billed: bool  # beyond_units are overage (billed) rather than overdrawn (owed)

    @property
    def charged_units(self) -> int:
        """The part charged to the allowance (hold and free allowance together)."""
        return self.from_hold_units + self.from_free_units


def split_charge(
    usage_units: int,
    *,
    held_units: int,
    available_units: int,
    overage_price_minor: int,
    price_units: int,
) -> ChargeSplit:
    """Split ``usage_units`` into hold, free allowance and beyond; price what is beyond at
    ``overage_price_minor`` per ``price_units`` (rounded half to even), or not at all when the
    overage price is 0 (then what is beyond is owed)."""
    assert usage_units >= 0 and held_units >= 0, "usage and holds are never negative"
    # The allowance account's debits (posted and pending) never exceed its credits.
    assert available_units >= 0, "the available allowance is never negative"
    assert overage_price_minor >= 0 and price_units > 0, "a price is a non-negative rate"
    from_hold_units = min(usage_units, held_units)
    rest_units = usage_units - from_hold_units
    from_free_units = min(rest_units, available_units)
    beyond_units = rest_units - from_free_units
    billed = overage_price_minor > 0
    overage_minor = (
        round_half_even(beyond_units * overage_price_minor, price_units)
        if billed and beyond_units > 0
        else 0
    )
    return ChargeSplit(
        usage_units, from_hold_units, from_free_units, beyond_units, overage_minor, billed
    )


def split_for_plan(
    plan: Plan, usage_units: int, *, held_units: int, available_units: int
) -> ChargeSplit:
    """R5 under ``plan``: only a plan that allows overage bills what is beyond the allowance."""
    return split_charge(
        usage_units,
        held_units=held_units,
        available_units=available_units,
        overage_price_minor=plan.price_minor if plan.allows_overage else 0,
        price_units=plan.price_units,
    )
