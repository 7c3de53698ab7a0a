"""Monthly statements at scale: every rider's October exported as CSV through swapd's service.

PostgreSQL (a database of its own, ``swapd_bench_statements``, made and dropped by the run):
1,000,000 riders on a prepaid energy plan, each with a top-up in September (the opening balance),
a top-up in October and 15-45 swaps in October (30,000,000 in all). A swap is what the services
write for it: a closed possession, a pending hold at hand-over, its post at the return and the
revenue it earns, so 3 transfers (93,000,000 transfer rows in all, plus 4 accounts per rider whose
cached balances equal the transfers). PostgreSQL makes the rows itself from ``generate_series``:
by default with ``INSERT .. SELECT``, both big tables at once, then ``VACUUM (FREEZE)`` so that
they are frozen and hinted as a vacuumed production table would be; ``--load copy`` pipes the
same rows through psycopg (``COPY (SELECT ..) TO STDOUT`` into ``COPY .. FROM STDIN (FREEZE)``,
binary format), which is slower here: psycopg hands over one row per Python call.

Loading is made fast in ways the export does not see: foreign keys are dropped, the big tables are
UNLOGGED, and of the indexes on transfers and possessions only those the statement queries can
use (timestamps, rider) are rebuilt after the load; ``--all-indexes`` rebuilds every one. No packs
or swaps rows are made: the statement query does not read those tables.

Then: the full export (``swapd.services.statements.export_csv``) is timed, its column totals are
checked against the numbers the generator implies, and single-rider statements are timed.
SQLite runs the same at a smaller size (rows generated in Python), for comparison.

``--smoke`` (for the tests) makes 100 riders on each database and times 5 single statements: every
step runs and the export's totals are checked, at a size that proves nothing about speed.

Run: ``uv run python -m bench.statements [--quick | --smoke] [--riders N] [--load insert|copy]
[--keep] [--reuse DATABASE] [--databases postgresql,sqlite]``
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from bench._common import PG_ADMIN_URL, console, emit, load_average, pg_available
from swapd.services import statements
from swapd.services.statements import Month
from swapd.store.database import Database
from swapd.store.engine import make_engine, upgrade
from swapd.store.partitions import Month as PartitionMonth
from swapd.store.partitions import ensure_months

NAME = "statements"
DATABASE = "swapd_bench_statements"  # + the process id: runs at the same time stay apart
MONTH = Month(2026, 10)
OPENED = MONTH.start - timedelta(days=1)  # the September top-up
JOINED = MONTH.start - timedelta(days=30)
TOP_UP_MINOR = 10_000  # 300 KRW per kWh: buys 33,333 Wh
TOP_UP_WH = 33_333
HOLD_WH = 1_615  # ceil(1,700 Wh x 95 % SoH x 100 % SoC)
MONTH_S = int((MONTH.end - MONTH.start).total_seconds())
TARGET_EXPORT_S = 300.0
FULL_RIDERS = 1_000_000
SQLITE_FULL_RIDERS = 100_000
QUICK_RIDERS = 2_000
SMOKE_RIDERS = 100
STATEMENT_SAMPLES = 20  # single-rider statements timed
SMOKE_STATEMENT_SAMPLES = 5
# Operator accounts have ids 1-5; rider i's four accounts are 100 + 4i .. 103 + 4i.
CASH, REVENUE, ISSUED, CONSUMED = 1, 2, 3, 4
ALLOWANCE, OVERDRAWN, PREPAID, RECEIVABLE = 0, 1, 2, 3


# -- what the generator makes, as formulas both generators (SQL and Python) follow ---------------


def swaps_of(i: int) -> int:
    """Rider i's swaps in the month: 15..45, 30 on average."""
    return 15 + i % 31


def usage_wh(i: int, j: int) -> int:
    return 800 + (i * 7 + j * 13) % 800


def revenue_minor(i: int, j: int) -> int:
    # 300 KRW per kWh; every rider's top-ups cover the most a month can use (45 x 1,599 Wh).
    return usage_wh(i, j) * 3 // 10


@dataclass(frozen=True)
class Expected:
    riders: int
    swaps: int
    used_wh: int
    revenue_minor: int


def expected(riders: int) -> Expected:
    swaps = used = revenue = 0
    for i in range(1, riders + 1):
        n = swaps_of(i)
        swaps += n
        for j in range(n):
            used += usage_wh(i, j)
            revenue += revenue_minor(i, j)
    return Expected(riders, swaps, used, revenue)


# -- PostgreSQL: rows made by the server, piped through COPY --------------------------------------

_SWAPS_SQL = """
SELECT i, j, 'R' || i AS rider, i * 64 + j AS swap,
       800 + (i * 7 + j * 13) % 800 AS usage,
       TIMESTAMPTZ '{start}'
         + make_interval(secs => (j * {month_s} / (15 + i % 31)) + i % 3600) AS at_out
FROM generate_series(1, {riders}) AS i
CROSS JOIN LATERAL generate_series(0, 14 + i % 31) AS j
"""

_TRANSFERS_SQL = """
SELECT s.swap * 3 + k,
       CASE k WHEN 0 THEN 'offer:' || s.swap || ':B' || (s.swap % 400000) || ':hold'
              ELSE 'ST' || (s.swap % 2000) || ':req-' || s.swap || ':B' || (s.swap % 400000)
                   || ':BatteryIn:' || CASE k WHEN 1 THEN 'post' ELSE 'revenue' END END,
       CASE k WHEN 2 THEN 'KRW' ELSE 'Wh' END,
       CASE k WHEN 2 THEN 100 + 4 * s.i + {prepaid} ELSE 100 + 4 * s.i + {allowance} END,
       CASE k WHEN 2 THEN {revenue} ELSE {consumed} END,
       CASE k WHEN 0 THEN {hold} WHEN 1 THEN s.usage ELSE s.usage * 3 / 10 END,
       CASE k WHEN 0 THEN 'hold' WHEN 1 THEN 'usage' ELSE 'revenue' END,
       CASE k WHEN 0 THEN 1 WHEN 1 THEN 2 ELSE 0 END,
       CASE k WHEN 1 THEN s.swap * 3 END,
       s.rider, 'system', '',
       CASE k WHEN 0 THEN s.at_out ELSE s.at_out + make_interval(secs => 3600 + s.swap % 7200) END
FROM ({swaps}) AS s CROSS JOIN generate_series(0, 2) AS k
"""

_TOP_UPS_SQL = """
SELECT 1000000000000 + i * 4 + k,
       'topup:pay-' || i || '-' || (k / 2) || CASE k % 2 WHEN 0 THEN ':money' ELSE ':units' END,
       CASE k % 2 WHEN 0 THEN 'KRW' ELSE 'Wh' END,
       CASE k % 2 WHEN 0 THEN {cash} ELSE {issued} END,
       CASE k % 2 WHEN 0 THEN 100 + 4 * i + {prepaid} ELSE 100 + 4 * i + {allowance} END,
       CASE k % 2 WHEN 0 THEN {top_up_minor} ELSE {top_up_wh} END,
       'top_up', 0, NULL::bigint, 'R' || i, 'payments', '',
       CASE k / 2 WHEN 0 THEN TIMESTAMPTZ '{opened}'
                  ELSE TIMESTAMPTZ '{start}' + make_interval(secs => i % 86400) END
FROM generate_series(1, {riders}) AS i CROSS JOIN generate_series(0, 3) AS k
"""

_POSSESSIONS_SQL = """
SELECT s.swap, s.rider, 'B' || (s.swap % 400000), 'energy', s.swap * 2,
       'ST' || (s.swap % 2000), 1 + s.swap % 12, s.at_out, 10000, 9500, {hold}, s.swap * 3,
       s.swap * 2 + 1, 'ST' || ((s.swap + 7) % 2000), 1 + (s.swap + 5) % 12,
       s.at_out + make_interval(secs => 3600 + s.swap % 7200),
       10000 - s.usage * 10000 / 1615, 9500, s.usage, NULL::text
FROM ({swaps}) AS s
"""

_TRANSFER_COLUMNS = (
    "id, key, ledger, debit_account_id, credit_account_id, amount, code, flags, pending_id, "
    "rider_id, actor, memo, created_at"
)
_POSSESSION_COLUMNS = (
    "id, rider_id, pack_serial, plan_id, swap_out_id, station_out, slot_out, at_out, soc_out_bp, "
    "soh_out_bp, hold_units, hold_transfer_id, swap_in_id, station_in, slot_in, at_in, soc_in_bp, "
    "soh_in_bp, usage_units, anomaly"
)
_BIG = ("transfers", "possessions")
# The export reads by time; one rider's statement reads by rider.
_QUERY_INDEX_COLUMNS = ("created_at", "at_in", "at_out", "rider_id")


def _sql(template: str, riders: int) -> str:
    swaps = _SWAPS_SQL.format(start=MONTH.start.isoformat(), month_s=MONTH_S, riders=riders)
    return template.format(
        swaps=swaps,
        riders=riders,
        start=MONTH.start.isoformat(),
        opened=OPENED.isoformat(),
        hold=HOLD_WH,
        prepaid=PREPAID,
        allowance=ALLOWANCE,
        revenue=REVENUE,
        consumed=CONSUMED,
        cash=CASH,
        issued=ISSUED,
        top_up_minor=TOP_UP_MINOR,
        top_up_wh=TOP_UP_WH,
    )


def _pipe(
    source: psycopg.Connection[Any], target: psycopg.Connection[Any], select: str, into: str
) -> int:
    """COPY the rows of ``select`` into ``into`` (in the target's open transaction). Bytes only,
    in COPY's binary format: no number or timestamp is printed as text and parsed back."""
    table, columns = into.split(" ", 1)
    names = [name.strip() for name in columns.strip("() ").split(",")]
    types = dict(
        target.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,),
        ).fetchall()
    )
    # Binary COPY needs each value in the column's exact type: cast the generated ones.
    aliases = [f"c{k}" for k in range(len(names))]
    typed = ", ".join(f"{alias}::{types[name]}" for alias, name in zip(aliases, names, strict=True))
    query = f"SELECT {typed} FROM ({select}) AS g({', '.join(aliases)})"
    moved = 0
    with (
        source.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as out,
        target.cursor().copy(f"COPY {into} FROM STDIN (FORMAT binary, FREEZE)") as inp,
    ):
        for block in out:
            inp.write(block)
            moved += len(block)
    return moved


def _pg_url(database: str) -> str:
    return sa.make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _create_pg(database: str, riders: int, *, method: str, all_indexes: bool) -> dict[str, float]:
    """Make and fill the benchmark database; returns the seconds each step took."""
    timings: dict[str, float] = {}
    plain = _fresh_pg(database)
    rebuild = _strip_for_load(plain)
    _load_pg(plain, riders, method, timings)
    began = time.perf_counter()
    with psycopg.connect(plain) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        for statement in rebuild:
            if all_indexes or any(column in statement for column in _QUERY_INDEX_COLUMNS):
                conn.execute(statement)
        conn.commit()
    timings["indexes_s"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    _fill_accounts(plain, riders)
    timings["accounts_and_analyze_s"] = round(time.perf_counter() - began, 1)
    return timings


def _fresh_pg(database: str) -> str:
    """The benchmark database dropped, created and migrated; its psycopg URL."""
    admin_url = _plain(PG_ADMIN_URL)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    url = _pg_url(database)
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:  # the monthly partitions of the months generated
        since = datetime(JOINED.year, JOINED.month, 1, tzinfo=UTC)
        ensure_months(connection, datetime.now(UTC), since=PartitionMonth.of(since))
    engine.dispose()
    return _plain(url)


def _strip_for_load(plain: str) -> list[str]:
    """Drop what only slows a bulk load; returns the statements that rebuild the indexes."""
    with psycopg.connect(plain) as conn:
        keys = conn.execute(
            # A partitioned table's own keys: its partitions' copies go with them.
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE contype = 'f' AND conparentid = 0"
        ).fetchall()
        for table, name in keys:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        rebuild = []
        for table in _BIG:
            rebuild += _drop_indexes(conn, table)
        for table in (*_BIG, "accounts", "riders"):
            # A partitioned table (transfers) holds no rows itself: its partitions are set.
            parts = conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
                (table,),
            ).fetchall()
            for (name,) in parts or [(table,)]:
                conn.execute(f"ALTER TABLE {name} SET UNLOGGED")
        conn.execute(
            "INSERT INTO plans (id, kind, unit, currency, price_minor, price_units, granularity_s, "
            "time_hold_s, fee_minor, included_units, carry_over, prorate_first_cycle) "
            "VALUES ('energy', 'prepaid_energy', 'Wh', 'KRW', 300, 1000, 60, 3600, "
            "0, 0, true, true)"
        )
        conn.commit()
    return rebuild


def _drop_indexes(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Drop a table's primary key, unique constraints and indexes; returns how to rebuild them."""
    rebuild = []
    for name, kind in conn.execute(
        "SELECT conname, contype FROM pg_constraint WHERE conrelid = %s::regclass",
        (table,),
    ).fetchall():
        if kind in ("p", "u"):
            definition = conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
                (name,),
            ).fetchone()
            assert definition is not None
            rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition[0]}')
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, definition in conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
    ).fetchall():
        rebuild.append(definition.replace(" ON ONLY ", " ON "))  # a partitioned table's: all
        conn.execute(f'DROP INDEX "{name}"')
    return rebuild


def _copy_step(plain: str, timings: dict[str, float], step: str, select: str, into: str) -> None:
    began = time.perf_counter()
    with psycopg.connect(plain) as source, psycopg.connect(plain) as target:
        table = into.split()[0]
        target.execute(f"TRUNCATE {table}")  # FREEZE needs the table emptied in this transaction
        moved = _pipe(source, target, select, into)
        target.commit()
    timings[f"load_{step}_s"] = round(time.perf_counter() - began, 1)
    console.print(f"  {step}: {moved / 1e9:.2f} GB in {timings[f'load_{step}_s']} s")


def _insert_step(plain: str, timings: dict[str, float], step: str, select: str, into: str) -> None:
    began = time.perf_counter()
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {into} {select}")
        # Frozen and hinted, as COPY FREEZE (or a vacuumed production table) would be: else
        # the export's first read would pay for setting every row's hint bits.
        conn.execute(f"VACUUM (FREEZE) {into.split()[0]}")
    timings[f"load_{step}_s"] = round(time.perf_counter() - began, 1)
    console.print(f"  {step}: {timings[f'load_{step}_s']} s")


def _load_pg(plain: str, riders: int, method: str, timings: dict[str, float]) -> None:
    """The riders, their possessions and their transfers, generated in the server."""
    console.print(f"[bold]generating {riders:,} riders in PostgreSQL ({method})[/]")
    _copy_step(
        plain,
        timings,
        "riders",
        f"SELECT 'R' || i, 'energy', 'active', 1, TIMESTAMPTZ '{JOINED.isoformat()}' "
        f"FROM generate_series(1, {riders}) AS i",
        "riders (id, plan_id, status, vehicle_packs, created_at)",
    )
    # Transfers in one statement: the swaps' holds, posts and revenue, then the top-ups
    # appended through a UNION ALL (COPY FREEZE freezes one load into an emptied table).
    big = [
        ("possessions", _sql(_POSSESSIONS_SQL, riders), f"possessions ({_POSSESSION_COLUMNS})"),
        (
            "transfers",
            f"{_sql(_TRANSFERS_SQL, riders)} UNION ALL {_sql(_TOP_UPS_SQL, riders)}",
            f"transfers ({_TRANSFER_COLUMNS})",
        ),
    ]
    if method == "copy":
        for step, select, into in big:
            _copy_step(plain, timings, step, select, into)
    else:
        # Server-side, both tables at once: one backend per table, no rows through Python.
        with ThreadPoolExecutor(len(big)) as pool:
            for future in [pool.submit(_insert_step, plain, timings, *args) for args in big]:
                future.result()


def _fill_accounts(plain: str, riders: int) -> None:
    """The cached balances, as the services keep them (sums of the posted transfers), then ANALYZE."""
    with psycopg.connect(plain) as conn:
        conn.execute(
            f"""
            INSERT INTO accounts (id, ledger, code, owner, flags, debits_pending, debits_posted,
                                  credits_pending, credits_posted)
            SELECT 100 + 4 * substr(p.rider_id, 2)::bigint + k,
                   CASE WHEN k IN ({ALLOWANCE}, {OVERDRAWN}) THEN 'Wh' ELSE 'KRW' END,
                   (ARRAY['allowance', 'overdrawn', 'prepaid', 'receivable'])[k + 1],
                   p.rider_id, CASE WHEN k IN ({ALLOWANCE}, {PREPAID}) THEN 1 ELSE 2 END, 0,
                   CASE k WHEN {ALLOWANCE} THEN p.used WHEN {PREPAID} THEN p.earned ELSE 0 END, 0,
                   CASE k WHEN {ALLOWANCE} THEN {2 * TOP_UP_WH}
                          WHEN {PREPAID} THEN {2 * TOP_UP_MINOR} ELSE 0 END
            FROM (SELECT rider_id, sum(usage_units) AS used, sum(usage_units * 3 / 10) AS earned
                  FROM possessions GROUP BY rider_id) AS p
            CROSS JOIN generate_series(0, 3) AS k
            """
        )
        totals = conn.execute(
            "SELECT sum(usage_units), sum(usage_units * 3 / 10) FROM possessions"
        ).fetchone()
        assert totals is not None
        used, earned = int(totals[0]), int(totals[1])
        operator = [
            (CASH, "KRW", "cash", 2 * TOP_UP_MINOR * riders, 0),
            (REVENUE, "KRW", "revenue", 0, earned),
            (ISSUED, "Wh", "allowance_issued", 2 * TOP_UP_WH * riders, 0),
            (CONSUMED, "Wh", "allowance_consumed", 0, used),
        ]
        for account_id, ledger, code, debits, credits in operator:
            conn.execute(
                "INSERT INTO accounts VALUES (%s, %s, %s, '', 0, 0, %s, 0, %s)",
                (account_id, ledger, code, debits, credits),
            )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'), 100 + 4 * %s + 4)", (riders,)
        )
        conn.commit()
        conn.execute("ANALYZE")


# -- SQLite: the same rows, made in Python --------------------------------------------------------


def _sqlite_rows(riders: int) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    def ts(at: datetime) -> str:
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    yield (
        "INSERT INTO plans (id, kind, unit, currency, price_minor, price_units, granularity_s, "
        "time_hold_s, fee_minor, included_units, carry_over, prorate_first_cycle) "
        "VALUES ('energy', 'prepaid_energy', 'Wh', 'KRW', 300, 1000, 60, 3600, "
        "0, 0, 1, 1)",
        [()],
    )
    yield (
        "INSERT INTO riders (id, plan_id, status, vehicle_packs, created_at) "
        "VALUES (?, 'energy', 'active', 1, ?)",
        [(f"R{i}", ts(JOINED)) for i in range(1, riders + 1)],
    )
    accounts: list[tuple[Any, ...]] = []
    used_all = earned_all = 0
    for i in range(1, riders + 1):
        rider = f"R{i}"
        possessions: list[tuple[Any, ...]] = []
        transfers: list[tuple[Any, ...]] = []
        for k in range(4):
            money = k % 2 == 0
            at = OPENED if k < 2 else MONTH.start + timedelta(seconds=i % 86400)
            transfers.append(
                (
                    1_000_000_000_000 + i * 4 + k,
                    f"topup:pay-{i}-{k // 2}:{'money' if money else 'units'}",
                    "KRW" if money else "Wh",
                    CASH if money else ISSUED,
                    100 + 4 * i + (PREPAID if money else ALLOWANCE),
                    TOP_UP_MINOR if money else TOP_UP_WH,
                    "top_up",
                    0,
                    None,
                    rider,
                    "payments",
                    "",
                    ts(at),
                )
            )
        used = earned = 0
        for j in range(swaps_of(i)):
            swap = i * 64 + j
            usage, revenue = usage_wh(i, j), revenue_minor(i, j)
            used, earned = used + usage, earned + revenue
            out = MONTH.start + timedelta(seconds=j * MONTH_S // swaps_of(i) + i % 3600)
            back = out + timedelta(seconds=3600 + swap % 7200)
            serial, station = f"B{swap % 400000}", f"ST{swap % 2000}"
            possessions.append(
                (
                    swap,
                    rider,
                    serial,
                    "energy",
                    swap * 2,
                    station,
                    1 + swap % 12,
                    ts(out),
                    10000,
                    9500,
                    HOLD_WH,
                    swap * 3,
                    swap * 2 + 1,
                    f"ST{(swap + 7) % 2000}",
                    1 + (swap + 5) % 12,
                    ts(back),
                    10000 - usage * 10000 // 1615,
                    9500,
                    usage,
                    None,
                )
            )
            base = f"{station}:req-{swap}:{serial}:BatteryIn"
            allowance, prepaid = 100 + 4 * i + ALLOWANCE, 100 + 4 * i + PREPAID
            transfers += [
                (swap * 3, f"offer:{swap}:{serial}:hold", "Wh", allowance, CONSUMED, HOLD_WH,
                 "hold", 1, None, rider, "system", "", ts(out)),
                (swap * 3 + 1, f"{base}:post", "Wh", allowance, CONSUMED, usage,
                 "usage", 2, swap * 3, rider, "system", "", ts(back)),
                (swap * 3 + 2, f"{base}:revenue", "KRW", prepaid, REVENUE, revenue,
                 "revenue", 0, None, rider, "system", "", ts(back)),
            ]  # fmt: skip
        used_all, earned_all = used_all + used, earned_all + earned
        for k, (ledger, code, flags) in enumerate(
            (
                ("Wh", "allowance", 1),
                ("Wh", "overdrawn", 2),
                ("KRW", "prepaid", 1),
                ("KRW", "receivable", 2),
            )
        ):
            debits = {ALLOWANCE: used, PREPAID: earned}.get(k, 0)
            credits = {ALLOWANCE: 2 * TOP_UP_WH, PREPAID: 2 * TOP_UP_MINOR}.get(k, 0)
            accounts.append((100 + 4 * i + k, ledger, code, rider, flags, 0, debits, 0, credits))
        yield "INSERT INTO possessions VALUES (" + ",".join("?" * 20) + ")", possessions
        yield "INSERT INTO transfers VALUES (" + ",".join("?" * 13) + ")", transfers
    accounts += [
        (CASH, "KRW", "cash", "", 0, 0, 2 * TOP_UP_MINOR * riders, 0, 0),
        (REVENUE, "KRW", "revenue", "", 0, 0, 0, 0, earned_all),
        (ISSUED, "Wh", "allowance_issued", "", 0, 0, 2 * TOP_UP_WH * riders, 0, 0),
        (CONSUMED, "Wh", "allowance_consumed", "", 0, 0, 0, 0, used_all),
    ]
    yield "INSERT INTO accounts VALUES (" + ",".join("?" * 9) + ")", accounts


def _create_sqlite(path: Path, riders: int) -> dict[str, float]:
    import sqlite3

    began = time.perf_counter()
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA synchronous = OFF")  # the load only; the export reads as swapd does
    with conn:
        for statement, rows in _sqlite_rows(riders):
            conn.executemany(statement, rows)
    conn.execute("ANALYZE")
    conn.close()
    return {"load_s": round(time.perf_counter() - began, 1)}


# -- the measurement ---------------------------------------------------------------------------


def _measure(url: str, riders: int, prefix: str, samples: int) -> dict[str, float]:
    want = expected(riders)
    db = Database(make_engine(url))  # no migration check: the load dropped the foreign keys
    try:
        with tempfile.TemporaryDirectory(prefix="swapd-bench-statements-") as scratch:
            path = Path(scratch) / "statements.csv"
            console.print(f"[bold]{prefix}: exporting {MONTH} for {riders:,} riders[/]")
            began = time.perf_counter()
            summary = statements.export_csv(db, MONTH, path)
            export_s = time.perf_counter() - began
            size_bytes = path.stat().st_size
        totals = summary.totals
        problems = []
        checks = {
            "riders": (summary.riders, want.riders),
            "packs_returned_count": (totals["packs_returned_count"], want.swaps),
            "used_units": (totals["used_units"], want.used_wh),
            "charged_units": (totals["charged_units"], want.used_wh),
            "usage_revenue_minor": (totals["usage_revenue_minor"], want.revenue_minor),
            "topup_minor": (totals["topup_minor"], TOP_UP_MINOR * riders),
            "opening_allowance_units": (totals["opening_allowance_units"], TOP_UP_WH * riders),
            "closing_allowance_units": (
                totals["closing_allowance_units"],
                2 * TOP_UP_WH * riders - want.used_wh,
            ),
        }
        for name, (got, expect) in checks.items():
            if got != expect:
                problems.append(f"{name}: {got} != {expect}")
        if problems:
            raise SystemExit(f"{prefix}: the export does not add up: {'; '.join(problems)}")
        console.print(
            f"  {summary.riders:,} rows, {size_bytes / 1e6:.0f} MB in {export_s:.1f} s; totals check"
        )
        latencies = []
        for i in random.Random(7).sample(range(1, riders + 1), samples):
            began = time.perf_counter()
            statements.statement(db, f"R{i}", MONTH)
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        db.dispose()
    return {
        f"{prefix}_riders": riders,
        f"{prefix}_swaps": want.swaps,
        f"{prefix}_export_s": round(export_s, 1),
        f"{prefix}_export_rows_per_s": round(riders / export_s),
        f"{prefix}_csv_bytes": size_bytes,
        f"{prefix}_statement_p50_ms": round(statistics.median(latencies), 1),
        f"{prefix}_statement_max_ms": round(max(latencies), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.statements", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (< 60 s)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_RIDERS} riders a database: every step checked, no number worth reading (tests)",
    )
    parser.add_argument("--riders", type=int, help="PostgreSQL riders (default 1,000,000)")
    parser.add_argument("--sqlite-riders", type=int, help="SQLite riders (default 100,000)")
    parser.add_argument("--databases", default="postgresql,sqlite", help="comma-separated")
    parser.add_argument(
        "--load",
        choices=("insert", "copy"),
        default="insert",
        help="PostgreSQL rows: INSERT .. SELECT in the server, or COPY piped through psycopg",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--reuse", metavar="DATABASE", help="export from a database kept before")
    parser.add_argument("--all-indexes", action="store_true", help="rebuild every index after the load")
    args = parser.parse_args(argv)
    small = SMOKE_RIDERS if args.smoke else QUICK_RIDERS if args.quick else None
    pg_riders = args.riders or small or FULL_RIDERS
    sqlite_riders = args.sqlite_riders or small or SQLITE_FULL_RIDERS
    samples = SMOKE_STATEMENT_SAMPLES if args.smoke else STATEMENT_SAMPLES
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    metrics: dict[str, Any] = {}
    notes = []
    began = time.perf_counter()
    if "postgresql" in kinds:
        if not pg_available():
            notes.append("PostgreSQL unreachable: not measured")
        else:
            database = args.reuse or f"{DATABASE}_{os.getpid()}"
            try:
                if not args.reuse:
                    metrics |= {
                        f"pg_{k}": v
                        for k, v in _create_pg(
                            database, pg_riders, method=args.load, all_indexes=args.all_indexes
                        ).items()
                    }
                metrics |= _measure(_pg_url(database), pg_riders, "pg", samples)
            finally:
                if args.keep:
                    console.print(f"kept database {database} (--reuse {database})")
                else:
                    with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
                        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    if "sqlite" in kinds:
        with tempfile.TemporaryDirectory(prefix="swapd-bench-statements-") as scratch:
            path = Path(scratch) / "swapd.db"
            console.print(f"[bold]generating {sqlite_riders:,} riders in SQLite[/]")
            metrics |= {f"sqlite_{k}": v for k, v in _create_sqlite(path, sqlite_riders).items()}
            metrics |= _measure(f"sqlite:///{path}", sqlite_riders, "sqlite", samples)
    metrics["total_s"] = round(time.perf_counter() - began, 1)
    metrics |= load_average()
    targets = {"pg_export_s": f"<= {TARGET_EXPORT_S:g}"} if pg_riders == FULL_RIDERS else {}
    notes.append(
        "export = swapd.services.statements.export_csv of one month (one query, streamed to CSV); "
        "PostgreSQL data: 3 transfers + 1 possession per swap, 2 top-ups and 4 accounts per rider; "
        f"rows made by {args.load}; tables UNLOGGED, foreign keys dropped, only the timestamp "
        "and rider indexes rebuilt"
        + (" (all indexes rebuilt)" if args.all_indexes else "")
        + "; no packs or swaps rows (the statement query does not read them)"
    )
    emit(NAME, metrics, targets, "; ".join(notes))


if __name__ == "__main__":
    main()
