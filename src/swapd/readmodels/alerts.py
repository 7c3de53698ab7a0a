"""Alert reads: the operator's filtered, paged list, and whole rows for scenario expectations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from swapd.readmodels.paging import clamp_limit
from swapd.store import schema as t
from swapd.store.database import Database, Tx


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    kind: str
    station_id: str | None
    pack_serial: str | None
    rider_id: str | None
    detail: str
    created_at: datetime


def alerts(
    db: Database,
    *,
    kind: str | None = None,
    station_id: str | None = None,
    pack_serial: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AlertRow]:
    """Newest first; page with ``before_id`` (the last id seen)."""

    def work(tx: Tx) -> list[AlertRow]:
        a = t.alerts.c
        query = sa.select(t.alerts).order_by(a.id.desc()).limit(clamp_limit(limit))
        if kind is not None:
            query = query.where(a.kind == kind)
        if station_id is not None:
            query = query.where(a.station_id == station_id)
        if pack_serial is not None:
            query = query.where(a.pack_serial == pack_serial)
        if since is not None:
            query = query.where(a.created_at >= since)
        if before_id is not None:
            query = query.where(a.id < before_id)
        return [
            AlertRow(r.id, r.kind, r.station_id, r.pack_serial, r.rider_id, r.detail, r.created_at)
            for r in tx.repo.execute(query)
        ]

    return db.read(work)


def recent_alerts(db: Database, *, limit: int = 100) -> list[dict[str, object]]:
    """The newest alerts with every column, as mappings."""

    def work(tx: Tx) -> list[dict[str, object]]:
        rows = tx.repo.execute(sa.select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]

    return db.read(work)
