"""Monthly statements: what each rider paid, used and was charged in one calendar month (UTC).

Everything is derived from the ledger and the possessions; nothing is stored. Balances at the
month's edges are the accounts' cached posted balances (``swapd ledger check`` proves they equal
the transfers) less the posted transfers written since: so a statement aggregates the transfers
from the month's start onwards only, never the whole history (an index on ``transfers.created_at``
lets the database also read only those; without it PostgreSQL scans the table). Holds are not in
the balances: a statement shows what the rider owns, not what a pack out reserves for a while.

One query serves both outputs, one rider (``statement``) and all riders (``export_csv``): the
month's transfers are aggregated per (rider, reason, ledger) in the database and pivoted into one
row per rider, so the work is set-based and the export streams with bounded memory.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from swapd import csv_safe
from swapd.domain.errors import InvalidInput, NotFound
from swapd.domain.plans import month_start, next_month_start
from swapd.domain.quantities import Unit
from swapd.domain.revenue import weighted_value
from swapd.ledger.model import AccountCode, TransferCode, TransferFlags
from swapd.store import schema as t
from swapd.store.database import Database

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
EXPORT_BATCH_ROWS = 5_000  # rows fetched per round trip while streaming: bounds the memory used
# PostgreSQL: the per-(rider, reason) aggregation of a month holds a few million groups; with the
# default 4 MB it spills to disk many times over. Set for the export transaction only.
EXPORT_WORK_MEM = "256MB"


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in UTC: [start, end)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: object) -> Month:
        match = _MONTH.fullmatch(text) if isinstance(text, str) else None
        if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
            raise InvalidInput(f"month must be YYYY-MM (e.g. 2026-10), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def start(self) -> datetime:
        return month_start(datetime(self.year, self.month, 1, tzinfo=UTC))

    @property
    def end(self) -> datetime:
        return next_month_start(self.start)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Statement:
    """One rider's month. Units are the plan's (``unit``), money the plan's currency's minor units.

    Balances are posted balances: allowance (units the rider may use), prepaid (money paid and
    not yet earned), its value (what the allowance stands for, at the rider's average price),
    receivable (overage owed) and overdrawn (units used beyond the allowance, settled by top-ups).
    """

    month: str
    rider_id: str
    plan_id: str
    plan_kind: str
    unit: str
    currency: str
    opening_allowance_units: int
    opening_prepaid_minor: int
    opening_value_minor: int
    opening_receivable_minor: int
    opening_overdrawn_units: int
    topups_count: int
    topup_minor: int
    topup_units: int
    subscription_payments_count: int
    subscription_fee_minor: int
    subscription_units: int
    receivable_paid_minor: int
    # Allowance an offline station's hand-over needed beyond what the rider had, bought on
    # credit (owed as a receivable; services/swaps/offline.py), and the units it bought.
    offline_credit_minor: int
    offline_credit_units: int
    packs_taken_count: int  # possessions opened: packs handed over in the month
    packs_returned_count: int  # possessions closed: one metered usage per pack returned
    used_units: int  # metered usage of the packs returned
    charged_units: int  # of that, taken from the allowance
    overage_units: int  # beyond the allowance, billed at the overage price (subscriptions)
    overdrawn_units: int  # beyond the allowance, owed in units (settled by the next top-up)
    settled_units: int  # overdrawn units paid off out of new allowance
    usage_revenue_minor: int  # prepaid money earned by usage (and by settling overdrawn units)
    overage_minor: int
    usage_charge_minor: int  # usage_revenue_minor + overage_minor
    refunds_count: int
    refund_minor: int
    refund_units: int
    adjustment_units: int  # signed: goodwill added less corrections taken away
    adjustment_minor: int  # prepaid money earned when an adjustment took units away
    expired_units: int  # unused subscription allowance that expired at a cycle's end
    expired_minor: int
    closing_allowance_units: int
    closing_prepaid_minor: int
    closing_value_minor: int
    closing_receivable_minor: int
    closing_overdrawn_units: int


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Statement))


@dataclass(frozen=True, slots=True)
class _Flow:
    """A kind of posted transfer as a statement sums it."""

    name: str
    code: TransferCode
    money: bool  # on the plan's currency ledger, else on its unit ledger
    count: bool = False  # count the transfers instead of summing their amounts
    credited: bool | None = None  # adjustments only: did the allowance gain (True) or lose?


_C = TransferCode
_FLOWS = (
    _Flow("topups_count", _C.TOP_UP, money=True, count=True),
    _Flow("topup_minor", _C.TOP_UP, money=True),
    _Flow("topup_units", _C.TOP_UP, money=False),
    _Flow("subscription_payments_count", _C.SUBSCRIPTION_FEE, money=True, count=True),
    _Flow("subscription_fee_minor", _C.SUBSCRIPTION_FEE, money=True),
    _Flow("subscription_units", _C.SUBSCRIPTION_FEE, money=False),
    _Flow("receivable_paid_minor", _C.PAYMENT, money=True),
    _Flow("offline_credit_minor", _C.OFFLINE_CREDIT, money=True),
    _Flow("offline_credit_units", _C.OFFLINE_CREDIT, money=False),
    _Flow("charged_units", _C.USAGE, money=False),
    _Flow("overage_units", _C.OVERAGE, money=False),
    _Flow("overdrawn_units", _C.OVERDRAWN, money=False),
    _Flow("settled_units", _C.SETTLE, money=False),
    _Flow("usage_revenue_minor", _C.REVENUE, money=True),
    _Flow("overage_minor", _C.OVERAGE, money=True),
    _Flow("refunds_count", _C.REFUND, money=True, count=True),
    _Flow("refund_minor", _C.REFUND, money=True),
    _Flow("refund_units", _C.REFUND, money=False),
    _Flow("adjustment_added_units", _C.ADJUSTMENT, money=False, credited=True),
    _Flow("adjustment_removed_units", _C.ADJUSTMENT, money=False, credited=False),
    _Flow("adjustment_minor", _C.ADJUSTMENT, money=True),
    _Flow("expired_units", _C.EXPIRY, money=False),
    _Flow("expired_minor", _C.EXPIRY, money=True),
)

# How each flow moves the rider's four posted balances (services/money.py, payments.py, swaps.py
# write them so): +1 raises the balance, -1 lowers it. Overage units move operator accounts only.
_EFFECTS: dict[str, dict[str, int]] = {
    "allowance_units": {
        "topup_units": 1,
        "offline_credit_units": 1,
        "subscription_units": 1,
        "adjustment_added_units": 1,
        "charged_units": -1,
        "settled_units": -1,
        "expired_units": -1,
        "refund_units": -1,
        "adjustment_removed_units": -1,
    },
    "prepaid_minor": {
        "topup_minor": 1,
        "offline_credit_minor": 1,
        "subscription_fee_minor": 1,
        "usage_revenue_minor": -1,
        "expired_minor": -1,
        "refund_minor": -1,
        "adjustment_minor": -1,
    },
    "receivable_minor": {
        "overage_minor": 1,
        "offline_credit_minor": 1,
        "receivable_paid_minor": -1,
    },
    "overdrawn_units": {"overdrawn_units": 1, "settled_units": -1},
}
_AFTER = sorted({name for effect in _EFFECTS.values() for name in effect})


# (balance, [(month column, after-month column, sign)]): _EFFECTS keyed the way rows are read.
_NETS = tuple(
    (balance, tuple((f"m_{name}", f"a_{name}", sign) for name, sign in effect.items()))
    for balance, effect in _EFFECTS.items()
)


def _query(month: Month, rider_id: str | None) -> sa.Select[Any]:
    """One row per rider: current balances, the month's flows, the flows since its end."""
    start, end = month.start, month.end
    x = t.transfers.c
    a = t.accounts.c
    # The operator's issuing accounts, one per unit: naming the ledgers lets the unique index on
    # (ledger, code, owner) find them instead of a scan of every rider's accounts.
    issued = sa.select(a.id).where(
        a.ledger.in_([u.value for u in Unit]),
        a.code == AccountCode.ALLOWANCE_ISSUED.value,
        a.owner == "",
    )
    # Posted transfers only: holds and their voids never change a posted balance, and the post
    # of a hold carries the amount actually charged.
    posted = x.flags.in_([int(TransferFlags.NONE), int(TransferFlags.POST_PENDING)])
    credited = sa.case(
        (sa.and_(x.code == _C.ADJUSTMENT.value, x.debit_account_id.in_(issued.scalar_subquery())), 1),
        else_=0,
    ).label("credited")
    after = sa.case((x.created_at >= end, 1), else_=0).label("after")
    where = [x.created_at >= start, x.rider_id.is_not(None), posted]
    if rider_id is not None:
        where.append(x.rider_id == rider_id)
    # First the transfers collapse to a few groups per rider (cheap per row), then those are
    # pivoted into columns: far less work than evaluating every column on every transfer.
    groups = (
        sa.select(
            x.rider_id,
            x.code,
            x.ledger,
            credited,
            after,
            # bigint, not numeric: PostgreSQL's sum(bigint) answers numeric, slow to sum again.
            sa.cast(sa.func.sum(x.amount), sa.BigInteger).label("amount"),
            sa.func.count().label("n"),
        )
        .where(*where)
        .group_by(x.rider_id, x.code, x.ledger, credited, after)
        .subquery("groups")
    )
    g = groups.c
    rider, plan = t.riders.c, t.plans.c

    def flow_sum(flow: _Flow, period: int) -> sa.ColumnElement[Any]:
        # The plan's own ledgers only, as for the balances: units of another unit (a plan the
        # rider left) must not be added to these.
        ledger = plan.currency if flow.money else plan.unit
        conditions = [g.code == flow.code.value, g.ledger == ledger, g.after == period]
        if flow.credited is not None:
            conditions.append(g.credited == int(flow.credited))
        # No ELSE: a NULL skips the aggregate's step, so each group updates one or two sums only.
        value = g.n if flow.count else g.amount
        return sa.cast(sa.func.sum(sa.case((sa.and_(*conditions), value))), sa.BigInteger)

    pivot = sa.select(
        g.rider_id,
        *(flow_sum(f, 0).label(f"m_{f.name}") for f in _FLOWS),
        *(flow_sum(f, 1).label(f"a_{f.name}") for f in _FLOWS if f.name in _AFTER),
    ).select_from(groups.join(t.riders, rider.id == g.rider_id).join(t.plans, plan.id == rider.plan_id))
    flows = pivot.group_by(g.rider_id).subquery("flows")

    p = t.possessions.c
    returned = sa.and_(p.at_in >= start, p.at_in < end)
    taken = sa.and_(p.at_out >= start, p.at_out < end)
    possession_where: list[sa.ColumnElement[bool]] = [sa.or_(returned, taken)]
    if rider_id is not None:
        possession_where.append(p.rider_id == rider_id)
    packs = (
        sa.select(
            p.rider_id,
            sa.func.count(sa.case((taken, 1))).label("taken"),
            sa.func.count(sa.case((returned, 1))).label("returned"),
            sa.cast(sa.func.sum(sa.case((returned, p.usage_units))), sa.BigInteger).label("used"),
        )
        .where(*possession_where)
        .group_by(p.rider_id)
        .subquery("packs")
    )

    r = rider

    # (account, its ledger, +1 for a credit-normal balance or -1 for a debit-normal one)
    balances = {
        "allowance_units": (AccountCode.ALLOWANCE, plan.unit, 1),
        "prepaid_minor": (AccountCode.PREPAID, plan.currency, 1),
        "receivable_minor": (AccountCode.RECEIVABLE, plan.currency, -1),
        "overdrawn_units": (AccountCode.OVERDRAWN, plan.unit, -1),
    }
    aliases = {name: t.accounts.alias(name) for name in balances}
    now_columns = [
        (sign * (aliases[name].c.credits_posted - aliases[name].c.debits_posted)).label(f"now_{name}")
        for name, (_code, _ledger, sign) in balances.items()
    ]
    query = sa.select(
        r.id.label("rider_id"),
        r.plan_id,
        plan.kind.label("plan_kind"),
        plan.unit,
        plan.currency,
        *now_columns,
        *(c for c in flows.c if c.name != "rider_id"),
        packs.c.taken,
        packs.c.returned,
        packs.c.used,
    ).select_from(t.riders.join(t.plans, plan.id == r.plan_id))
    for name, (code, ledger, _sign) in balances.items():
        account = aliases[name].c
        query = query.outerjoin(
            aliases[name],
            sa.and_(account.owner == r.id, account.code == code.value, account.ledger == ledger),
        )
    query = query.outerjoin(flows, flows.c.rider_id == r.id).outerjoin(packs, packs.c.rider_id == r.id)
    # Riders who joined after the month have nothing to state for it.
    only = r.created_at < end if rider_id is None else r.id == rider_id
    query = query.where(only)
    return query.order_by(r.id)


_TEXT_COLUMNS = ("rider_id", "plan_id", "plan_kind", "unit", "currency")


def _statement(month: Month, row: sa.Row[Any]) -> Statement:
    m = row._mapping
    # Every number arrives as an int (the query casts its sums) or NULL for "none this month".
    values = {key: value or 0 for key, value in m.items() if key not in _TEXT_COLUMNS}
    closing: dict[str, int] = {}
    opening: dict[str, int] = {}
    for balance, columns in _NETS:
        # Now, less what was posted after the month, is the close; less the month, the open.
        closing[balance] = values[f"now_{balance}"]
        for _month_column, after_column, sign in columns:
            closing[balance] -= sign * values[after_column]
        opening[balance] = closing[balance]
        for month_column, _after_column, sign in columns:
            opening[balance] -= sign * values[month_column]
    flow = {f.name: values[f"m_{f.name}"] for f in _FLOWS}
    return Statement(
        month=str(month),
        rider_id=m["rider_id"],
        plan_id=m["plan_id"],
        plan_kind=m["plan_kind"],
        unit=m["unit"],
        currency=m["currency"],
        opening_allowance_units=opening["allowance_units"],
        opening_prepaid_minor=opening["prepaid_minor"],
        opening_value_minor=_value(opening),
        opening_receivable_minor=opening["receivable_minor"],
        opening_overdrawn_units=opening["overdrawn_units"],
        topups_count=flow["topups_count"],
        topup_minor=flow["topup_minor"],
        topup_units=flow["topup_units"],
        subscription_payments_count=flow["subscription_payments_count"],
        subscription_fee_minor=flow["subscription_fee_minor"],
        subscription_units=flow["subscription_units"],
        receivable_paid_minor=flow["receivable_paid_minor"],
        offline_credit_minor=flow["offline_credit_minor"],
        offline_credit_units=flow["offline_credit_units"],
        packs_taken_count=values["taken"],
        packs_returned_count=values["returned"],
        used_units=values["used"],
        charged_units=flow["charged_units"],
        overage_units=flow["overage_units"],
        overdrawn_units=flow["overdrawn_units"],
        settled_units=flow["settled_units"],
        usage_revenue_minor=flow["usage_revenue_minor"],
        overage_minor=flow["overage_minor"],
        usage_charge_minor=flow["usage_revenue_minor"] + flow["overage_minor"],
        refunds_count=flow["refunds_count"],
        refund_minor=flow["refund_minor"],
        refund_units=flow["refund_units"],
        adjustment_units=flow["adjustment_added_units"] - flow["adjustment_removed_units"],
        adjustment_minor=flow["adjustment_minor"],
        expired_units=flow["expired_units"],
        expired_minor=flow["expired_minor"],
        closing_allowance_units=closing["allowance_units"],
        closing_prepaid_minor=closing["prepaid_minor"],
        closing_value_minor=_value(closing),
        closing_receivable_minor=closing["receivable_minor"],
        closing_overdrawn_units=closing["overdrawn_units"],
    )


def _value(balances: dict[str, int]) -> int:
    """What the whole allowance stands for: the same rule as revenue and the rider view."""
    allowance = balances["allowance_units"]
    return weighted_value(balances["prepaid_minor"], allowance, allowance)


def statement(db: Database, rider_id: str, month: Month | str) -> Statement:
    """One rider's statement for ``month`` (``Month`` or "YYYY-MM")."""
    month = month if isinstance(month, Month) else Month.parse(month)

    def work(connection: sa.Connection) -> Statement:
        exists = connection.execute(sa.select(t.riders.c.id).where(t.riders.c.id == rider_id)).first()
        if exists is None:
            raise NotFound(f"unknown rider {rider_id}")
        row = connection.execute(_query(month, rider_id)).one()
        return _statement(month, row)

    with db.engine.connect() as connection, connection.begin():
        return work(connection)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    month: str
    path: Path
    riders: int
    totals: dict[str, int]  # every numeric column summed over the riders


def riders_in(db: Database, month: Month) -> int:
    """How many rows an export of ``month`` will write (for a progress bar)."""
    query = sa.select(sa.func.count()).select_from(t.riders).where(t.riders.c.created_at < month.end)
    with db.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def iter_statements(db: Database, month: Month) -> Iterator[Statement]:
    """Every rider's statement for ``month``, in rider id order, streamed from one query (one
    consistent snapshot) in batches of ``EXPORT_BATCH_ROWS``."""
    with db.engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SET LOCAL work_mem = '{EXPORT_WORK_MEM}'")
        result = connection.execution_options(yield_per=EXPORT_BATCH_ROWS).execute(_query(month, None))
        for row in result:
            yield _statement(month, row)


def export_csv(
    db: Database,
    month: Month | str,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write every rider's statement for ``month`` to ``path`` as CSV, one row per rider.

    The file appears complete or not at all: rows go to a temporary file beside it that is renamed
    over ``path`` at the end. ``progress`` is called with the number of rows written so far.
    """
    month = month if isinstance(month, Month) else Month.parse(month)
    numeric = [i for i, name in enumerate(COLUMNS) if name.endswith(("_units", "_minor", "_count"))]
    sums = [0] * len(COLUMNS)
    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    try:
        with partial.open("w", newline="", encoding="utf-8") as file:
            writer = csv_safe.writer(file)
            writer.writerow(COLUMNS)
            for item in iter_statements(db, month):
                values = [getattr(item, name) for name in COLUMNS]
                writer.writerow(values)
                for index in numeric:
                    sums[index] += values[index]
                rows += 1
                if progress is not None and rows % EXPORT_BATCH_ROWS == 0:
                    progress(rows)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    if progress is not None:
        progress(rows)
    return ExportSummary(str(month), path, rows, {COLUMNS[i]: sums[i] for i in numeric})
