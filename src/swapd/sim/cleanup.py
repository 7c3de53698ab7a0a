"""What a simulation against a live server leaves behind: nothing.

A run's objects all carry its prefix (``SIM-xxxxxx-``): stations (with their slots and
passwords), riders (with their cards), plans, packs and pack model. ``remove_run`` deletes them
with every row that refers to them: swaps, offers, possessions, station events, commands and
alerts, and the riders' ledger accounts with every transfer touching them.

The ledger is the careful part. A transfer of a simulated rider moves units or money between that
rider's account and an operator account (``cash``, ``revenue``, ``allowance_issued``, ...). Its
rows are removed whole, and each operator account it touched gives back exactly what it added to
that account's cached balances (posted, or pending while the hold is open). ``ledger check``
recomputes every balance from the transfers, so after the removal it finds the same balances it
would have found had the run never happened: every cached column equals its recomputed value,
every ledger still sums to zero. Before deleting anything the removal proves the set of transfers
is closed (each touches only this run's riders or the operator, and no transfer outside the set
resolves one inside it, or the other way round); otherwise it removes nothing and says why.

The real operator's books are thus left as they were: the simulator's money never shows in its
cash or revenue. One audit log entry records the removal (counts and the amounts given back).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from swapd.domain.riders import RiderStatus
from swapd.ledger.model import Delta, TransferFlags
from swapd.services import audit
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.ledger_book import Book

SIM_PREFIX = "SIM-"  # every id the simulator makes starts with it (then the run's own part)
ACTOR = "swapd-sim"
DISCONNECT_TIMEOUT_S = 10.0
DISCONNECT_POLL_S = 0.1
OPERATOR = ""


class CleanupError(RuntimeError):
    """The run's rows cannot be removed as they are; nothing was removed."""


class RealData(Exception):
    """A live server's database holds riders that are not the simulator's."""

    def __init__(self, riders: int) -> None:
        noun = "rider" if riders == 1 else "riders"
        super().__init__(
            f"the database holds {riders:,} real {noun} (not the simulator's); a simulation "
            "against a live server runs only on a database without them, unless given "
            "--allow-real-data"
        )
        self.riders = riders


@dataclass(frozen=True, slots=True)
class Retired:
    """What ``retire_run`` changed, when the run's rows could not be removed."""

    stations_disabled: int
    riders_blocked: int

    def line(self) -> str:
        return (
            f"{self.stations_disabled} stations disabled, {self.riders_blocked} riders blocked, "
            "its plans unlisted (they always were)"
        )


@dataclass(frozen=True, slots=True)
class Removed:
    """How many rows of each kind a run's removal deleted."""

    stations: int
    riders: int
    plans: int
    packs: int
    pack_models: int
    swaps: int
    transfers: int
    accounts: int

    def line(self) -> str:
        return (
            f"{self.stations} stations, {self.riders} riders, {self.plans} plans, "
            f"{self.packs} packs, {self.pack_models} pack models, {self.swaps} swaps, "
            f"{self.transfers} transfers, {self.accounts} ledger accounts"
        )


def real_riders(db: Database) -> int:
    """Riders that are not any simulation's."""
    query = (
        sa.select(sa.func.count())
        .select_from(t.riders)
        .where(sa.not_(t.riders.c.id.startswith(SIM_PREFIX, autoescape=True)))
    )
    return db.read(lambda tx: int(tx.repo.execute(query).scalar_one()))


def wait_disconnected(db: Database, prefix: str, timeout_s: float = DISCONNECT_TIMEOUT_S) -> bool:
    """Wait until the server has let go of every station of the run (its sockets closed), so that
    no server transaction is still at work on them; False if some are still connected."""
    query = (
        sa.select(sa.func.count())
        .select_from(t.stations)
        .where(_ours(t.stations.c.id, prefix), t.stations.c.connected_at.is_not(None))
    )
    deadline = time.monotonic() + timeout_s
    while db.read(lambda tx: int(tx.repo.execute(query).scalar_one())) > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(DISCONNECT_POLL_S)
    return True


def remove_run(db: Database, prefix: str) -> Removed:
    """Delete every row of the run ``prefix`` in one transaction (see the module's docstring)."""
    if not prefix.startswith(SIM_PREFIX) or len(prefix) <= len(SIM_PREFIX):
        raise ValueError(f"not a simulation prefix: {prefix!r}")
    return db.write(lambda tx: _remove(tx, prefix))


def retire_run(db: Database, prefix: str) -> Retired:
    """The fallback when the run cannot be removed: its stations disabled and its riders blocked,
    so that nothing of it takes part in the network any more. Its plans were never listed."""

    def work(tx: Tx) -> Retired:
        stations = tx.repo.execute(
            sa.update(t.stations).where(_ours(t.stations.c.id, prefix)).values(enabled=False)
        ).rowcount
        riders = tx.repo.execute(
            sa.update(t.riders)
            .where(_ours(t.riders.c.id, prefix))
            .values(status=RiderStatus.BLOCKED.value)
        ).rowcount
        retired = Retired(int(stations), int(riders))
        audit.record(
            tx, ACTOR, "sim.retire", prefix, "the run could not be removed", {**asdict(retired)}
        )
        return retired

    return db.write(work)


def _ours(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    return column.startswith(f"{prefix}-", autoescape=True)


def _delete(tx: Tx, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(tx.repo.execute(sa.delete(table).where(where)).rowcount)


def _remove(tx: Tx, prefix: str) -> Removed:
    # Subqueries rather than lists of ids: a run may have 100,000 riders, more than a statement
    # takes parameters. Each is evaluated by the statement that uses it, before its rows go.
    r, st = t.riders.c, t.stations.c
    riders = sa.select(r.id).where(_ours(r.id, prefix)).scalar_subquery()
    stations = sa.select(st.id).where(_ours(st.id, prefix)).scalar_subquery()
    if tx.repo.locks_rows:
        # Services lock riders first: with the run's riders locked, nothing else writes their
        # accounts meanwhile (SQLite: this write transaction holds the whole database).
        tx.repo.execute(sa.select(r.id).where(_ours(r.id, prefix)).with_for_update()).all()
    transfers, accounts, given_back = _remove_ledger(tx, prefix)

    swap_ids = (
        sa.select(t.swaps.c.id)
        .where(sa.or_(t.swaps.c.station_id.in_(stations), t.swaps.c.rider_id.in_(riders)))
        .scalar_subquery()
    )
    offer, held = t.swap_offers.c, t.possessions.c
    _delete(tx, t.swap_offers, sa.or_(offer.swap_id.in_(swap_ids), _ours(offer.pack_serial, prefix)))
    _delete(tx, t.possessions, sa.or_(held.rider_id.in_(riders), _ours(held.pack_serial, prefix)))
    _delete(tx, t.swap_choices, t.swap_choices.c.swap_id.in_(swap_ids))
    swaps = _delete(tx, t.swaps, t.swaps.c.id.in_(swap_ids))
    _delete(tx, t.station_commands, t.station_commands.c.station_id.in_(stations))
    _delete(tx, t.station_events, _ours(t.station_events.c.station_id, prefix))
    _delete(tx, t.station_event_keys, _ours(t.station_event_keys.c.station_id, prefix))
    for table in (t.offline_events, t.local_list_entries, t.local_lists):
        _delete(tx, table, _ours(table.c.station_id, prefix))
    alert = t.alerts.c
    _delete(
        tx,
        t.alerts,
        sa.or_(
            _ours(alert.station_id, prefix),
            _ours(alert.rider_id, prefix),
            _ours(alert.pack_serial, prefix),
        ),
    )
    _delete(tx, t.payments, t.payments.c.rider_id.in_(riders))
    _delete(tx, t.subscriptions, t.subscriptions.c.rider_id.in_(riders))
    token = t.id_tokens.c
    _delete(tx, t.id_tokens, sa.or_(token.rider_id.in_(riders), _ours(token.value, prefix)))
    packs = _delete(tx, t.packs, _ours(t.packs.c.serial, prefix))
    _delete(tx, t.slots, t.slots.c.station_id.in_(stations))
    removed_stations = _delete(tx, t.stations, _ours(st.id, prefix))
    removed_riders = _delete(tx, t.riders, _ours(r.id, prefix))
    plans = _delete(tx, t.plans, _ours(t.plans.c.id, prefix))
    models = _delete(tx, t.pack_models, _ours(t.pack_models.c.code, prefix))
    removed = Removed(removed_stations, removed_riders, plans, packs, models, swaps, transfers, accounts)
    audit.record(
        tx,
        ACTOR,
        "sim.remove",
        prefix,
        "a simulation against a live server removes what it created",
        {"removed": asdict(removed), "given_back_by_operator_account": given_back},
    )
    return removed


def _remove_ledger(tx: Tx, prefix: str) -> tuple[int, int, dict[str, dict[str, int]]]:
    """Delete the run's riders' accounts and every transfer touching them; take what those
    transfers added off the operator accounts' cached balances. Returns (transfers, accounts,
    what each operator account gave back)."""
    a, x = t.accounts.c, t.transfers.c
    ours = sa.select(a.id).where(_ours(a.owner, prefix)).scalar_subquery()
    in_run = sa.or_(x.debit_account_id.in_(ours), x.credit_account_id.in_(ours))
    rows = tx.repo.execute(
        sa.select(x.id, x.debit_account_id, x.credit_account_id, x.amount, x.flags, x.pending_id)
        .where(in_run)
        .order_by(x.id)
    ).all()
    ids = {row.id for row in rows}
    touched = sa.union(
        sa.select(x.debit_account_id).where(in_run), sa.select(x.credit_account_id).where(in_run)
    )
    names = {
        row.id: (row.owner, f"{row.ledger} {row.code} {row.owner or 'operator'}")
        for row in tx.repo.execute(
            sa.select(a.id, a.owner, a.ledger, a.code).where(
                a.id.in_(touched), sa.not_(_ours(a.owner, prefix))
            )
        )
    }
    strangers = sorted(name for owner, name in names.values() if owner != OPERATOR)
    if strangers:
        raise CleanupError(
            f"run {prefix}: its transfers also touch {', '.join(strangers[:5])}; removed nothing"
        )
    outside = [row.id for row in rows if row.pending_id is not None and row.pending_id not in ids]
    # Transfers outside the run resolving one of its pending transfers (an alias: the inner
    # query must not be correlated with the outer one).
    run = t.transfers.alias("run")
    run_ids = sa.select(run.c.id).where(
        sa.or_(run.c.debit_account_id.in_(ours), run.c.credit_account_id.in_(ours))
    )
    resolvers = list(
        tx.repo.execute(sa.select(x.id).where(x.pending_id.in_(run_ids), sa.not_(in_run))).scalars()
    )
    if outside or resolvers:
        raise CleanupError(
            f"run {prefix}: transfers {sorted(outside + resolvers)[:5]} link its transfers with "
            "others; removed nothing"
        )
    resolved = {row.pending_id for row in rows if row.pending_id is not None}
    deltas: dict[int, Delta] = defaultdict(Delta)
    for row in rows:
        flags = TransferFlags(row.flags)
        amount = int(row.amount)
        if flags in (TransferFlags.NONE, TransferFlags.POST_PENDING):
            debit, credit = Delta(debits_posted=-amount), Delta(credits_posted=-amount)
        elif flags is TransferFlags.PENDING and row.id not in resolved:
            debit, credit = Delta(debits_pending=-amount), Delta(credits_pending=-amount)
        else:  # a pending transfer since resolved, or a void: nothing left on the balances
            continue
        if row.debit_account_id in names:
            deltas[row.debit_account_id] += debit
        if row.credit_account_id in names:
            deltas[row.credit_account_id] += credit
    Book.write_deltas(tx.repo.conn, deltas)
    # Resolutions first: a transfer's pending_id refers to the pending transfer it resolves.
    removed = _delete(tx, t.transfers, in_run)
    for offset in range(0, len(ids), 500):  # the run's identities go with its transfers
        chunk = sorted(ids)[offset : offset + 500]
        _delete(tx, t.transfer_keys, t.transfer_keys.c.id.in_(chunk))
    accounts = _delete(tx, t.accounts, _ours(a.owner, prefix))
    given_back = {
        names[account_id][1]: {column: -value for column, value in asdict(delta).items() if value}
        for account_id, delta in sorted(deltas.items())
    }
    return removed, accounts, given_back
