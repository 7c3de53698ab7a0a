"""monthly partitions: transfers and station_events by month, their uniqueness in key tables

``transfer_keys`` (id, key, the pending transfer resolved, created_at) and
``station_event_keys`` (station, requestId, event type, received_at) hold every transfer's and
every station event's identity, unique over all time; ``transfers.key`` and ``.pending_id`` are no
longer unique themselves (nor ``pending_id`` a foreign key), and ``station_events``' primary key
gains ``received_at``. On PostgreSQL ``transfers`` (by ``created_at``) and ``station_events`` (by
``received_at``) become ``PARTITION BY RANGE`` tables, one partition per month from the oldest row
through three months ahead, and a default partition. ``ledger_checkpoints`` and
``archived_months`` are what ``swapd archive`` records. See docs/PARTITIONING.md.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateTable

from swapd.store.partitions import Month, default_partition, ensure_months

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)

# table -> (partition column, primary key once partitioned, primary key before)
_TABLES = {
    "transfers": ("created_at", ("id", "created_at"), ("id",)),
    "station_events": (
        "received_at",
        ("station_id", "request_id", "event_type", "received_at"),
        ("station_id", "request_id", "event_type"),
    ),
}
_PENDING_FK = "fk_transfers_pending_id_transfers"


def upgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    op.create_table(
        "transfer_keys",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("resolves_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.UniqueConstraint("key", name="uq_transfer_keys_key"),
        sa.UniqueConstraint("resolves_id", name="uq_transfer_keys_resolves_id"),
    )
    op.create_table(
        "station_event_keys",
        sa.Column("station_id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(24), primary_key=True),
        sa.Column("received_at", _AT, nullable=False),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("debits_posted", sa.BigInteger, nullable=False),
        sa.Column("credits_posted", sa.BigInteger, nullable=False),
        sa.Column("transfers", sa.BigInteger, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
    )
    op.create_table(
        "archived_months",
        sa.Column("table_name", sa.String(40), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file", sa.String(300), nullable=False),
        sa.Column("archived_at", _AT, nullable=False),
    )
    op.execute(
        "INSERT INTO transfer_keys (id, key, resolves_id, created_at) "
        "SELECT id, key, pending_id, created_at FROM transfers"
    )
    op.execute(
        "INSERT INTO station_event_keys (station_id, request_id, event_type, received_at) "
        "SELECT station_id, request_id, event_type, received_at FROM station_events"
    )
    if postgresql:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('transfer_keys', 'id'), "
            "COALESCE((SELECT max(id) FROM transfer_keys), 0) + 1, false)"
        )
        for table in _TABLES:
            _partition(connection, table)
        return
    _sqlite_rebuild(_sqlite_transfers(keyed=True))
    _sqlite_rebuild(_sqlite_station_events(keyed=True))


def downgrade() -> None:
    connection = op.get_bind()
    archived = connection.execute(sa.text("SELECT count(*) FROM archived_months")).scalar()
    if archived:
        raise RuntimeError(
            f"{archived} archived month(s): the ledger before revision 0013 has no checkpoints "
            "for their balances; downgrading would leave `swapd ledger check` failing"
        )
    if connection.dialect.name == "postgresql":
        for table in _TABLES:
            _unpartition(connection, table)
    else:
        _sqlite_rebuild(_sqlite_transfers(keyed=False))
        _sqlite_rebuild(_sqlite_station_events(keyed=False))
    op.drop_table("archived_months")
    op.drop_table("ledger_checkpoints")
    op.drop_table("station_event_keys")
    op.drop_table("transfer_keys")


# -- SQLite ----------------------------------------------------------------------------------------


def _sqlite_rebuild(table: sa.Table) -> None:
    """Copy ``table.name`` into the definition ``table`` (named ``<name>_new`` until the old one
    is dropped): by hand, since alembic's batch copy lists the constraints in no fixed order."""
    name, new = table.name, f"{table.name}_new"
    bind = op.get_bind()
    ddl = str(CreateTable(table).compile(dialect=bind.dialect))
    assert ddl.lstrip().startswith(f"CREATE TABLE {name} ("), ddl
    bind.exec_driver_sql(ddl.replace(f"CREATE TABLE {name} (", f"CREATE TABLE {new} (", 1))
    columns = ", ".join(c.name if c.name != "key" else '"key"' for c in table.columns)
    bind.exec_driver_sql(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {name}")
    bind.exec_driver_sql(f"DROP TABLE {name}")
    bind.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {name}")
    for index, columns in table.info.get("indexes", []):
        bind.exec_driver_sql(f"CREATE INDEX {index} ON {name} ({columns})")


def _sqlite_transfers(*, keyed: bool) -> sa.Table:
    """transfers as of this revision (``keyed``: its identity in transfer_keys) or before it."""
    own: list[sa.Constraint] = (
        []
        if keyed
        else [
            sa.UniqueConstraint("key", name="uq_transfers_key"),
            sa.UniqueConstraint("pending_id", name="uq_transfers_pending_id"),
            sa.ForeignKeyConstraint(["pending_id"], ["transfers.id"], name=_PENDING_FK),
        ]
    )
    metadata = sa.MetaData()
    sa.Table("accounts", metadata, sa.Column("id", sa.Integer, primary_key=True))
    table = sa.Table(
        "transfers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=not keyed),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("ledger", sa.String(8), nullable=False),
        sa.Column("debit_account_id", sa.BigInteger, nullable=False),
        sa.Column("credit_account_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("code", sa.String(24), nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("pending_id", sa.BigInteger, nullable=True),
        sa.Column("rider_id", sa.String(40), nullable=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("memo", sa.String(200), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transfers"),
        sa.CheckConstraint(
            "typeof(amount) = 'integer' AND amount BETWEEN 1 AND 9007199254740991",
            name="ck_transfers_amount_bounded",
        ),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name="ck_transfers_two_accounts"),
        sa.ForeignKeyConstraint(
            ["debit_account_id"], ["accounts.id"], name="fk_transfers_debit_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"], ["accounts.id"], name="fk_transfers_credit_account_id_accounts"
        ),
        *own,
    )
    # Made after the copy, under their own names (not the _new table's).
    table.info["indexes"] = [
        ("ix_transfers_rider", "rider_id, id"),
        ("ix_transfers_created", "created_at"),
    ]
    return table


def _sqlite_station_events(*, keyed: bool) -> sa.Table:
    key = _TABLES["station_events"][1 if keyed else 2]
    return sa.Table(
        "station_events",
        sa.MetaData(),
        sa.Column("station_id", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(24), nullable=False),
        sa.Column("received_at", _AT, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint(*key, name="pk_station_events"),
    )


# -- PostgreSQL ------------------------------------------------------------------------------------


def _plain_indexes(connection: sa.Connection, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX text) of the table's indexes that back no constraint."""
    query = sa.text(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass(:t) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
        "ORDER BY i.relname"
    )
    return [(str(n), str(d)) for n, d in connection.execute(query, {"t": table})]


def _constraints(connection: sa.Connection, table: str, kinds: str) -> list[tuple[str, str]]:
    query = sa.text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(:t) AND position(contype::text in :kinds) > 0 "
        "AND conparentid = 0 ORDER BY conname"
    )
    return [(str(n), str(d)) for n, d in connection.execute(query, {"t": table, "kinds": kinds})]


def _set_aside(connection: sa.Connection, table: str, old: str) -> list[str]:
    """Rename ``table`` to ``old`` with its constraint indexes, drop its plain indexes (made
    again on the new table); returns their CREATE INDEX texts."""
    indexes = _plain_indexes(connection, table)
    for name, _ in indexes:
        connection.exec_driver_sql(f"DROP INDEX {name}")
    for name, _ in _constraints(connection, table, "pu"):
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME CONSTRAINT {name} TO {name}_old")
    connection.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {old}")
    return [definition for _, definition in indexes]


def _partition(connection: sa.Connection, table: str) -> None:
    column, key, _ = _TABLES[table]
    old = f"{table}_unpartitioned"
    indexes = _set_aside(connection, table, old)
    connection.exec_driver_sql(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING CONSTRAINTS) PARTITION BY RANGE ({column})"
    )
    connection.exec_driver_sql(
        f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})"
    )
    for name, definition in _constraints(connection, old, "f"):
        if name != _PENDING_FK:
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    connection.exec_driver_sql(f"CREATE TABLE {default_partition(table)} PARTITION OF {table} DEFAULT")
    oldest = connection.exec_driver_sql(f"SELECT min({column}) FROM {old}").scalar()
    now = datetime.now(UTC)
    ensure_months(connection, now, since=Month.of(oldest) if oldest is not None else None)
    connection.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {old}")
    connection.exec_driver_sql(f"DROP TABLE {old}")
    for definition in indexes:
        connection.exec_driver_sql(definition.replace(" ON ONLY ", " ON "))


def _unpartition(connection: sa.Connection, table: str) -> None:
    old = f"{table}_partitioned"
    indexes = _set_aside(connection, table, old)
    connection.exec_driver_sql(f"CREATE TABLE {table} (LIKE {old} INCLUDING CONSTRAINTS)")
    key = _TABLES[table][2]
    connection.exec_driver_sql(
        f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})"
    )
    for name, definition in _constraints(connection, old, "f"):
        connection.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    connection.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {old}")
    connection.exec_driver_sql(f"DROP TABLE {old}")
    if table == "transfers":
        connection.exec_driver_sql("CREATE SEQUENCE transfers_id_seq OWNED BY transfers.id")
        connection.exec_driver_sql(
            "ALTER TABLE transfers ALTER COLUMN id SET DEFAULT nextval('transfers_id_seq')"
        )
        connection.exec_driver_sql(
            "SELECT setval('transfers_id_seq', COALESCE((SELECT max(id) FROM transfers), 0) + 1, false)"
        )
        connection.exec_driver_sql("ALTER TABLE transfers ADD CONSTRAINT uq_transfers_key UNIQUE (key)")
        connection.exec_driver_sql(
            "ALTER TABLE transfers ADD CONSTRAINT uq_transfers_pending_id UNIQUE (pending_id)"
        )
        connection.exec_driver_sql(
            f"ALTER TABLE transfers ADD CONSTRAINT {_PENDING_FK} "
            "FOREIGN KEY (pending_id) REFERENCES transfers (id)"
        )
    for definition in indexes:
        connection.exec_driver_sql(definition.replace(" ON ONLY ", " ON "))
