"""Retention: whole months of the history tables written to files and taken out of the database.

``archive(engine, before, out_dir)`` takes every month older than ``before``, oldest first. For
each: the months' rows of ``transfers`` and ``station_events`` are written to CSV files under
``out_dir`` (``<table>/<table>_YYYY-MM.csv``, with a header row; written to a temporary name,
fsynced, then renamed) and ``manifest.json`` lists every file with its row count and SHA-256.
Then one transaction, after checking again that the month is still what was written: the posted
sums of the month's transfers are added to each account's checkpoint (``ledger_checkpoints``),
the month is recorded in ``archived_months``, and the rows go: on PostgreSQL the month's
partitions are detached and dropped, on SQLite (plain tables) the rows are deleted.

The identities stay: ``transfer_keys`` and ``station_event_keys`` keep every key, so a repeat of
an archived transfer or event is still recognised (and refused as archived, never applied again).

A month is refused, and nothing of it touched, while it holds a pending transfer that is not
resolved (an open hold) or a post or void of a pending transfer of a later month: either would
leave a balance that the checkpoint, which carries posted sums only, could not state.

Safe to run again after a crash at any point: files are rewritten whole until the month's
transaction commits, and a month recorded in ``archived_months`` is skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import Conflict
from swapd.ledger.model import TransferFlags
from swapd.store import schema as t
from swapd.store.engine import WRITE
from swapd.store.partitions import (
    PARTITIONED,
    Month,
    default_partition,
    is_partitioned,
    months_of,
    partition_name,
)

HISTORY: tuple[sa.Table, ...] = (t.transfers, t.station_events)
MANIFEST = "manifest.json"
_BATCH_ROWS = 10_000  # rows fetched at a time while writing a file
_REFUSALS_SHOWN = 5


class ArchiveRefused(Conflict):
    """A month that cannot be archived (yet), and why."""


@dataclass(frozen=True)
class MonthFile:
    table: str
    month: str
    file: str  # relative to the archive directory
    row_count: int
    sha256: str


@dataclass
class ArchiveReport:
    archived: list[MonthFile] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # "table YYYY-MM" archived by an earlier run
    checkpointed_accounts: int = 0


Progress = Callable[[str, int], None]  # (what is being done, rows done so far)


def _time(table: sa.Table) -> sa.Column[datetime]:
    return table.c[PARTITIONED[table.name]]


def _in_month(table: sa.Table, month: Month) -> sa.ColumnElement[bool]:
    column = _time(table)
    return sa.and_(column >= month.start, column < month.end)


def months_before(connection: sa.Connection, before: Month) -> list[Month]:
    """The months older than ``before`` that have rows or (PostgreSQL) a partition, oldest first."""
    found: set[Month] = set()
    for table in HISTORY:
        oldest = connection.execute(sa.select(sa.func.min(_time(table)))).scalar()
        month = Month.of(oldest) if oldest is not None else before
        while month < before:
            exists = sa.exists().where(_in_month(table, month))
            if connection.execute(sa.select(exists)).scalar():
                found.add(month)
            month = month.next()
        if is_partitioned(connection, table.name):
            found.update(m for m in months_of(connection, table.name) if m < before)
    return sorted(found)


def refusals(connection: sa.Connection, month: Month) -> list[str]:
    """Why ``month`` cannot be archived now; empty if it can."""
    x, k = t.transfers.c, t.transfer_keys.c
    in_month = _in_month(t.transfers, month)
    open_holds = connection.execute(
        sa.select(x.id)
        .where(
            in_month,
            x.flags == int(TransferFlags.PENDING),
            ~sa.exists().where(k.resolves_id == x.id),
        )
        .order_by(x.id)
        .limit(_REFUSALS_SHOWN)
    ).scalars()
    problems = [f"transfer {i} is a hold still open" for i in open_holds]
    later = connection.execute(
        sa.select(x.id)
        .join(t.transfer_keys, k.id == x.pending_id)
        .where(in_month, k.created_at >= month.end)
        .order_by(x.id)
        .limit(_REFUSALS_SHOWN)
    ).scalars()
    problems += [f"transfer {i} resolves a pending transfer of a later month" for i in later]
    for table in HISTORY:
        if not is_partitioned(connection, table.name):
            continue
        default = sa.table(default_partition(table.name), sa.column(PARTITIONED[table.name]))
        column = default.c[PARTITIONED[table.name]]
        waiting = sa.exists().where(column >= month.start, column < month.end)
        if connection.execute(sa.select(waiting)).scalar():
            problems.append(
                f"{table.name} has rows of {month} in its default partition "
                "(swapd db upgrade makes the month and moves them)"
            )
    return problems


def _rows(connection: sa.Connection, table: sa.Table, month: Month) -> Iterator[list[Any]]:
    query = sa.select(table).where(_in_month(table, month)).order_by(*table.primary_key.columns)
    result = connection.execution_options(yield_per=_BATCH_ROWS).execute(query)
    for row in result:
        yield [_text(value) for value in row]


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def write_month(
    connection: sa.Connection, table: sa.Table, month: Month, out_dir: Path, progress: Progress
) -> MonthFile:
    """The month's rows of ``table`` into their CSV file, whole or not at all."""
    relative = Path(table.name) / f"{table.name}_{month}.csv"
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    count = 0

    class _Hashing:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def write(self, text: str) -> int:
            digest.update(text.encode())
            return int(self.handle.write(text))

    with open(partial, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(_Hashing(handle))
        writer.writerow([column.name for column in table.columns])
        for row in _rows(connection, table, month):
            writer.writerow(row)
            count += 1
            if count % _BATCH_ROWS == 0:
                progress(f"{table.name} {month}", count)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    progress(f"{table.name} {month}", count)
    return MonthFile(table.name, str(month), str(relative), count, digest.hexdigest())


def _write_manifest(out_dir: Path, files: list[MonthFile]) -> None:
    path = out_dir / MANIFEST
    entries: dict[str, dict[str, Any]] = {}
    if path.exists():
        for entry in json.loads(path.read_text(encoding="utf-8")).get("files", []):
            entries[entry["file"]] = entry
    for month_file in files:
        entries[month_file.file] = asdict(month_file)
    manifest = {
        "format": "csv, header row, UTF-8; timestamps ISO 8601 UTC; JSON columns as JSON text",
        "files": sorted(entries.values(), key=lambda e: (e["table"], e["month"])),
    }
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _checkpoint(connection: sa.Connection, month: Month, now: datetime) -> int:
    """Add the month's posted transfers to each account's checkpoint; returns accounts touched."""
    x = t.transfers.c
    posted = x.flags.in_([int(TransferFlags.NONE), int(TransferFlags.POST_PENDING)])
    in_month = _in_month(t.transfers, month)
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for side, column in ((0, x.debit_account_id), (1, x.credit_account_id)):
        query = sa.select(column, sa.func.sum(x.amount)).where(in_month, posted).group_by(column)
        for account_id, total in connection.execute(query):
            sums[int(account_id)][side] += int(total)
        count_query = sa.select(column, sa.func.count()).where(in_month).group_by(column)
        for account_id, count in connection.execute(count_query):
            sums[int(account_id)][2] += int(count)
    c = t.ledger_checkpoints.c
    for account_id, (debits, credits, count) in sorted(sums.items()):
        updated = connection.execute(
            sa.update(t.ledger_checkpoints)
            .where(c.account_id == account_id)
            .values(
                debits_posted=c.debits_posted + debits,
                credits_posted=c.credits_posted + credits,
                transfers=c.transfers + count,
                updated_at=now,
            )
        )
        if updated.rowcount == 0:
            connection.execute(
                sa.insert(t.ledger_checkpoints).values(
                    account_id=account_id,
                    debits_posted=debits,
                    credits_posted=credits,
                    transfers=count,
                    updated_at=now,
                )
            )
    return len(sums)


def _remove(connection: sa.Connection, table: sa.Table, month: Month) -> None:
    if not is_partitioned(connection, table.name):
        connection.execute(sa.delete(table).where(_in_month(table, month)))
        return
    name = partition_name(table.name, month)
    if connection.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
        return  # no partition was made for the month (it had no rows)
    connection.exec_driver_sql(f"ALTER TABLE {table.name} DETACH PARTITION {name}")
    connection.exec_driver_sql(f"DROP TABLE {name}")


def _archived(connection: sa.Connection, month: Month) -> set[str]:
    a = t.archived_months.c
    query = sa.select(a.table_name).where(a.month == str(month))
    return set(connection.execute(query).scalars())


def _count(connection: sa.Connection, table: sa.Table, month: Month) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(_in_month(table, month))
    return int(connection.execute(query).scalar_one())


def archive(
    engine: sa.Engine,
    before: Month,
    out_dir: Path,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ArchiveReport:
    """Archive every month older than ``before`` (see the module's docstring)."""
    now = now or datetime.now(UTC)
    if before > Month.of(now):
        raise ArchiveRefused(f"{before} is after the current month: only past months are archived")
    report = ArchiveReport()
    step: Progress = progress or (lambda _what, _rows: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    with engine.connect() as connection:
        months = months_before(connection, before)
        recorded = sa.select(t.archived_months.c.month).where(t.archived_months.c.month < str(before))
        months = sorted({*months, *map(Month.parse, connection.execute(recorded).scalars())})
    for month in months:
        with engine.connect() as connection:
            done = _archived(connection, month)
            report.already += [f"{name} {month}" for name in sorted(done)]
            tables = [table for table in HISTORY if table.name not in done]
            if not tables:
                continue
            problems = refusals(connection, month)
            if problems:
                raise ArchiveRefused(f"{month} cannot be archived: " + "; ".join(problems))
            files = [write_month(connection, table, month, out_dir, step) for table in tables]
        _write_manifest(out_dir, files)
        with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7270014)")
            if _archived(connection, month) & {f.table for f in files}:
                continue  # another run archived it meanwhile
            problems = refusals(connection, month)
            if problems:
                raise ArchiveRefused(f"{month} cannot be archived: " + "; ".join(problems))
            for table, month_file in zip(tables, files, strict=True):
                if _count(connection, table, month) != month_file.row_count:
                    raise ArchiveRefused(f"{table.name} {month} changed while it was written; run again")
            if t.transfers in tables:
                report.checkpointed_accounts += _checkpoint(connection, month, now)
            for table, month_file in zip(tables, files, strict=True):
                connection.execute(
                    sa.insert(t.archived_months).values(
                        table_name=table.name,
                        month=str(month),
                        row_count=month_file.row_count,
                        sha256=month_file.sha256,
                        file=month_file.file,
                        archived_at=now,
                    )
                )
                _remove(connection, table, month)
        report.archived += files
    return report
