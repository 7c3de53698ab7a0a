"""Revenue at the rider's weighted average price: ``u`` of the ``U`` units on the allowance are
worth ``u/U`` of the ``L`` prepaid money still held for the rider.

When the allowance reaches zero the prepaid liability reaches exactly zero too, whatever rounding
happened on the way. Pure: use cases post the transfers, read models show the values.
"""

from __future__ import annotations

from swapd.domain.quantities import round_half_even


def weighted_value(liability_minor: int, total_units: int, units: int) -> int:
    """What ``units`` of ``total_units`` are worth when all of them are worth ``liability_minor``."""
    if units <= 0 or total_units <= 0 or liability_minor <= 0:
        return 0
    if units >= total_units:
        return liability_minor
    return min(liability_minor, round_half_even(liability_minor * units, total_units))
