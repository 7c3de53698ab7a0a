"""The numbers of right-sizing and of the fleet policy an operator reads: per station and per UTC
day, the swaps right-sizing saved (riders who would have been refused for credit), the questions
asked and declined, and the credit refusals left; and the spread of wear across the fleet."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from swapd.domain.decision import RefusalReason
from swapd.domain.errors import InvalidInput
from swapd.domain.lifecycle import SwapState
from swapd.domain.packs import PackStatus
from swapd.domain.right_sizing import ConsentState
from swapd.store import schema as t
from swapd.store.database import Database, Tx

MAX_DAYS = 92  # one report covers at most a quarter: its rows are read into memory


@dataclass(frozen=True, slots=True)
class StationDay:
    station_id: str
    day: date
    saved_swaps: int  # right-sized packs handed over: each rider would have been refused
    asked: int  # right-sized offers the station asked about
    declined: int  # asked and never taken (expired, or the rider topped up instead)
    no_credit_refusals: int  # refused for credit all the same (no pack fit, or consent never)

    def to_json(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "day": self.day.isoformat(),
            "saved_swaps": self.saved_swaps,
            "asked": self.asked,
            "declined": self.declined,
            "no_credit_refusals": self.no_credit_refusals,
        }


def station_days(
    db: Database, since: datetime, until: datetime, *, station_id: str | None = None
) -> list[StationDay]:
    """One line per station and UTC day with anything to count, oldest first."""
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since and until must carry a time zone")
    if not since < until or until - since > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"give a range of at most {MAX_DAYS} days, since before until")

    def work(tx: Tx) -> list[StationDay]:
        s, c = t.swaps.c, t.swap_choices.c
        where = [s.created_at >= since, s.created_at < until]
        if station_id is not None:
            where.append(s.station_id == station_id)
        rows = tx.repo.execute(
            sa.select(s.station_id, s.created_at, s.state, s.reason, c.right_sized, c.consent)
            .select_from(t.swaps.outerjoin(t.swap_choices, c.swap_id == s.id))
            .where(*where, sa.or_(c.right_sized.is_(True), s.reason == RefusalReason.NO_CREDIT.value))
        ).all()
        counts: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for r in rows:
            line = counts[(r.station_id, r.created_at.date())]
            if r.reason == RefusalReason.NO_CREDIT.value:
                line[3] += 1
                continue
            if r.state == SwapState.COMPLETED.value:
                line[0] += 1
            if r.consent in (ConsentState.ASKED.value, ConsentState.CONFIRMED.value):
                line[1] += 1
            if r.consent == ConsentState.ASKED.value and r.state == SwapState.ABANDONED.value:
                line[2] += 1
        return [StationDay(k[0], k[1], *v) for k, v in sorted(counts.items(), key=lambda i: i[0][::-1])]

    return db.read(work)


@dataclass(frozen=True, slots=True)
class FleetSpread:
    """Wear across the packs in service (not retired): cycles (hand-overs) and SoH."""

    packs: int
    cycles_min: int
    cycles_max: int
    cycles_mean: float
    cycles_stdev: float
    soh_p10_bp: int
    soh_p50_bp: int
    soh_p90_bp: int

    @property
    def cycles_spread(self) -> int:
        return self.cycles_max - self.cycles_min

    def to_json(self) -> dict[str, Any]:
        return {
            "packs": self.packs,
            "cycles_min": self.cycles_min,
            "cycles_max": self.cycles_max,
            "cycles_spread": self.cycles_spread,
            "cycles_mean": round(self.cycles_mean, 1),
            "cycles_stdev": round(self.cycles_stdev, 1),
            "soh_p10_bp": self.soh_p10_bp,
            "soh_p50_bp": self.soh_p50_bp,
            "soh_p90_bp": self.soh_p90_bp,
        }


def fleet_spread(db: Database) -> FleetSpread:
    def work(tx: Tx) -> FleetSpread:
        rows = tx.repo.execute(
            sa.select(t.packs.c.cycle_count, t.packs.c.soh_bp).where(
                t.packs.c.status != PackStatus.RETIRED.value
            )
        ).all()
        return spread_of([int(r.cycle_count) for r in rows], [int(r.soh_bp) for r in rows])

    return db.read(work)


def spread_of(cycles: list[int], sohs: list[int]) -> FleetSpread:
    if not cycles:
        return FleetSpread(0, 0, 0, 0.0, 0.0, 0, 0, 0)
    mean = sum(cycles) / len(cycles)
    stdev = (sum((c - mean) ** 2 for c in cycles) / len(cycles)) ** 0.5
    ordered = sorted(sohs)
    return FleetSpread(
        len(cycles),
        min(cycles),
        max(cycles),
        mean,
        stdev,
        _percentile(ordered, 10),
        _percentile(ordered, 50),
        _percentile(ordered, 90),
    )


def _percentile(ordered: list[int], pct: int) -> int:
    """Nearest rank: the smallest value with at least ``pct`` % of the values at or below it."""
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[rank - 1]
