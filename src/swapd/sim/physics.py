"""How packs charge in a slot and drain on the road, and the simulated clock. Pure but the clock."""

from __future__ import annotations

import asyncio
import time

TAPER_AT_PCT = 80.0  # constant-current phase up to here, then the slow constant-voltage phase
FAST_PCT_PER_H = 60.0
SLOW_PCT_PER_H = 20.0
FULL_PCT = 100.0


def charged(soc_pct: float, hours: float) -> float:
    """SoC after charging for ``hours``: fast to 80 %, slower to 100 %."""
    if hours <= 0 or soc_pct >= FULL_PCT:
        return min(soc_pct, FULL_PCT)
    if soc_pct < TAPER_AT_PCT:
        fast_h = (TAPER_AT_PCT - soc_pct) / FAST_PCT_PER_H
        if hours <= fast_h:
            return soc_pct + FAST_PCT_PER_H * hours
        hours -= fast_h
        soc_pct = TAPER_AT_PCT
    return min(FULL_PCT, soc_pct + SLOW_PCT_PER_H * hours)


def drained(soc_pct: float, pct_per_h: float, hours: float) -> float:
    return max(0.0, soc_pct - pct_per_h * max(0.0, hours))


def hours_until(soc_pct: float, target_pct: float, pct_per_h: float) -> float:
    """Riding time until the pack is down to ``target_pct``."""
    if pct_per_h <= 0:
        return float("inf")
    return max(0.0, (soc_pct - target_pct) / pct_per_h)


class SimClock:
    """Simulated seconds since the start, running ``speed`` times faster than the wall clock."""

    def __init__(self, speed: float) -> None:
        assert speed > 0
        self.speed = speed
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def real_elapsed(self) -> float:
        return time.monotonic() - self._t0

    async def sleep(self, sim_s: float) -> None:
        await asyncio.sleep(max(0.0, sim_s) / self.speed)

    async def sleep_until(self, sim_s: float) -> None:
        await self.sleep(sim_s - self.now())
