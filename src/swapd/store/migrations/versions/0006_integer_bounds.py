"""integer bounds: the ledger's amounts and balances, and payments, are integers within bounds

Every column that holds money or units of the ledger gets a CHECK that it is an integer within its
bound: the four balance columns of ``accounts`` (0..10^18), ``transfers.amount`` and
``payments.amount_minor`` (1..2^53-1, one transfer; a payment becomes one). They replace the two
``amount_positive`` checks. PostgreSQL's columns are BIGINT already (made so if not); SQLite also
checks the stored type, since it keeps a float or a text that an integer column cannot take.

Not here: the plans' prices, the holds and usage copied onto offers and possessions, the
subscription counters. They are no balance of the ledger and the domain bounds them: a plan written
before the bounds and past them is kept, but refused (InvalidInput naming it) wherever it is read.

A database that holds an amount outside these bounds is not upgraded: the upgrade stops with the
rows at fault (``swapd ledger check`` lists them), rather than lose or rewrite money.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

from swapd.domain.errors import Conflict

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The bounds as of this revision (swapd.domain.quantities); a later change is a new revision.
COLUMN_MAX = 10**18  # MAX_ACCOUNT_COLUMN_AMOUNT
AMOUNT_MAX = 2**53 - 1  # MAX_TRANSFER_AMOUNT

BALANCES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
# table -> (column, low, high) of each bounded column
BOUNDED: dict[str, list[tuple[str, int, int]]] = {
    "accounts": [(column, 0, COLUMN_MAX) for column in BALANCES],
    "transfers": [("amount", 1, AMOUNT_MAX)],
    "payments": [("amount_minor", 1, AMOUNT_MAX)],
}
# The checks these replace: table -> their text
POSITIVE = {"transfers": "amount > 0", "payments": "amount_minor > 0"}


def _check(column: str, low: int, high: int, sqlite: bool) -> str:
    in_range = f"{column} BETWEEN {low} AND {high}"
    return f"typeof({column}) = 'integer' AND {in_range}" if sqlite else in_range


def _refuse_rows_out_of_bounds(connection: sa.Connection, sqlite: bool) -> None:
    found = []
    for table, columns in BOUNDED.items():
        wrong = " OR ".join(f"NOT ({_check(c, low, high, sqlite)})" for c, low, high in columns)
        ids = connection.exec_driver_sql(
            f"SELECT id FROM {table} WHERE {wrong} ORDER BY id LIMIT 5"
        ).scalars()
        found += [f"{table} {row_id}" for row_id in ids]
    if found:
        raise Conflict(
            "cannot upgrade: rows hold amounts that are not integers within their bounds ("
            + ", ".join(found)
            + "); `swapd ledger check` lists them; correct them, then upgrade again"
        )


def _make_bigint(connection: sa.Connection) -> None:
    inspector = sa.inspect(connection)
    for table, columns in BOUNDED.items():
        types = {c["name"]: c["type"] for c in inspector.get_columns(table)}
        for column, _low, _high in columns:
            if not isinstance(types[column], sa.BigInteger):
                op.alter_column(table, column, type_=sa.BigInteger(), existing_nullable=False)


def _rebuild_sqlite(
    connection: sa.Connection, table: str, drop: list[str], add: list[tuple[str, str]]
) -> None:
    """SQLite's way to change a table's constraints (sqlite.org/lang_altertable.html, "other
    kinds of table schema changes"): a new table with the new definition, the rows copied into
    it, the old table dropped, the new one renamed, its indexes made again. By hand rather than in
    batch mode, which lists a table's constraints in a set's order, so that one migration would
    write a different CREATE TABLE each time; here the definition is the one stored, less the
    checks in ``drop``, plus those in ``add`` at the end."""
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    indexes = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,),
    ).scalars()
    for name in drop:
        # ", CONSTRAINT name CHECK (...)", its text holding parentheses one level deep at most
        sql, found = re.subn(rf",\s*CONSTRAINT {name} CHECK \((?:[^()]|\([^()]*\))*\)", "", sql)
        if found != 1:
            raise RuntimeError(f"table {table} has no check {name} to replace")
    end = sql.rindex(")")
    checks = "".join(f", \n\tCONSTRAINT {name} CHECK ({text})" for name, text in add)
    sql = sql[:end].rstrip() + checks + "\n" + sql[end:]
    new = f"_swapd_new_{table}"
    sql, found = re.subn(rf'^CREATE TABLE\s+"?{table}"?\s*\(', f"CREATE TABLE {new} (", sql)
    if found != 1:
        raise RuntimeError(f"table {table} is defined as {sql[:40]!r}...")
    index_sql = list(indexes)
    connection.exec_driver_sql(sql)
    connection.exec_driver_sql(f"INSERT INTO {new} SELECT * FROM {table}")
    connection.exec_driver_sql(f"DROP TABLE {table}")
    connection.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {table}")
    for statement in index_sql:
        connection.exec_driver_sql(statement)


def _bounded_name(table: str, column: str) -> str:
    return f"ck_{table}_{column}_bounded"


def _positive_name(table: str) -> str:
    return f"ck_{table}_amount_positive"


def upgrade() -> None:
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    _refuse_rows_out_of_bounds(connection, sqlite)
    if not sqlite:
        _make_bigint(connection)
    for table, columns in BOUNDED.items():
        drop = [_positive_name(table)] if table in POSITIVE else []
        add = [(_bounded_name(table, c), _check(c, low, high, sqlite)) for c, low, high in columns]
        _replace_checks(connection, sqlite, table, drop, add)


def downgrade() -> None:
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    for table, columns in BOUNDED.items():
        drop = [_bounded_name(table, c) for c, _low, _high in columns]
        add = [(_positive_name(table), POSITIVE[table])] if table in POSITIVE else []
        _replace_checks(connection, sqlite, table, drop, add)


def _replace_checks(
    connection: sa.Connection, sqlite: bool, table: str, drop: list[str], add: list[tuple[str, str]]
) -> None:
    """Drop the named CHECK constraints of ``table`` and add the given ones: a table rebuild on
    SQLite (which cannot alter constraints), ALTER TABLE on PostgreSQL."""
    if sqlite:
        _rebuild_sqlite(connection, table, drop, add)
        return
    for name in drop:
        op.drop_constraint(op.f(name), table, type_="check")
    for name, text in add:
        op.create_check_constraint(op.f(name), table, text)
