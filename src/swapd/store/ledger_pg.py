"""The transfer as one statement on PostgreSQL: its key claimed, its row written, and the balance
of each side with a limit (a rider's account) updated, in one data-modifying WITH.

The key's claim answers "was this applied already?": if the key was taken, the claim returns no
row, so no transfer row is written and neither balance changes (each UPDATE is conditional on
the claim), and the statement returns no row. The accounts with a limit were locked before the
transfer was checked (``Book.load``/``Book.account`` read them FOR UPDATE), so the UPDATEs take no
new lock; their new balances are the ones the book checked. The operator's accounts (no limit)
are not here: their deltas are deferred to one update per transaction (``Book.flush``).
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from swapd.store.prepared import Prepared
from swapd.store.schema import accounts, transfer_keys, transfers

BALANCE_COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_STATEMENTS: dict[tuple[bool, bool], Prepared] = {}
_LOCK = threading.Lock()


def insert_transfer(*, debit_limited: bool, credit_limited: bool) -> Prepared:
    """The statement for a transfer whose debit and/or credit account has a limit. Parameters:
    ``v_<column>`` of the transfer; for a limited side ``debit_id``/``credit_id`` and
    ``debit_<balance column>``/``credit_<balance column>``, the amounts to add."""
    shape = (debit_limited, credit_limited)
    statement = _STATEMENTS.get(shape)
    if statement is None:
        with _LOCK:
            statement = _STATEMENTS.get(shape) or _STATEMENTS.setdefault(shape, _build(*shape))
    return statement


def _value(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"v_{name}", type_=transfers.c[name].type)


def _build(debit_limited: bool, credit_limited: bool) -> Prepared:
    # Imported here: a command that never writes a transfer on PostgreSQL does not load the
    # dialect (tests/integration/test_cli_startup.py).
    from sqlalchemy.dialects import postgresql

    k = transfer_keys.c
    claimed = (
        postgresql.insert(transfer_keys)
        .values(key=_value("key"), resolves_id=_value("pending_id"), created_at=_value("created_at"))
        .on_conflict_do_nothing(index_elements=[k.key])
        .returning(k.id)
        .cte("claimed")
    )
    names = [column.name for column in transfers.columns]
    rows = sa.select(claimed.c.id, *(_value(name) for name in names if name != "id"))
    statement = sa.insert(transfers).from_select(names, rows).returning(transfers.c.id).add_cte(claimed)
    for side, limited in (("debit", debit_limited), ("credit", credit_limited)):
        if limited:
            statement = statement.add_cte(_add_to_balance(side, claimed))
    return Prepared(statement)


def balance_additions(prefix: str) -> dict[str, sa.ColumnElement[Any]]:
    """SET each balance column to itself plus the parameter ``<prefix><column>``."""
    c = accounts.c
    return {
        name: c[name] + sa.bindparam(f"{prefix}{name}", type_=sa.BigInteger) for name in BALANCE_COLUMNS
    }


def _add_to_balance(side: str, claimed: sa.CTE) -> sa.CTE:
    return (
        sa.update(accounts)
        .where(
            accounts.c.id == sa.bindparam(f"{side}_id", type_=sa.BigInteger),
            sa.exists(sa.select(claimed.c.id)),
        )
        .values(balance_additions(f"{side}_"))
        .cte(f"{side}_balance")
    )
