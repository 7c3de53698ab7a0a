"""The ledger kept in SQL tables, inside the caller's transaction: the storage side of swapd.ledger,
whose pure model (swapd.ledger.model) decides what a transfer may do.

Balances are cached on the account rows and must equal what the transfers imply
(``swapd.store.ledger_check`` recomputes them). Accounts with a balance limit (the riders') are
locked and updated at once, so a limit is checked against the committed truth. Accounts without a
limit (the operator's, touched by every swap) are updated once per transaction, just before commit,
in id order: that keeps their row locks short on PostgreSQL and makes lock order the same in every
transaction.

Every column keeps inside its bound (``model.Account.check_limits``, ``overflows_*``). For an
operator's account the check sees what this book read plus its own changes; what concurrent
transactions (PostgreSQL) or the other calls of a SQLite call group add before the deferred update
is not seen, and there the schema's CHECK constraint refuses the update instead: the transaction
fails and nothing of it is written. That needs an operator's column within one group's transfers
of 10^18, which no network reaches in centuries (``quantities.MAX_ACCOUNT_COLUMN_AMOUNT``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.ledger.model import (
    ACCOUNT_FLAGS,
    OPERATOR,
    Account,
    AccountCode,
    AccountFlags,
    Delta,
    LedgerError,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferRequest,
    answer_repeat,
    check_pending,
    deltas_for,
    validate_request,
)
from swapd.store import ledger_pg
from swapd.store.prepared import Prepared, PreparedResult
from swapd.store.schema import accounts, transfer_keys, transfers

# Every statement the book runs is built once, with bind parameters, rather than per call: building
# a Core statement and computing its cache key cost more CPU than the database's own work for a
# transfer (profiled: about 40 % of a transfer's time on SQLite, where the database is in-process).
_c, _x = accounts.c, transfers.c
# The two accounts of a transfer by id, in one statement. On PostgreSQL those with a balance
# limit (flags set: a rider's) are locked and returned from the locking CTE, the others (the
# operator's shared ones) read without a lock, as ``Book.load`` does by name. An account's flags
# are set when it is made and never change, so each id is in exactly one of the two halves.
_BY_IDS = _c.id.in_([sa.bindparam("id_0"), sa.bindparam("id_1")])
_ACCOUNTS_BY_IDS = Prepared(sa.select(accounts).where(_BY_IDS))
_LOCKED_BY_IDS = sa.select(accounts).where(_BY_IDS, _c.flags != 0).with_for_update().cte("locked_by_id")
_ACCOUNTS_BY_IDS_SPLIT = Prepared(
    sa.union_all(sa.select(_LOCKED_BY_IDS), sa.select(accounts).where(_BY_IDS, _c.flags == 0))
)
_ACCOUNT_BY_NAME_Q = sa.select(accounts).where(
    _c.ledger == sa.bindparam("ledger_name"),
    _c.code == sa.bindparam("account_code"),
    _c.owner == sa.bindparam("account_owner"),
)
_ACCOUNT_BY_NAME = Prepared(_ACCOUNT_BY_NAME_Q)
_ACCOUNT_BY_NAME_LOCKED = Prepared(_ACCOUNT_BY_NAME_Q.with_for_update())
# Up to six accounts in one statement: a swap needs its rider's allowance, overdrawn, prepaid and
# receivable accounts and the operator's consumed and revenue accounts; each (ledger, code, owner)
# term is a unique-index lookup.
ACCOUNTS_AT_ONCE = 6


def _named(prefix: str = "") -> sa.ColumnElement[bool]:
    """Any of ACCOUNTS_AT_ONCE accounts, each named by (ledger, code, owner) parameters."""
    return sa.or_(
        *(
            sa.and_(
                _c.ledger == sa.bindparam(f"{prefix}ledger_{i}"),
                _c.code == sa.bindparam(f"{prefix}code_{i}"),
                _c.owner == sa.bindparam(f"{prefix}owner_{i}"),
            )
            for i in range(ACCOUNTS_AT_ONCE)
        )
    )


_ACCOUNTS_Q = sa.select(accounts).where(_named())
_ACCOUNTS = Prepared(_ACCOUNTS_Q)
# PostgreSQL: the accounts to lock (a rider's) and the operator's shared ones, which must not be
# locked before the deferred update at the end, in one statement. The locked rows are returned
# from the locking CTE itself: under READ COMMITTED those are the versions re-read after any
# lock wait, where a plain read beside them would see the statement's older snapshot.
_LOCKED_CTE = sa.select(accounts).where(_named("l_")).with_for_update().cte("locked")
_ACCOUNTS_SPLIT = Prepared(sa.union_all(sa.select(_LOCKED_CTE), sa.select(accounts).where(_named("u_"))))
_NO_ACCOUNT = ("", "", "")  # pads a name list: no account has an empty ledger
# A transfer is found through transfer_keys, the ledger's global index (one row per transfer,
# archived or not): its (id, created_at) there name the row, and on PostgreSQL the monthly
# partition. They are scalar subqueries (InitPlans), which PostgreSQL evaluates before scanning,
# so it prunes every other month at run time whatever join order it would have picked: one
# unique-index probe and one partition's.
_k = transfer_keys.c


def _keyed(where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The transfer whose transfer_keys row matches ``where``."""
    return sa.select(transfers).where(
        _x.id == sa.select(_k.id).where(where).scalar_subquery(),
        _x.created_at == sa.select(_k.created_at).where(where).scalar_subquery(),
    )


_TRANSFER_BY_KEY = Prepared(_keyed(_k.key == sa.bindparam("transfer_key")))
# A transfer by id comes with the flags of the transfer that resolved it (NULL: none yet), found
# the same way: a hold is read by the service and then posted or voided, which must know both.
_resolution = transfers.alias("resolution")
_resolves = _k.resolves_id == sa.bindparam("transfer_id")
_RESOLUTION_OF_ID = (
    sa.select(_resolution.c.flags)
    .where(
        _resolution.c.id == sa.select(_k.id).where(_resolves).scalar_subquery(),
        _resolution.c.created_at == sa.select(_k.created_at).where(_resolves).scalar_subquery(),
    )
    .scalar_subquery()
)
_TRANSFER_BY_ID = Prepared(
    _keyed(_k.id == sa.bindparam("transfer_id")).add_columns(_RESOLUTION_OF_ID.label("resolution_flags"))
)
_RESOLUTION_FLAGS = Prepared(
    _keyed(_k.resolves_id == sa.bindparam("resolved_id")).with_only_columns(_x.flags)
)
_RESOLUTION_ID = Prepared(sa.select(_k.id).where(_k.resolves_id == sa.bindparam("resolved_id")))
_INSERT_TRANSFER = Prepared(sa.insert(transfers))
# A transfer's key is claimed first, unless taken (then no row comes back): the key's uniqueness
# answers "was this applied already?" in the INSERT itself, without a SELECT before it; the id it
# returns is the transfer's. A second post or void of one pending transfer fails on resolves_id.
_CLAIM_KEY: dict[str, Prepared] = {}


def _claim_key(dialect_name: str) -> Prepared:
    """The INSERT ... ON CONFLICT of the connection's dialect, built on first use: importing
    every dialect up front costs each ``swapd`` command that never writes a transfer some 50 ms."""
    prepared = _CLAIM_KEY.get(dialect_name)
    if prepared is None:
        insert = _dialect_insert(dialect_name)
        statement = insert(transfer_keys).on_conflict_do_nothing(index_elements=[_k.key])
        prepared = _CLAIM_KEY[dialect_name] = Prepared(statement.returning(_k.id))
    return prepared


def _name_parameters(names: Sequence[tuple[str, AccountCode, str]], prefix: str = "") -> dict[str, str]:
    """The parameters of ``_named(prefix)`` for up to ACCOUNTS_AT_ONCE names, padded."""
    given = [(ledger, code.value, owner) for ledger, code, owner in names]
    padded = [*given, *[_NO_ACCOUNT] * (ACCOUNTS_AT_ONCE - len(given))]
    parameters: dict[str, str] = {}
    for i, (ledger, code, owner) in enumerate(padded):
        parameters[f"{prefix}ledger_{i}"] = ledger
        parameters[f"{prefix}code_{i}"] = code
        parameters[f"{prefix}owner_{i}"] = owner
    return parameters


def _dialect_insert(dialect_name: str) -> Any:
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


_ADD_TO_ACCOUNT = Prepared(
    sa.update(accounts)
    .where(_c.id == sa.bindparam("account_id"))
    .values(ledger_pg.balance_additions("add_"))
)


def _account(row: Any) -> Account:
    """An account from a row of ``accounts`` (``sqlalchemy.Row`` or ``PreparedRow``)."""
    return Account(
        id=row.id,
        ledger=row.ledger,
        code=AccountCode(row.code),
        owner=row.owner,
        flags=AccountFlags(row.flags),
        debits_pending=row.debits_pending,
        debits_posted=row.debits_posted,
        credits_pending=row.credits_pending,
        credits_posted=row.credits_posted,
    )


def transfer_of(row: Any) -> Transfer:
    """A transfer from a row of ``transfers`` (``sqlalchemy.Row`` or ``PreparedRow``)."""
    return Transfer(
        id=row.id,
        key=row.key,
        ledger=row.ledger,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        code=TransferCode(row.code),
        flags=TransferFlags(row.flags),
        pending_id=row.pending_id,
        rider_id=row.rider_id,
        actor=row.actor,
        memo=row.memo,
    )


class Book:
    """Ledger operations bound to one database transaction."""

    def __init__(self, connection: sa.Connection, now: datetime) -> None:
        self._conn = connection
        self._now = now
        self._deferred: dict[int, Delta] = defaultdict(Delta)
        self._accounts: dict[int, Account] = {}
        self._ids: dict[tuple[str, AccountCode, str], int] = {}  # (ledger, code, owner) -> id
        self._transfers: dict[int, Transfer] = {}
        # Pending transfer id -> the flags of the transfer that resolved it (None: unresolved),
        # as read or written in this transaction. A concurrent resolution still fails on
        # transfer_keys.resolves_id's uniqueness, and the call is retried.
        self._resolutions: dict[int, int | None] = {}
        self._lockable = connection.dialect.name == "postgresql"

    def _run(self, statement: Prepared, parameters: dict[str, Any]) -> PreparedResult:
        return statement.run(self._conn, parameters)

    # -- accounts ---------------------------------------------------------------------------

    def account(self, ledger: str, code: AccountCode, owner: str = OPERATOR) -> Account:
        """The account for (ledger, code, owner), created on first use. Rider accounts are locked."""
        known = self._ids.get((ledger, code, owner))
        if known is not None:
            return self.get(known)
        lock = ACCOUNT_FLAGS.get(code) is not None  # accounts with a balance limit
        row = self._select_account(ledger, code, owner, lock=lock)
        if row is None:
            self._insert_account(ledger, code, owner)
            row = self._select_account(ledger, code, owner, lock=lock)
            assert row is not None
        account = _account(row)
        self._keep(account)
        return account

    def load(self, names: Sequence[tuple[str, AccountCode, str]]) -> None:
        """Read up to six accounts, each named by (ledger, code, owner), into this book in one
        statement, so that ``account`` finds them without a statement each. Accounts that do not
        exist yet are left for ``account`` to create.

        On PostgreSQL the accounts with a balance limit are locked, as ``account`` would lock
        them, and the operator's shared accounts are read in the same statement without a lock:
        locked, they would be held from the first read to COMMIT by every swap, where now only
        the deferred balance update at the end (``flush``) holds them."""
        if not 0 < len(names) <= ACCOUNTS_AT_ONCE:
            raise ValueError(f"load takes 1..{ACCOUNTS_AT_ONCE} accounts, got {len(names)}")
        wanted = [name for name in names if name not in self._ids]
        if not wanted:
            return
        if self._lockable:
            shared = [n for n in wanted if n[2] == OPERATOR and ACCOUNT_FLAGS.get(n[1]) is None]
            own = [n for n in wanted if n not in shared]
            if not any(ACCOUNT_FLAGS.get(code) is not None for _, code, _ in own):
                shared, own = wanted, []  # nothing with a limit: nothing to lock
            parameters = {**_name_parameters(own, "l_"), **_name_parameters(shared, "u_")}
            rows = self._run(_ACCOUNTS_SPLIT, parameters)
        else:
            rows = self._run(_ACCOUNTS, _name_parameters(wanted))
        for row in rows:
            if row.id not in self._accounts:
                self._keep(_account(row))

    def _keep(self, account: Account) -> None:
        self._accounts[account.id] = account
        self._ids[(account.ledger, account.code, account.owner)] = account.id

    def existing(self, ledger: str, code: AccountCode, owner: str = OPERATOR) -> Account | None:
        """The account if it exists, without creating or locking it (for reads)."""
        row = self._select_account(ledger, code, owner, lock=False)
        return None if row is None else _account(row)

    def get(self, account_id: int) -> Account:
        cached = self._accounts.get(account_id)
        if cached is None:
            self._load_ids(account_id, account_id)
            cached = self._accounts.get(account_id)
            if cached is None:
                raise LedgerError("account_not_found", f"no account {account_id}")
        delta = self._deferred.get(account_id)
        return cached.with_delta(delta) if delta else cached

    def _load_ids(self, first_id: int, second_id: int) -> None:
        """Read the two accounts (those not read yet) in one statement, locking those with a
        balance limit on PostgreSQL; an id with no account is left out."""
        wanted = [i for i in (first_id, second_id) if i not in self._accounts]
        if not wanted:
            return
        ids = {"id_0": wanted[0], "id_1": wanted[-1]}
        statement = _ACCOUNTS_BY_IDS_SPLIT if self._lockable else _ACCOUNTS_BY_IDS
        for row in self._run(statement, ids):
            if row.id not in self._accounts:
                self._keep(_account(row))

    def _select_account(self, ledger: str, code: AccountCode, owner: str, *, lock: bool) -> Any:
        name = {"ledger_name": ledger, "account_code": code.value, "account_owner": owner}
        locked = lock and self._lockable
        return self._run(_ACCOUNT_BY_NAME_LOCKED if locked else _ACCOUNT_BY_NAME, name).first()

    def _insert_account(self, ledger: str, code: AccountCode, owner: str) -> None:
        values = {
            "ledger": ledger,
            "code": code.value,
            "owner": owner,
            "flags": int(ACCOUNT_FLAGS.get(code, AccountFlags.NONE)),
            "debits_pending": 0,
            "debits_posted": 0,
            "credits_pending": 0,
            "credits_posted": 0,
        }
        insert = _dialect_insert(self._conn.dialect.name)
        # Two transactions may create the same operator account at once: one wins, both go on.
        self._conn.execute(insert(accounts).values(**values).on_conflict_do_nothing())

    # -- transfers --------------------------------------------------------------------------

    def find(self, key: str) -> Transfer | None:
        row = self._run(_TRANSFER_BY_KEY, {"transfer_key": key}).first()
        return None if row is None else transfer_of(row)

    def transfer(self, request: TransferRequest) -> Transfer:
        """Apply a transfer exactly once per key; a repeat returns the first result.

        The first attempt is the common case, so the key is not looked up before it: a repeat
        shows itself either as a refusal of the checks (the accounts can no longer pay for it,
        its hold is resolved already: by this very transfer) or as an INSERT that finds the key
        taken; either way the transfer under that key is the answer."""
        try:
            self._load_ids(request.debit_account_id, request.credit_account_id)
            debit = self.get(request.debit_account_id)
            credit = self.get(request.credit_account_id)
            validate_request(request, debit, credit)
            pending = None
            if request.pending_id is not None:
                pending = self._pending(request.pending_id)
            debit_delta, credit_delta = deltas_for(request, pending)
            debit.with_delta(debit_delta).check_limits()
            credit.with_delta(credit_delta).check_limits()
        except LedgerError:
            existing = self.find(request.key)
            if existing is None:
                raise
            return answer_repeat(existing, request)
        row = {
            "key": request.key,
            "ledger": request.ledger,
            "debit_account_id": request.debit_account_id,
            "credit_account_id": request.credit_account_id,
            "amount": request.amount,
            "code": request.code.value,
            "flags": int(request.flags),
            "pending_id": request.pending_id,
            "rider_id": request.rider_id,
            "actor": request.actor,
            "memo": request.memo,
            "created_at": self._now,
        }
        inserted = self._insert(row, (debit, debit_delta), (credit, credit_delta))
        if inserted is None:
            existing = self.find(request.key)
            if existing is None:
                raise LedgerError(
                    "transfer_archived",
                    f"transfer {request.key!r} was applied in a month since archived",
                )
            return answer_repeat(existing, request)
        self._applied(debit, debit_delta)
        self._applied(credit, credit_delta)
        if request.pending_id is not None:
            self._resolutions[request.pending_id] = int(request.flags)
        return Transfer(
            id=inserted,
            key=request.key,
            ledger=request.ledger,
            debit_account_id=request.debit_account_id,
            credit_account_id=request.credit_account_id,
            amount=request.amount,
            code=request.code,
            flags=request.flags,
            pending_id=request.pending_id,
            rider_id=request.rider_id,
            actor=request.actor,
            memo=request.memo,
        )

    def _insert(
        self, row: dict[str, Any], debit: tuple[Account, Delta], credit: tuple[Account, Delta]
    ) -> int | None:
        """Claim the transfer's key and write its row, and add each delta to the balance of a
        side with a limit; the transfer's id, or None if the key was taken (nothing written).
        The deltas of sides without a limit are left to ``_applied`` (deferred)."""
        if self._lockable:  # PostgreSQL: all in one statement (store/ledger_pg.py)
            parameters = {f"v_{name}": value for name, value in row.items()}
            limited = {}
            for side, (account, delta) in (("debit", debit), ("credit", credit)):
                limited[side] = account.flags != AccountFlags.NONE
                if limited[side]:
                    parameters[f"{side}_id"] = account.id
                    parameters.update(_delta_parameters(delta, f"{side}_"))
            statement = ledger_pg.insert_transfer(
                debit_limited=limited["debit"], credit_limited=limited["credit"]
            )
            inserted: int | None = self._run(statement, parameters).scalar()
            return inserted
        claim = {"key": row["key"], "resolves_id": row["pending_id"], "created_at": self._now}
        inserted = self._run(_claim_key(self._conn.dialect.name), claim).scalar()
        if inserted is not None:
            self._run(_INSERT_TRANSFER, {"id": inserted, **row})
            for account, delta in (debit, credit):
                if account.flags != AccountFlags.NONE:
                    self._write(account.id, delta)
        return inserted

    def transfer_by_id(self, transfer_id: int) -> Transfer | None:
        """A transfer by id. Transfers never change once written, so a transfer read once is
        kept for this book's transaction (a hold is read by the service, then by ``transfer``)."""
        cached = self._transfers.get(transfer_id)
        if cached is None:
            row = self._run(_TRANSFER_BY_ID, {"transfer_id": transfer_id}).first()
            if row is None:
                return None
            cached = self._transfers[transfer_id] = transfer_of(row)
            self._resolutions[transfer_id] = row.resolution_flags
        return cached

    def _pending(self, pending_id: int) -> Transfer:
        pending = self.transfer_by_id(pending_id)
        resolution = None
        if pending is not None and pending.flags & TransferFlags.PENDING:
            if pending_id in self._resolutions:
                resolution = self._resolutions[pending_id]
            else:
                resolution = self._run(_RESOLUTION_FLAGS, {"resolved_id": pending_id}).scalar()
        return check_pending(pending_id, pending, resolution)

    def is_resolved(self, pending_id: int) -> bool:
        if pending_id in self._resolutions:
            return self._resolutions[pending_id] is not None
        return self._run(_RESOLUTION_ID, {"resolved_id": pending_id}).first() is not None

    def _applied(self, account: Account, delta: Delta) -> None:
        """After ``_insert``: a side without a limit is deferred; a side with one, written by
        ``_insert``, is kept as it now stands."""
        if account.flags == AccountFlags.NONE:
            self._deferred[account.id] = self._deferred[account.id] + delta
            return
        self._accounts[account.id] = self._accounts[account.id].with_delta(delta)

    def _write(self, account_id: int, delta: Delta) -> None:
        _add_to_account(self._conn, account_id, delta)

    def flush(self) -> None:
        """Write the deferred operator-side balance changes, in account id order."""
        self.write_deltas(self._conn, self.take_deferred())

    def take_deferred(self) -> dict[int, Delta]:
        """The deferred operator-side balance changes, for the caller to write (``flush``, or a
        SQLite call group once for all its calls); this book forgets them and its accounts."""
        deferred = dict(self._deferred)
        self._deferred.clear()
        self._accounts.clear()
        self._ids.clear()
        return deferred

    @staticmethod
    def write_deltas(connection: sa.Connection, deltas: Mapping[int, Delta]) -> None:
        """Add each delta to its account's balance, in account id order (so that two writers
        never take the same rows in opposite orders); a delta that nets to nothing is skipped."""
        for account_id in sorted(deltas):
            if deltas[account_id] != Delta():
                _add_to_account(connection, account_id, deltas[account_id])


def _add_to_account(connection: sa.Connection, account_id: int, delta: Delta) -> None:
    _ADD_TO_ACCOUNT.defer(connection, {"account_id": account_id, **_delta_parameters(delta, "add_")})


def _delta_parameters(delta: Delta, prefix: str) -> dict[str, int]:
    """The parameters of ``ledger_pg.balance_additions(prefix)`` that add ``delta``."""
    return {f"{prefix}{name}": getattr(delta, name) for name in ledger_pg.BALANCE_COLUMNS}
