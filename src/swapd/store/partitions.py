"""Monthly partitions of the history tables on PostgreSQL (docs/PARTITIONING.md).

``transfers`` (by ``created_at``) and ``station_events`` (by ``received_at``) are declared
``PARTITION BY RANGE`` on PostgreSQL, one partition per calendar month (UTC) named
``<table>_yYYYYmMM``, and a ``<table>_default`` partition that takes any row no month was made
for. PostgreSQL cannot make a partition when a row needs it, so months are made ahead:
``ensure_months`` at ``swapd db upgrade``, at ``swapd serve`` start and once a day while it runs.

A row that landed in the default partition is moved into its month when that month is made
(``ensure_months``): the default is a safety net, not a place rows stay. SQLite has plain
tables; everything here is a no-op there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

# The partitioned tables and the column each is partitioned by.
PARTITIONED: dict[str, str] = {"transfers": "created_at", "station_events": "received_at"}
MONTHS_AHEAD = 3  # months made beyond the current one
_NAME = re.compile(r"^(?P<table>[a-z_]+)_y(?P<year>\d{4})m(?P<month>\d{2})$")
# No more than this many months are made in one call (a start far in the past is a mistake).
MAX_MONTHS_PER_CALL = 240


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1970 <= self.year <= 9998:
            raise ValueError(f"no month {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``."""
        match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if match is None:
            raise ValueError(f"a month is written YYYY-MM, not {text!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, at: datetime) -> Month:
        at = at.astimezone(UTC)
        return cls(at.year, at.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def partition_name(table: str, month: Month) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def default_partition(table: str) -> str:
    return f"{table}_default"


def is_partitioned(connection: sa.Connection, table: str) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": table}
    ).scalar()
    return bool(kind == "p")


def partition_tables(connection: sa.Connection) -> set[str]:
    """Every table that is a partition of another (what reflection lists beside the schema's)."""
    if connection.dialect.name != "postgresql":
        return set()
    query = sa.text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relispartition AND n.nspname = current_schema()"
    )
    return set(connection.execute(query).scalars())


def months_of(connection: sa.Connection, table: str) -> list[Month]:
    """The months ``table`` has a partition for, oldest first."""
    query = sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:parent)"
    )
    months = []
    for name in connection.execute(query, {"parent": table}).scalars():
        match = _NAME.match(name)
        if match is not None and match["table"] == table:
            months.append(Month(int(match["year"]), int(match["month"])))
    return sorted(months)


def create_month(connection: sa.Connection, table: str, month: Month) -> bool:
    """Make ``table``'s partition for ``month`` unless it exists; rows of that month waiting in
    the default partition are moved into it. True if it was made."""
    name = partition_name(table, month)
    if connection.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return False
    column = PARTITIONED[table]
    default = default_partition(table)
    bounds = f"FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"
    waiting = connection.execute(
        sa.text(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {column} >= :start AND {column} < :end)"),
        {"start": month.start, "end": month.end},
    ).scalar()
    if not waiting:
        connection.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds}")
        return True
    # PostgreSQL refuses a month whose rows sit in the default partition: take the default out,
    # make the month, move its rows, put the default back (one transaction: all or nothing).
    connection.exec_driver_sql(f"ALTER TABLE {table} DETACH PARTITION {default}")
    connection.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds}")
    where = f"{column} >= '{month.start.isoformat()}' AND {column} < '{month.end.isoformat()}'"
    connection.exec_driver_sql(f"INSERT INTO {name} SELECT * FROM {default} WHERE {where}")
    connection.exec_driver_sql(f"DELETE FROM {default} WHERE {where}")
    connection.exec_driver_sql(f"ALTER TABLE {table} ATTACH PARTITION {default} DEFAULT")
    return True


def ensure_months(
    connection: sa.Connection, now: datetime, *, since: Month | None = None, ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Make every partitioned table's months from ``since`` (default: the current month)
    through ``ahead`` months after ``now``'s; returns the partitions made. Nothing on SQLite,
    or before the migration that partitions the tables."""
    if connection.dialect.name != "postgresql":
        return []
    made: list[str] = []
    for table in PARTITIONED:
        if not is_partitioned(connection, table):
            continue
        # One maker at a time (serve processes starting together, the daily task).
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7270013)")
        month = since or Month.of(now)
        last = Month.of(now)
        for _ in range(ahead):
            last = last.next()
        for _ in range(MAX_MONTHS_PER_CALL):
            if month > last:
                break
            if create_month(connection, table, month):
                made.append(partition_name(table, month))
            month = month.next()
    return made


def ensure_months_now(engine: sa.Engine, now: datetime | None = None) -> list[str]:
    """``ensure_months`` in a transaction of its own."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as connection:
        return ensure_months(connection, now or datetime.now(UTC))
