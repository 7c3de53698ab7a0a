"""A rider's own swap history: each swap with the packs returned, what each cost, and the packs
taken.

Every query is scoped by the rider id the caller was authenticated as, in the WHERE clause of each
statement, so that no id a rider sends can reach another rider's rows. The charge of a returned
pack is read back from the ledger (the transfers the return wrote), not recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput
from swapd.domain.plans import Plan
from swapd.ledger.model import TransferCode
from swapd.readmodels.paging import RIDER_MAX_PAGE
from swapd.store import schema as t
from swapd.store.database import Database, Tx


@dataclass(frozen=True, slots=True)
class ReturnCharge:
    """What one returned pack cost: units from the allowance, units beyond it, and money."""

    unit: str
    currency: str
    usage_units: int  # metered (R4)
    charged_units: int  # taken from the allowance
    beyond_units: int  # used beyond the allowance (overage or overdrawn)
    revenue_minor: int  # prepaid money earned by the charged units
    overage_minor: int  # billed for units beyond the allowance (subscriptions with overage)

    @property
    def amount_minor(self) -> int:
        return self.revenue_minor + self.overage_minor


@dataclass(frozen=True, slots=True)
class ReturnedPack:
    serial: str
    model_code: str
    slot_no: int
    taken_at: datetime
    returned_at: datetime
    station_taken_id: str
    soc_out_bp: int
    soc_in_bp: int
    soh_in_bp: int
    anomaly: str | None
    charge: ReturnCharge


@dataclass(frozen=True, slots=True)
class TakenPack:
    serial: str
    model_code: str
    slot_no: int
    taken_at: datetime
    soc_out_bp: int
    soh_out_bp: int
    hold_units: int
    unit: str
    returned: bool


@dataclass(frozen=True, slots=True)
class RiderSwapLine:
    id: int
    station_id: str
    station_name: str | None
    at: datetime
    state: str
    reason: str | None
    returned: tuple[ReturnedPack, ...]
    taken: tuple[TakenPack, ...]


def _charge(tx: Tx, rider_id: str, plan: Plan, key_prefix: str, usage_units: int) -> ReturnCharge:
    x = t.transfers.c
    rows = tx.repo.execute(
        sa.select(x.ledger, x.code, x.amount).where(
            x.rider_id == rider_id, x.key.startswith(key_prefix, autoescape=True)
        )
    ).all()
    charged = beyond = revenue = overage = 0
    for row in rows:
        code = TransferCode(row.code)
        if row.ledger == plan.currency:
            if code is TransferCode.REVENUE:
                revenue += row.amount
            elif code is TransferCode.OVERAGE:
                overage += row.amount
        elif code is TransferCode.USAGE:
            charged += row.amount
        elif code in (TransferCode.OVERAGE, TransferCode.OVERDRAWN):
            beyond += row.amount
    return ReturnCharge(plan.unit.value, plan.currency, usage_units, charged, beyond, revenue, overage)


def _possessions(
    tx: Tx, rider_id: str, column: sa.Column[Any], swap_ids: Sequence[int]
) -> Sequence[sa.Row[Any]]:
    """The rider's possessions that went out (``swap_out_id``) or came back in (``swap_in_id``)
    in these swaps; another rider's pack in the same station event is never among them."""
    p = t.possessions.c
    return tx.repo.execute(
        sa.select(t.possessions, t.packs.c.model_code)
        .join(t.packs, t.packs.c.serial == p.pack_serial)
        .where(p.rider_id == rider_id, column.in_(list(swap_ids)))
        .order_by(p.id)
    ).all()


def rider_swaps(
    db: Database, rider_id: str, *, limit: int, before: int | None = None
) -> list[RiderSwapLine]:
    """The rider's swaps, newest first; ``before`` is the id of the last swap of the previous page."""
    if not 1 <= limit <= RIDER_MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{RIDER_MAX_PAGE}, got {limit}")

    def work(tx: Tx) -> list[RiderSwapLine]:
        s = t.swaps.c
        query = (
            sa.select(t.swaps, t.stations.c.name)
            .join(t.stations, t.stations.c.id == s.station_id)
            .where(s.rider_id == rider_id)
            .order_by(s.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(s.id < before)
        swap_rows = tx.repo.execute(query).all()
        ids = [int(r.id) for r in swap_rows]
        plan_cache: dict[str, Plan] = {}

        def plan_of(plan_id: str) -> Plan:
            if plan_id not in plan_cache:
                found = tx.repo.plan(plan_id)
                assert found is not None
                plan_cache[plan_id] = found
            return plan_cache[plan_id]

        p = t.possessions.c
        returned: dict[int, list[ReturnedPack]] = {i: [] for i in ids}
        requests = {int(r.id): (r.station_id, r.request_id) for r in swap_rows}
        for row in _possessions(tx, rider_id, p.swap_in_id, ids):
            station_id, request_id = requests[int(row.swap_in_id)]
            plan = plan_of(row.plan_id)
            # The return's transfers carry keys "{station}:{requestId}:{serial}:BatteryIn:...".
            prefix = f"{station_id}:{request_id}:{row.pack_serial}:BatteryIn:"
            returned[int(row.swap_in_id)].append(
                ReturnedPack(
                    serial=row.pack_serial,
                    model_code=row.model_code,
                    slot_no=row.slot_in,
                    taken_at=row.at_out,
                    returned_at=row.at_in,
                    station_taken_id=row.station_out,
                    soc_out_bp=row.soc_out_bp,
                    soc_in_bp=row.soc_in_bp,
                    soh_in_bp=row.soh_in_bp,
                    anomaly=row.anomaly,
                    charge=_charge(tx, rider_id, plan, prefix, int(row.usage_units or 0)),
                )
            )
        taken: dict[int, list[TakenPack]] = {i: [] for i in ids}
        for row in _possessions(tx, rider_id, p.swap_out_id, ids):
            taken[int(row.swap_out_id)].append(
                TakenPack(
                    serial=row.pack_serial,
                    model_code=row.model_code,
                    slot_no=row.slot_out,
                    taken_at=row.at_out,
                    soc_out_bp=row.soc_out_bp,
                    soh_out_bp=row.soh_out_bp,
                    hold_units=row.hold_units,
                    unit=plan_of(row.plan_id).unit.value,
                    returned=row.at_in is not None,
                )
            )
        return [
            RiderSwapLine(
                id=int(r.id),
                station_id=r.station_id,
                station_name=r.name,
                at=r.created_at,
                state=r.state,
                reason=r.reason,
                returned=tuple(returned[int(r.id)]),
                taken=tuple(taken[int(r.id)]),
            )
            for r in swap_rows
        ]

    return db.read(work)
