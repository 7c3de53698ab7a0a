"""Read-only views: balances, transfers, where packs are, what a station holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.domain.packs import Pack
from swapd.domain.stations import Slot, Station
from swapd.ledger.model import Account, AccountCode, AccountFlags, Transfer
from swapd.services.money import weighted_value
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.ledger_book import transfer_of


@dataclass(frozen=True, slots=True)
class RiderBalance:
    rider_id: str
    plan_id: str
    status: str
    unit: str
    currency: str
    posted_units: int  # allowance after all posted transfers
    held_units: int  # reserved by packs out and open offers
    available_units: int  # posted less held: what decides the next swap
    overdrawn_units: int
    prepaid_minor: int  # money paid and not yet earned
    available_value_minor: int  # prepaid money the available allowance stands for
    receivable_minor: int
    packs_held: tuple[str, ...]


def _balance(tx: Tx, rider_id: str) -> RiderBalance:
    rider = tx.repo.rider(rider_id)
    if rider is None:
        raise NotFound(f"unknown rider {rider_id}")
    plan = tx.repo.plan(rider.plan_id)
    assert plan is not None
    unit, currency = plan.unit.value, plan.currency

    def account(ledger: str, code: AccountCode) -> Account:
        # A rider who never paid has no accounts yet: read them as zero, create nothing.
        found = tx.book.existing(ledger, code, rider_id)
        return found or Account(0, ledger, code, rider_id, AccountFlags.NONE)

    allowance = account(unit, AccountCode.ALLOWANCE)
    prepaid = account(currency, AccountCode.PREPAID)
    available = allowance.available
    return RiderBalance(
        rider_id=rider_id,
        plan_id=plan.id,
        status=rider.status.value,
        unit=unit,
        currency=currency,
        posted_units=allowance.credit_balance,
        held_units=allowance.held,
        available_units=available,
        overdrawn_units=account(unit, AccountCode.OVERDRAWN).debit_balance,
        prepaid_minor=prepaid.credit_balance,
        available_value_minor=weighted_value(
            prepaid.credit_balance, allowance.credit_balance, available
        ),
        receivable_minor=account(currency, AccountCode.RECEIVABLE).debit_balance,
        packs_held=tuple(p.serial for p in tx.repo.packs_of_rider(rider_id)),
    )


def rider_balance(db: Database, rider_id: str) -> RiderBalance:
    return db.read(lambda tx: _balance(tx, rider_id))


def transfers_of(db: Database, rider_id: str | None = None, *, limit: int = 10_000) -> list[Transfer]:
    """Transfers in the order they were written; of one rider, or all."""

    def work(tx: Tx) -> list[Transfer]:
        query = sa.select(t.transfers).order_by(t.transfers.c.id).limit(limit)
        if rider_id is not None:
            query = query.where(t.transfers.c.rider_id == rider_id)
        return [transfer_of(row) for row in tx.repo.execute(query)]

    return db.read(work)


@dataclass(frozen=True, slots=True)
class SwapRecord:
    id: int
    station_id: str
    request_id: str | None
    rider_id: str | None
    state: str
    reason: str | None
    created_at: datetime


def recent_swaps(db: Database, rider_id: str | None = None, *, limit: int = 20) -> list[SwapRecord]:
    def work(tx: Tx) -> list[SwapRecord]:
        query = sa.select(t.swaps).order_by(t.swaps.c.id.desc()).limit(limit)
        if rider_id is not None:
            query = query.where(t.swaps.c.rider_id == rider_id)
        return [
            SwapRecord(r.id, r.station_id, r.request_id, r.rider_id, r.state, r.reason, r.created_at)
            for r in tx.repo.execute(query)
        ]

    return db.read(work)


@dataclass(frozen=True, slots=True)
class StationView:
    station: Station
    slots: tuple[Slot, ...]
    packs: dict[str, Pack]


def station_view(db: Database, station_id: str) -> StationView:
    def work(tx: Tx) -> StationView:
        station = tx.repo.station(station_id)
        if station is None:
            raise NotFound(f"unknown station {station_id}")
        packs = {p.serial: p for p in tx.repo.packs_at(station_id)}
        return StationView(station, tuple(tx.repo.slots(station_id)), packs)

    return db.read(work)


def all_packs(db: Database) -> list[Pack]:
    return db.read(lambda tx: tx.repo.all_packs())


def alerts(db: Database, *, limit: int = 100) -> list[dict[str, object]]:
    def work(tx: Tx) -> list[dict[str, object]]:
        rows = tx.repo.execute(sa.select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]

    return db.read(work)
