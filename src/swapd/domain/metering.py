"""R4: metering a closed possession. Pure functions of the readings at hand-over and return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from swapd.domain.plans import Plan
from swapd.domain.quantities import PERCENT_BP, Unit, ceil_div, round_half_even

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Usage:
    units: int
    anomaly: str | None = None  # e.g. SoC higher at return than at hand-over


def energy_usage_wh(nominal_wh: int, soh_out_bp: int, soc_out_bp: int, soc_in_bp: int) -> Usage:
    """usage = round_half_even(nominal * soh_out * max(0, soc_out - soc_in)); a gain bills 0."""
    drop_bp = soc_out_bp - soc_in_bp
    if drop_bp < 0:
        return Usage(0, f"SoC rose from {soc_out_bp} bp at hand-over to {soc_in_bp} bp at return")
    return Usage(round_half_even(nominal_wh * soh_out_bp * drop_bp, PERCENT_BP * PERCENT_BP))


def time_usage_s(handed_over_at: datetime, returned_at: datetime, granularity_s: int) -> Usage:
    """Seconds held, rounded up to the plan's granularity (every started step counts)."""
    held_us = (returned_at - handed_over_at) // _MICROSECOND
    if held_us < 0:
        return Usage(0, "returned before it was handed over (clock skew)")
    held_s = ceil_div(held_us, 1_000_000)
    return Usage(ceil_div(held_s, granularity_s) * granularity_s)


def meter(
    plan: Plan,
    *,
    nominal_wh: int,
    soh_out_bp: int,
    soc_out_bp: int,
    soc_in_bp: int,
    handed_over_at: datetime,
    returned_at: datetime,
) -> Usage:
    if plan.unit is Unit.ENERGY_WH:
        return energy_usage_wh(nominal_wh, soh_out_bp, soc_out_bp, soc_in_bp)
    if plan.unit is Unit.TIME_S:
        return time_usage_s(handed_over_at, returned_at, plan.granularity_s)
    return Usage(1)
