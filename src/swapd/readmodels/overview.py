"""The network at a glance, for the operator console's first page: stations and how many are
connected, charged packs ready to hand out, swaps and refusals since the start of the day, alerts
of the last 24 hours, and the swaps of each of the last 24 hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from swapd.domain.lifecycle import SwapState
from swapd.readmodels.stations import station_lines
from swapd.store import schema as t
from swapd.store.database import Database, Tx

HOURS = 24
DAYS = 14


@dataclass(frozen=True, slots=True)
class HourCount:
    hour_start: datetime
    swaps: int


@dataclass(frozen=True, slots=True)
class DayFigures:
    day_start: datetime
    energy_wh: int  # metered on the packs returned that day (energy plans)
    revenue_minor: int  # money recognised that day, in ``currency``
    currency: str


@dataclass(frozen=True, slots=True)
class Overview:
    stations: int
    stations_connected: int
    slots: int
    packs_in_slots: int
    charged_packs: int  # ready to hand out now: charged, healthy, not reserved
    swaps_today: int  # completed since the start of the day (UTC)
    refusals_today: int
    alerts_24h: int
    per_hour: tuple[HourCount, ...]  # oldest first, the current hour last
    per_day: tuple[DayFigures, ...] = ()  # oldest first, today last

    @property
    def busiest_day_wh(self) -> int:
        return max((d.energy_wh for d in self.per_day), default=0)

    @property
    def best_day_minor(self) -> int:
        return max((d.revenue_minor for d in self.per_day), default=0)

    @property
    def busiest_hour(self) -> int:
        return max((h.swaps for h in self.per_hour), default=0)


def _count(tx: Tx, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return int(tx.repo.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def overview(db: Database, now: datetime) -> Overview:
    lines = station_lines(db)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    s, a = t.swaps.c, t.alerts.c

    def work(tx: Tx) -> Overview:
        connected = _count(tx, t.stations, t.stations.c.connection_id.is_not(None))
        completed = s.state == SwapState.COMPLETED.value
        per_hour = []
        for back in range(HOURS - 1, -1, -1):
            start = this_hour - timedelta(hours=back)
            end = start + timedelta(hours=1)
            count = _count(tx, t.swaps, completed, s.updated_at >= start, s.updated_at < end)
            per_hour.append(HourCount(start, count))
        return Overview(
            stations=len(lines),
            stations_connected=connected,
            slots=sum(line.station.slot_count for line in lines),
            packs_in_slots=sum(line.packs for line in lines),
            charged_packs=sum(line.charged for line in lines),
            swaps_today=_count(tx, t.swaps, completed, s.updated_at >= day_start),
            refusals_today=_count(
                tx, t.swaps, s.state == SwapState.REFUSED.value, s.created_at >= day_start
            ),
            alerts_24h=_count(tx, t.alerts, a.created_at >= now - timedelta(hours=24)),
            per_hour=tuple(per_hour),
            per_day=_per_day(tx, day_start),
        )

    return db.read(work)


def _currency(tx: Tx) -> str:
    """The network's currency: that of most plans (one in practice)."""
    p = t.plans.c
    row = tx.repo.execute(
        sa.select(p.currency).group_by(p.currency).order_by(sa.func.count().desc()).limit(1)
    ).first()
    return "KRW" if row is None else str(row.currency)


def _per_day(tx: Tx, today: datetime) -> tuple[DayFigures, ...]:
    """Energy metered and revenue recognised on each of the last DAYS days (UTC days)."""
    currency = _currency(tx)
    o, x, a = t.possessions.c, t.transfers.c, t.accounts.c
    energy_plans = sa.select(t.plans.c.id).where(t.plans.c.unit == "Wh").scalar_subquery()
    revenue_accounts = sa.select(a.id).where(a.code == "revenue", a.ledger == currency).scalar_subquery()
    days = []
    for back in range(DAYS - 1, -1, -1):
        start = today - timedelta(days=back)
        end = start + timedelta(days=1)
        energy = tx.repo.execute(
            sa.select(sa.func.coalesce(sa.func.sum(o.usage_units), 0)).where(
                o.at_in >= start, o.at_in < end, o.plan_id.in_(energy_plans)
            )
        ).scalar_one()
        earned = tx.repo.execute(
            sa.select(sa.func.coalesce(sa.func.sum(x.amount), 0)).where(
                x.created_at >= start, x.created_at < end, x.credit_account_id.in_(revenue_accounts)
            )
        ).scalar_one()
        days.append(DayFigures(start, int(energy), int(earned), currency))
    return tuple(days)
