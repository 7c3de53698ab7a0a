"""Plan reads: the operator's list with rider counts, one plan, and the plans riders may choose."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.domain.plans import Plan
from swapd.store import schema as t
from swapd.store.database import Database, Tx


def quantity_name(unit: str) -> str:
    """The unit as API field names spell it: energy_wh, time_s, deliveries."""
    return {"Wh": "energy_wh", "s": "time_s", "count": "deliveries"}[unit]


@dataclass(frozen=True, slots=True)
class PlanLine:
    plan: Plan
    riders: int


def plans(db: Database) -> list[PlanLine]:
    def work(tx: Tx) -> list[PlanLine]:
        counts = dict(
            tx.repo.execute(sa.select(t.riders.c.plan_id, sa.func.count()).group_by(t.riders.c.plan_id))
            .tuples()
            .all()
        )
        return [PlanLine(p, int(counts.get(p.id, 0))) for p in tx.repo.plans()]

    return db.read(work)


def plan(db: Database, plan_id: str) -> Plan:
    def work(tx: Tx) -> Plan:
        found = tx.repo.plan(plan_id)
        if found is None:
            raise NotFound(f"unknown plan {plan_id}")
        return found

    return db.read(work)


def listed_plans(db: Database) -> list[Plan]:
    """The plans riders can choose from: the listed ones."""
    return db.read(lambda tx: tx.repo.plans(listed_only=True))
