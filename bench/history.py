"""The hot paths on a large history: decision and statement times on an empty PostgreSQL database
and on one holding ``--swaps`` past swaps (default 100,000,000: some seven weeks of a network of
2,000,000 swaps a day), and the ratio of the two.

The history is made by PostgreSQL itself from ``generate_series`` (no API, no Python per row),
spread evenly over ``--months`` calendar months before the current one: riders (one per 100
swaps), stations (one per 5,000 swaps) with stocked slots, packs, and per swap what the services
write for it: the swap, its closed possession, three transfers (the hold at hand-over, its post at
the return, the revenue) with their ``transfer_keys`` rows, and the BatteryIn and BatteryOut
station events with their ``station_event_keys`` rows; each rider has a top-up before the first
month. Not made: offers of past swaps (read by swap id only) and the cached balances of the
generated accounts (nothing here reads them; ``swapd ledger check`` would report them). To load
fast, the big tables' indexes and constraints are dropped, the rows inserted, then all of them
made again, and the tables vacuumed and analysed, as a production database would be.

Then, on each database: a bench station and riders are provisioned through the services, and
``--decisions`` battery-as-key swaps are made in process through ``swapd.services.swaps``
(Authorize, BatteryIn, BatteryOut, one caller, no WebSocket) in the current month; their p50 is
the decision time (Authorize alone and the whole swap). The statement: one rider's statement of
the current month (``statements.statement``), p50 of 20, and the full export of the current
month (``statements.export_csv``; on the filled database that is every generated rider's row,
so its ratio measures the rider count, not the history: shown, not a target). Last, the hot
path's statements are EXPLAINed on the filled database: each reads one unique index and one
month's partition.

Run: ``uv run python -m bench.history [--swaps N | --quick | --smoke] [--months M]
[--decisions K] [--keep] [--reuse DATABASE]``: ``--swaps 10000000`` for a shorter run,
``--quick`` 1,000,000, ``--smoke`` for the tests; ``--keep`` leaves the filled database as
``swapd_bench_history_kept`` and ``--reuse swapd_bench_history_kept`` measures it again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.progress import Progress

from bench._common import PG_ADMIN_URL, console, emit, load_average, pg_available
from bench.swaps import Size, provision
from swapd.domain.riders import IdToken, TokenType
from swapd.services import statements, swaps
from swapd.services.statements import Month as StatementMonth
from swapd.services.swaps import BatteryReading
from swapd.store import swap_rows
from swapd.store.database import Database
from swapd.store.engine import make_engine, upgrade
from swapd.store.ledger_book import _TRANSFER_BY_ID, _TRANSFER_BY_KEY
from swapd.store.partitions import Month, ensure_months
from swapd.store.prepared import Prepared

NAME = "history"
FULL_SWAPS = 100_000_000
QUICK_SWAPS = 1_000_000
SMOKE_SWAPS = 20_000
KEPT = "swapd_bench_history_kept"  # the database --keep leaves, for --reuse
DECISIONS = 300
SMOKE_DECISIONS = 10
STATEMENT_SAMPLES = 20
ROUNDS = 10  # the swaps alternate between the databases in this many rounds
MONTHS = 3
TARGET_RATIO = 1.5
SWAPS_PER_RIDER = 100
SWAPS_PER_STATION = 5_000
STOCK_PER_STATION = 10
CHUNK_SWAPS = 1_000_000  # swaps inserted per statement (a progress step)
HOLD_WH = 1_615
# Generated ids start here, so the ids the services allocate later (from 1) never meet them.
ID_BASE = 1_000_000_000_000
ACCOUNT_BASE = 1_000_000_000
BIG_TABLES = (
    "transfers",
    "transfer_keys",
    "station_events",
    "station_event_keys",
    "swaps",
    "possessions",
)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def _fresh(database: str) -> str:
    with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    url = _url(database)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _drop(database: str) -> None:
    with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


# -- the history, made by PostgreSQL ----------------------------------------------------------------

_SHAPE = """
SELECT g, 1 + g % {riders} AS r, 1 + g % {stations} AS s,
       TIMESTAMPTZ '{start}' + make_interval(secs => (g - 1) * {span_s}::float8 / {swaps}) AS at,
       800 + g % 800 AS usage
FROM generate_series({first}, {last}) AS g
"""

_STEPS: dict[str, str] = {
    "swaps": """
INSERT INTO swaps (id, station_id, request_id, rider_id, token_type, token_value, state, reason,
                   created_at, updated_at)
SELECT {id0} + g, 'HS' || s, 'h' || g, 'HR' || r, 'BatterySerial', 'HP' || r, 'completed', NULL,
       at - interval '2 minutes', at
FROM ({shape}) AS w
""",
    "possessions": """
INSERT INTO possessions (id, rider_id, pack_serial, plan_id, swap_out_id, station_out, slot_out,
                         at_out, soc_out_bp, soh_out_bp, hold_units, hold_transfer_id, swap_in_id,
                         station_in, slot_in, at_in, soc_in_bp, soh_in_bp, usage_units, anomaly)
SELECT {id0} + g, 'HR' || r, 'HP' || r, 'hist-energy', {id0} + g, 'HS' || s, 1 + g % 12,
       at - interval '20 hours', 10000, 9500, {hold}, {id0} + 3 * g, {id0} + g + 1,
       'HS' || (1 + (g + 7) % {stations}), 1 + (g + 5) % 12, at, 10000 - usage * 10000 / {hold},
       9500, usage, NULL
FROM ({shape}) AS w
""",
    "transfer_keys": """
INSERT INTO transfer_keys (id, key, resolves_id, created_at)
SELECT {id0} + 3 * g + k, 'HS' || s || ':h' || g || ':HP' || r || CASE k WHEN 0 THEN ':hold'
         WHEN 1 THEN ':BatteryIn:post' ELSE ':BatteryIn:revenue' END,
       CASE k WHEN 1 THEN {id0} + 3 * g END,
       CASE k WHEN 0 THEN at - interval '20 hours' ELSE at END
FROM ({shape}) AS w CROSS JOIN generate_series(0, 2) AS k
""",
    "transfers": """
INSERT INTO transfers (id, key, ledger, debit_account_id, credit_account_id, amount, code, flags,
                       pending_id, rider_id, actor, memo, created_at)
SELECT {id0} + 3 * g + k, 'HS' || s || ':h' || g || ':HP' || r || CASE k WHEN 0 THEN ':hold'
         WHEN 1 THEN ':BatteryIn:post' ELSE ':BatteryIn:revenue' END,
       CASE k WHEN 2 THEN 'KRW' ELSE 'Wh' END,
       {account0} + 2 * (r + 2) + CASE k WHEN 2 THEN 1 ELSE 0 END,
       CASE k WHEN 2 THEN {account0} + 4 ELSE {account0} + 2 END,
       CASE k WHEN 0 THEN {hold} WHEN 1 THEN usage ELSE usage * 3 / 10 END,
       CASE k WHEN 0 THEN 'hold' WHEN 1 THEN 'usage' ELSE 'revenue' END,
       CASE k WHEN 0 THEN 1 WHEN 1 THEN 2 ELSE 0 END,
       CASE k WHEN 1 THEN {id0} + 3 * g END, 'HR' || r, 'station', '',
       CASE k WHEN 0 THEN at - interval '20 hours' ELSE at END
FROM ({shape}) AS w CROSS JOIN generate_series(0, 2) AS k
""",
    "station_event_keys": """
INSERT INTO station_event_keys (station_id, request_id, event_type, received_at)
SELECT 'HS' || s, 'h' || g, e, at + make_interval(secs => CASE e WHEN 'BatteryIn' THEN 0 ELSE 9 END)
FROM ({shape}) AS w CROSS JOIN unnest(ARRAY['BatteryIn', 'BatteryOut']) AS e
""",
    "station_events": """
INSERT INTO station_events (station_id, request_id, event_type, received_at, result)
SELECT 'HS' || s, 'h' || g, e, at + make_interval(secs => CASE e WHEN 'BatteryIn' THEN 0 ELSE 9 END),
       json_build_object('swap_id', {id0} + g, 'event_type', e, 'packs',
         json_build_array(json_build_object('serial', 'HP' || r, 'slot_no', 1 + g % 12)))
FROM ({shape}) AS w CROSS JOIN unnest(ARRAY['BatteryIn', 'BatteryOut']) AS e
""",
}


def _reference(conn: psycopg.Connection[Any], riders: int, stations: int, joined: str) -> None:
    """Riders, their accounts and top-ups, stations, slots and packs."""
    conn.execute("INSERT INTO pack_models (code, nominal_wh) VALUES ('HIST', 1700)")
    conn.execute(
        "INSERT INTO plans (id, kind, unit, currency, price_minor, price_units, granularity_s, "
        "time_hold_s, fee_minor, included_units, carry_over, prorate_first_cycle, listed, "
        "offline_swaps_max) VALUES ('hist-energy', 'prepaid_energy', 'Wh', 'KRW', 300, 1000, 60, "
        "0, 0, 0, false, false, true, 1)"
    )
    conn.execute(
        "INSERT INTO riders (id, plan_id, status, vehicle_packs, created_at) "
        f"SELECT 'HR' || i, 'hist-energy', 'active', 1, TIMESTAMPTZ '{joined}' "
        f"FROM generate_series(1, {riders}) AS i"
    )
    a0 = ACCOUNT_BASE
    # Operator accounts: a0 + 2 (consumed, Wh), + 3 (issued, Wh), + 4 (revenue, KRW), + 5 (cash).
    conn.execute(
        "INSERT INTO accounts (id, ledger, code, owner, flags, debits_pending, debits_posted, "
        "credits_pending, credits_posted) VALUES "
        f"({a0 + 2}, 'Wh', 'allowance_consumed', '', 0, 0, 0, 0, 0), "
        f"({a0 + 3}, 'Wh', 'allowance_issued', '', 0, 0, 0, 0, 0), "
        f"({a0 + 4}, 'KRW', 'revenue', '', 0, 0, 0, 0, 0), "
        f"({a0 + 5}, 'KRW', 'cash', '', 0, 0, 0, 0, 0) ON CONFLICT DO NOTHING"
    )
    # Rider r: allowance a0 + 2r (Wh), prepaid a0 + 2r + 1 (KRW); r >= 3 keeps clear of the above.
    conn.execute(
        "INSERT INTO accounts (id, ledger, code, owner, flags, debits_pending, debits_posted, "
        "credits_pending, credits_posted) "
        f"SELECT {a0} + 2 * (r + 2) + k, CASE k WHEN 0 THEN 'Wh' ELSE 'KRW' END, "
        "CASE k WHEN 0 THEN 'allowance' ELSE 'prepaid' END, 'HR' || r, 1, 0, 0, 0, 0 "
        f"FROM generate_series(1, {riders}) AS r CROSS JOIN generate_series(0, 1) AS k"
    )
    top_up = (
        f"SELECT {ID_BASE // 2} + 2 * r + k, "
        "'topup:hist-' || r || CASE k WHEN 0 THEN ':units' ELSE ':money' END, "
        f"CASE k WHEN 0 THEN 'Wh' ELSE 'KRW' END, CASE k WHEN 0 THEN {a0} + 3 ELSE {a0} + 5 END, "
        f"{a0} + 2 * (r + 2) + k, CASE k WHEN 0 THEN 33333000 ELSE 10000000 END, 'top_up', 0, "
        f"NULL::bigint, 'HR' || r, 'payments', '', TIMESTAMPTZ '{joined}' "
        f"FROM generate_series(1, {riders}) AS r CROSS JOIN generate_series(0, 1) AS k"
    )
    conn.execute(
        "INSERT INTO transfers (id, key, ledger, debit_account_id, credit_account_id, amount, "
        f"code, flags, pending_id, rider_id, actor, memo, created_at) {top_up}"
    )
    conn.execute(
        "INSERT INTO transfer_keys (id, key, resolves_id, created_at) "
        f"SELECT id, key, NULL, created_at FROM ({top_up}) AS u(id, key, l, d, c, a, co, f, p, r, "
        "ac, m, created_at)"
    )
    conn.execute(
        "INSERT INTO stations (id, slot_count, enabled, charged_soc_bp, min_soh_bp, created_at) "
        f"SELECT 'HS' || s, 12, true, 9000, 7000, TIMESTAMPTZ '{joined}' "
        f"FROM generate_series(1, {stations}) AS s"
    )
    conn.execute(
        "INSERT INTO packs (serial, model_code, soh_bp, soc_bp, cycle_count, status, station_id, "
        "slot_no, rider_id, reserved_swap_id, updated_at) "
        f"SELECT 'HP' || r, 'HIST', 9500, 5000, 100, 'with_rider', NULL, NULL, 'HR' || r, NULL, "
        f"TIMESTAMPTZ '{joined}' FROM generate_series(1, {riders}) AS r"
    )
    conn.execute(
        "INSERT INTO packs (serial, model_code, soh_bp, soc_bp, cycle_count, status, station_id, "
        "slot_no, rider_id, reserved_swap_id, updated_at) "
        "SELECT 'HQ' || s || '-' || k, 'HIST', 9500, 10000, 100, 'in_slot', 'HS' || s, k, NULL, "
        f"NULL, TIMESTAMPTZ '{joined}' FROM generate_series(1, {stations}) AS s "
        f"CROSS JOIN generate_series(1, {STOCK_PER_STATION}) AS k"
    )
    conn.execute(
        "INSERT INTO slots (station_id, slot_no, state, pack_serial, operative) "
        "SELECT 'HS' || s, k, CASE WHEN k <= "
        f"{STOCK_PER_STATION} THEN 'occupied' ELSE 'available' END, "
        f"CASE WHEN k <= {STOCK_PER_STATION} THEN 'HQ' || s || '-' || k END, true "
        f"FROM generate_series(1, {stations}) AS s CROSS JOIN generate_series(1, 12) AS k"
    )


def _strip(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the big tables' indexes and constraints (but NOT NULL and CHECK); returns the
    statements that make them again, constraints first."""
    again: list[str] = []
    last: list[str] = []  # other tables' foreign keys to these: made after their keys
    for table, name, definition in conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = ANY(%s::regclass[]) AND conparentid = 0 "
        "AND NOT conrelid = ANY(%s::regclass[])",
        (list(BIG_TABLES), list(BIG_TABLES)),
    ).fetchall():
        conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        last.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for table in BIG_TABLES:
        rows = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f') AND conparentid = 0 "
            "ORDER BY contype DESC",
            (table,),
        ).fetchall()
        for name, definition, _ in rows:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            again.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for table in BIG_TABLES:
        rows = conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass",
            (table,),
        ).fetchall()
        for name, definition in rows:
            conn.execute(f"DROP INDEX {name}")
            again.append(definition.replace(" ON ONLY ", " ON "))
    conn.commit()
    return again + last


def fill(url: str, swaps: int, months: int, progress: Progress) -> dict[str, float]:
    """Make the history in the database at ``url``; returns the seconds of each step."""
    timings: dict[str, float] = {}
    this_month = Month.of(datetime.now(UTC))
    first = this_month
    for _ in range(months):
        first = Month(first.year - (first.month == 1), 12 if first.month == 1 else first.month - 1)
    start, end = first.start, this_month.start
    span_s = int((end - start).total_seconds())
    riders = max(1, swaps // SWAPS_PER_RIDER)
    stations = max(2, swaps // SWAPS_PER_STATION)
    engine = make_engine(url)
    before = Month(first.year - (first.month == 1), 12 if first.month == 1 else first.month - 1)
    with engine.begin() as connection:  # the month before: the top-ups, the first holds
        ensure_months(connection, datetime.now(UTC), since=before)
    engine.dispose()
    began = time.perf_counter()
    with psycopg.connect(_plain(url)) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        joined = (start - timedelta(days=1)).isoformat()
        _reference(conn, riders, stations, joined)
        conn.commit()
        again = _strip(conn)
        timings["reference_s"] = round(time.perf_counter() - began, 1)
        task = progress.add_task("history", total=swaps * len(_STEPS))
        for table, template in _STEPS.items():
            began = time.perf_counter()
            for low in range(1, swaps + 1, CHUNK_SWAPS):
                high = min(swaps, low + CHUNK_SWAPS - 1)
                shape = _SHAPE.format(
                    riders=riders,
                    stations=stations,
                    start=start.isoformat(),
                    span_s=span_s,
                    swaps=swaps,
                    first=low,
                    last=high,
                )
                conn.execute(
                    template.format(
                        shape=shape, id0=ID_BASE, hold=HOLD_WH, stations=stations, account0=ACCOUNT_BASE
                    )
                )
                conn.commit()
                progress.update(task, advance=high - low + 1, description=f"history: {table}")
            timings[f"{table}_s"] = round(time.perf_counter() - began, 1)
        progress.remove_task(task)
        began = time.perf_counter()
        task = progress.add_task("indexes and constraints", total=len(again))
        for statement in again:
            conn.execute(statement)
            conn.commit()
            progress.advance(task)
        progress.remove_task(task)
        timings["indexes_s"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    timings["vacuum_analyze_s"] = round(time.perf_counter() - began, 1)
    return timings


# -- measurements --------------------------------------------------------------------------------


class _Swapper:
    """Battery-as-key swaps at one bench station, through the services; keeps their times."""

    def __init__(self, db: Database, progress: Progress) -> None:
        self.db = db
        [plan] = provision(db, Size(1, 1, 3, 0, 0, 1), progress)
        self.station_id = plan.station_id
        self.rider_id = "BR0000-0"
        self.slots, self.riders = dict(plan.slots), deque(plan.riders)
        self.request = 0
        self.authorize_s: list[float] = []
        self.swap_s: list[float] = []

    def run(self, count: int) -> None:
        db, station_id = self.db, self.station_id
        for _ in range(count):
            self.request += 1
            serial = self.riders.popleft()
            token = IdToken(TokenType.BATTERY_SERIAL, serial)
            started = time.perf_counter()
            offer = swaps.authorize(db, station_id, token)
            authorized = time.perf_counter()
            if not offer.accepted or not offer.offered:
                raise RuntimeError(f"refused: {offer.text}")
            offered = offer.offered_slots[0]
            taken = self.slots[offered]
            empty = next(s for s, p in sorted(self.slots.items()) if p is None)
            returned = BatteryReading.parse(empty, serial, 95, 100)
            request_id = f"b{self.request}"
            swaps.battery_in(db, station_id, request_id, [returned], token=token)
            self.slots[empty] = serial
            assert taken is not None
            handed = BatteryReading.parse(offered, taken, 100, 100)
            swaps.battery_out(db, station_id, request_id, [handed], token=token)
            self.swap_s.append(time.perf_counter() - started)
            self.authorize_s.append(authorized - started)
            self.slots[offered], self.riders = None, deque([taken])


def _statement_s(swapper: _Swapper, month: StatementMonth) -> float:
    began = time.perf_counter()
    statements.statement(swapper.db, swapper.rider_id, month)
    return time.perf_counter() - began


def _export(swapper: _Swapper, month: StatementMonth) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="swapd-bench-history-") as scratch:
        began = time.perf_counter()
        summary = statements.export_csv(swapper.db, month, Path(scratch) / "month.csv")
        return time.perf_counter() - began, summary.riders


def measure(urls: dict[str, str], decisions: int, progress: Progress) -> dict[str, dict[str, float]]:
    """The same work on each database, in alternating rounds, so that the machine's other load
    (it is shared) falls on each alike."""
    swappers = {name: _Swapper(Database(make_engine(url)), progress) for name, url in urls.items()}
    current = Month.of(datetime.now(UTC))
    month = StatementMonth(current.year, current.month)
    statement_s: dict[str, list[float]] = {name: [] for name in urls}
    export: dict[str, tuple[float, int]] = {}
    try:
        task = progress.add_task("swaps", total=decisions * len(urls))
        per_round = max(1, decisions // ROUNDS)
        for _ in range(0, decisions, per_round):
            for swapper in swappers.values():
                swapper.run(per_round)
                progress.advance(task, per_round)
        progress.remove_task(task)
        for _ in range(STATEMENT_SAMPLES):
            for name, swapper in swappers.items():
                statement_s[name].append(_statement_s(swapper, month))
        for name, swapper in swappers.items():
            export[name] = _export(swapper, month)
    finally:
        for swapper in swappers.values():
            swapper.db.dispose()
    return {
        name: {
            "authorize_p50_ms": round(statistics.median(swapper.authorize_s) * 1000, 3),
            "swap_p50_ms": round(statistics.median(swapper.swap_s) * 1000, 3),
            "statement_p50_ms": round(statistics.median(statement_s[name]) * 1000, 3),
            "export_s": round(export[name][0], 3),
            "export_rows": export[name][1],
        }
        for name, swapper in swappers.items()
    }


# -- EXPLAIN ---------------------------------------------------------------------------------------


def _hot_path_queries() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(name, SQL, parameters) of the hot path's reads of the partitioned tables."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    picks: dict[str, tuple[Prepared, dict[str, Any]]] = {
        "transfer by key": (_TRANSFER_BY_KEY, {"transfer_key": "HS2:h1:HP2:hold"}),
        "transfer by id": (_TRANSFER_BY_ID, {"transfer_id": ID_BASE + 3}),
        "station event": (
            swap_rows.STATION_EVENT,
            {"station_id": "HS2", "request_id": "h1", "event_type": "BatteryIn"},
        ),
        "open offers of a rider": (swap_rows.OFFERED_TO_RIDER, {"rider_id": "HR2"}),
    }
    for name, (prepared, parameters) in picks.items():
        compiled = prepared.statement.compile(dialect=dialect)
        yield name, str(compiled), parameters


def explain(url: str) -> dict[str, list[str]]:
    plans: dict[str, list[str]] = {}
    with psycopg.connect(_plain(url)) as conn:
        for name, sql, parameters in _hot_path_queries():
            rows = conn.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", parameters
            )
            plans[name] = [row[0] for row in rows]
    return plans


def _forget_bench_rows(url: str) -> None:
    """Take out what an earlier measurement added to a kept database (the bench station, its
    riders and packs, their swaps and transfers: every id below the generated ranges), so that
    ``--reuse`` measures the history as it was made."""
    bench_station, bench_rider = "station_id LIKE 'BST%'", "rider_id LIKE 'BR%'"
    statements_ = [
        f"DELETE FROM swap_offers WHERE swap_id < {ID_BASE}",
        f"DELETE FROM possessions WHERE id < {ID_BASE}",
        f"DELETE FROM swaps WHERE id < {ID_BASE}",
        f"DELETE FROM transfers WHERE id < {ID_BASE // 2}",
        f"DELETE FROM transfer_keys WHERE id < {ID_BASE // 2}",
        f"DELETE FROM station_events WHERE {bench_station}",
        f"DELETE FROM station_event_keys WHERE {bench_station}",
        f"DELETE FROM payments WHERE {bench_rider}",
        f"DELETE FROM id_tokens WHERE {bench_rider}",
        f"DELETE FROM subscriptions WHERE {bench_rider}",
        f"DELETE FROM slots WHERE {bench_station}",
        "DELETE FROM packs WHERE serial LIKE 'BP%'",
        f"DELETE FROM accounts WHERE id < {ACCOUNT_BASE}",
        "DELETE FROM riders WHERE id LIKE 'BR%'",
        *(
            f"DELETE FROM {table} WHERE {bench_station}"
            for table in (
                "station_commands",
                "station_notifications",
                "station_variables",
                "station_certificates",
                "local_list_entries",
                "local_lists",
                "offline_events",
            )
        ),
        "DELETE FROM stations WHERE id LIKE 'BST%'",
        "DELETE FROM alerts",
        "DELETE FROM audit_log",
        "DELETE FROM plans WHERE id = 'bench-energy'",
        "DELETE FROM pack_models WHERE code = 'BENCH'",
    ]
    with psycopg.connect(_plain(url)) as conn:
        for statement in statements_:
            conn.execute(statement)


def _database_bytes(url: str) -> int:
    with psycopg.connect(_plain(url)) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=FULL_SWAPS)
    parser.add_argument("--months", type=int, default=MONTHS)
    parser.add_argument("--decisions", type=int, default=DECISIONS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SWAPS:,} swaps")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_SWAPS:,} swaps (tests)")
    parser.add_argument("--keep", action="store_true", help="keep the filled database")
    parser.add_argument("--reuse", help="a database filled by an earlier --keep run")
    args = parser.parse_args(argv)
    if not pg_available():
        raise SystemExit("bench.history needs PostgreSQL (SWAPD_BENCH_PG_URL or the test server)")
    swaps_n = SMOKE_SWAPS if args.smoke else QUICK_SWAPS if args.quick else args.swaps
    decisions = SMOKE_DECISIONS if args.smoke else args.decisions
    metrics: dict[str, Any] = dict(load_average())
    # Names of this run's own (runs at the same time stay apart); --keep's is fixed, for --reuse.
    empty_db = f"swapd_bench_history_empty_{os.getpid()}"
    filled_db = args.reuse or (KEPT if args.keep else f"swapd_bench_history_{os.getpid()}")
    with Progress(console=console, transient=True) as progress:
        empty_url = _fresh(empty_db)
        try:
            if args.reuse:
                filled_url = _url(filled_db)
                _forget_bench_rows(filled_url)
            else:
                filled_url = _fresh(filled_db)
                began = time.perf_counter()
                timings = fill(filled_url, swaps_n, args.months, progress)
                metrics["fill_s"] = round(time.perf_counter() - began, 1)
                metrics.update({f"fill_{k}": v for k, v in timings.items()})
            size = _database_bytes(filled_url)
            results = measure({"empty": empty_url, "filled": filled_url}, decisions, progress)
            plans = explain(filled_url)
        finally:
            _drop(empty_db)
            if not args.keep and not args.reuse:
                _drop(filled_db)
    empty, filled = results["empty"], results["filled"]
    metrics["history_swaps"] = swaps_n
    metrics["database_bytes"] = size
    metrics["bytes_per_swap"] = round(size / max(1, swaps_n))
    targets = {}
    for key in empty:
        metrics[f"empty_{key}"] = empty[key]
        metrics[f"filled_{key}"] = filled[key]
    for key in ("authorize_p50_ms", "swap_p50_ms", "statement_p50_ms", "export_s"):
        ratio = filled[key] / max(empty[key], 1e-9)
        metrics[f"ratio_{key}"] = round(ratio, 2)
        if key != "export_s":
            targets[f"ratio_{key}"] = f"<= {TARGET_RATIO}"
    for name, lines in plans.items():
        console.print(f"[bold]EXPLAIN {name}[/]")
        for line in lines:
            console.print(f"  {line}", highlight=False)
    notes = (
        f"{swaps_n:,} generated swaps over {args.months} months; {decisions} swaps per database "
        "through the services in process; ratio = filled / empty; export_s exports every rider "
        "(the filled database has one per 100 swaps), so its ratio is shown, not a target."
    )
    emit(NAME, metrics, targets, notes)


if __name__ == "__main__":
    main()
