"""The raw limit: the rows one swap writes, written by a minimal script with the bare driver.

One battery-as-key swap through swapd writes 28 rows (counted on swapd's own statements): Authorize
inserts the swap and its offer, reserves the pack and places the pending hold (transfer + 2 account
updates); BatteryIn names the requestId, posts the hold and recognises the revenue (2 transfers +
4 account updates), closes the possession, places the pack in its slot and records the event;
BatteryOut marks the offer taken, opens the new possession, empties the slot, moves the pack,
completes the swap and records the event; each transfer and each event also writes its key row
(transfer_keys, station_event_keys). Here the same 28 statements run with sqlite3 / psycopg,
with no reads and no framework, on the same schema and the same durability (SQLite WAL with
synchronous=FULL; PostgreSQL's default synchronous_commit=on):

* ``raw_swaps_per_s_<db>``: one transaction per swap (the brief's definition of the raw limit);
* ``raw_3tx_swaps_per_s_<db>``: three transactions per swap, as a server must commit each station
  message before it answers (what swapd can at best reach without batching commits);
* ``raw_swaps_per_s_sqlite_writer_checkpoints``: one transaction per swap again, with the WAL
  checkpoint size of swapd's writer process instead of SQLite's default (for comparison: the
  ratio's reference stays the minimal script).

The ratio swapd / raw takes swapd's closed-loop maximum from ``bench.swaps`` when given
(``--swapd-sqlite N --swapd-postgresql N``; the runner passes them).

Run: ``uv run python -m bench.raw_limit [--quick]``
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from rich.progress import Progress

from bench._common import console, emit, fresh_database, load_average, pg_available
from bench.swaps import PLAN, Size, provision
from swapd.ledger.model import AccountCode, TransferCode, TransferFlags
from swapd.store import schema as t
from swapd.store.checkpoints import WRITER_AUTOCHECKPOINT_PAGES
from swapd.store.database import Database
from swapd.store.engine import SQLITE_BUSY_TIMEOUT_MS

NAME = "raw_limit"
PACK_WH = 1700
TARGET_RATIO = 0.5


@dataclass
class Rider:
    rider_id: str
    serial: str
    possession_id: int
    hold_id: int
    allowance_id: int
    prepaid_id: int


@dataclass
class RawStation:
    station_id: str
    slots: dict[int, str | None]
    riders: list[Rider]


class Driver:
    """The few things the loop needs of a DB-API connection, for sqlite3 and psycopg alike."""

    def __init__(self, kind: str, url: str, *, wal_autocheckpoint_pages: int | None = None) -> None:
        self.kind = kind
        if kind == "sqlite":
            path = sa.make_url(url).database
            assert path is not None
            self.conn: Any = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if wal_autocheckpoint_pages is not None:
                self.conn.execute(f"PRAGMA wal_autocheckpoint={wal_autocheckpoint_pages}")
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            self.conn.autocommit = True

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def run(self, sql: str, *params: Any) -> Any:
        if self.kind != "sqlite":
            sql = sql.replace("?", "%s")
        return self.conn.execute(sql, params)

    def one(self, sql: str, *params: Any) -> Any:
        row = self.run(sql, *params).fetchone()
        return row[0]

    def now(self) -> Any:
        moment = datetime.now(UTC)
        # What SQLAlchemy stores for a DateTime on SQLite; psycopg takes the datetime itself.
        return moment.replace(tzinfo=None).isoformat(" ") if self.kind == "sqlite" else moment

    def json(self, value: Any) -> Any:
        if self.kind == "sqlite":
            return json.dumps(value)
        from psycopg.types.json import Json

        return Json(value)

    def close(self) -> None:
        self.conn.close()


def _accounts(db: Database) -> dict[tuple[str, str, str], int]:
    rows = db.read(lambda tx: tx.repo.execute(sa.select(t.accounts)).all())
    return {(r.ledger, r.code, r.owner): int(r.id) for r in rows}


def _setup(db: Database, size: Size, progress: Progress) -> tuple[list[RawStation], int, int]:
    plans = provision(db, size, progress)
    accounts = _accounts(db)
    unit, money = PLAN.unit.value, PLAN.currency
    consumed = accounts[(unit, AccountCode.ALLOWANCE_CONSUMED.value, "")]
    revenue = accounts.get((money, AccountCode.REVENUE.value, ""))
    if revenue is None:
        # The first usage creates the operator's revenue account; create it the same way.
        from swapd.store.ledger_book import Book

        def create(tx: Any) -> int:
            return Book(tx.repo.conn, tx.now).account(money, AccountCode.REVENUE).id

        revenue = db.write(create)
    possessions = db.read(
        lambda tx: tx.repo.execute(sa.select(t.possessions).where(t.possessions.c.at_in.is_(None))).all()
    )
    by_serial = {p.pack_serial: p for p in possessions}
    stations = []
    for plan in plans:
        riders = []
        for serial in plan.riders:
            p = by_serial[serial]
            riders.append(
                Rider(
                    p.rider_id,
                    serial,
                    int(p.id),
                    int(p.hold_transfer_id),
                    accounts[(unit, AccountCode.ALLOWANCE.value, p.rider_id)],
                    accounts[(money, AccountCode.PREPAID.value, p.rider_id)],
                )
            )
        stations.append(RawStation(plan.station_id, dict(plan.slots), riders))
    return stations, consumed, revenue


_ACCOUNT = (
    "UPDATE accounts SET debits_pending = debits_pending + ?, debits_posted = debits_posted + ?, "
    "credits_pending = credits_pending + ?, credits_posted = credits_posted + ? WHERE id = ?"
)
_TRANSFER_KEY = "INSERT INTO transfer_keys (key, resolves_id, created_at) VALUES (?, ?, ?) RETURNING id"
_TRANSFER = (
    "INSERT INTO transfers (id, key, ledger, debit_account_id, credit_account_id, amount, code, "
    "flags, pending_id, rider_id, actor, memo, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'system', '', ?)"
)
_EVENT_KEY = (
    "INSERT INTO station_event_keys (station_id, request_id, event_type, received_at) "
    "VALUES (?, ?, ?, ?)"
)


def _transfer(d: Driver, key: str, *values: Any) -> int:
    """A transfer as swapd writes one: its identity claimed in transfer_keys, then its row.
    ``values``: ledger, debit, credit, amount, code, flags, pending_id, rider_id, created_at."""
    pending_id, created_at = values[6], values[8]
    transfer_id = int(d.one(_TRANSFER_KEY, key, pending_id, created_at))
    d.run(_TRANSFER, transfer_id, key, *values)
    return transfer_id


def raw_swap(
    d: Driver, n: int, station: RawStation, consumed: int, revenue: int, boundary: Callable[[], None]
) -> None:
    """The 28 writes of one swap; ``boundary`` is called where swapd commits a message."""
    rider = station.riders.pop(0)
    k = next(s for s, p in sorted(station.slots.items()) if p is not None)
    e = next(s for s, p in sorted(station.slots.items()) if p is None)
    taken = station.slots[k]
    sid, unit, money = station.station_id, PLAN.unit.value, PLAN.currency
    now = d.now()
    # Authorize: the offer and its pending hold.
    swap_id = d.one(
        "INSERT INTO swaps (station_id, request_id, rider_id, token_type, token_value, state, reason, "
        "created_at, updated_at) VALUES (?, NULL, ?, 'BatterySerial', ?, 'offered', NULL, ?, ?) "
        "RETURNING id",
        sid,
        rider.rider_id,
        rider.serial,
        now,
        now,
    )
    d.run("UPDATE packs SET reserved_swap_id = ?, updated_at = ? WHERE serial = ?", swap_id, now, taken)
    hold = TransferCode.HOLD.value
    hold_id = _transfer(
        d,
        f"raw:{n}:hold",
        unit,
        rider.allowance_id,
        consumed,
        PACK_WH,
        hold,
        int(TransferFlags.PENDING),
        None,
        rider.rider_id,
        now,
    )
    d.run(_ACCOUNT, PACK_WH, 0, 0, 0, rider.allowance_id)
    d.run(_ACCOUNT, 0, 0, PACK_WH, 0, consumed)
    d.run(
        "INSERT INTO swap_offers (swap_id, pack_serial, slot_no, hold_units, hold_transfer_id, state) "
        "VALUES (?, ?, ?, ?, ?, 'offered')",
        swap_id,
        taken,
        k,
        PACK_WH,
        hold_id,
    )
    boundary()
    # BatteryIn: meter, post the old hold, recognise revenue, close the possession, place the pack.
    now = d.now()
    used_wh, revenue_minor = 102, 31
    d.run("UPDATE swaps SET request_id = ?, updated_at = ? WHERE id = ?", str(n), now, swap_id)
    _transfer(
        d,
        f"raw:{n}:revenue",
        money,
        rider.prepaid_id,
        revenue,
        revenue_minor,
        TransferCode.REVENUE.value,
        0,
        None,
        rider.rider_id,
        now,
    )
    d.run(_ACCOUNT, 0, revenue_minor, 0, 0, rider.prepaid_id)
    d.run(_ACCOUNT, 0, 0, 0, revenue_minor, revenue)
    _transfer(
        d,
        f"raw:{n}:post",
        unit,
        rider.allowance_id,
        consumed,
        used_wh,
        TransferCode.USAGE.value,
        int(TransferFlags.POST_PENDING),
        rider.hold_id,
        rider.rider_id,
        now,
    )
    d.run(_ACCOUNT, -PACK_WH, used_wh, 0, 0, rider.allowance_id)
    d.run(_ACCOUNT, 0, 0, -PACK_WH, used_wh, consumed)
    d.run(
        "UPDATE possessions SET swap_in_id = ?, station_in = ?, slot_in = ?, at_in = ?, soc_in_bp = ?, "
        "soh_in_bp = ?, usage_units = ?, anomaly = NULL WHERE id = ?",
        swap_id,
        sid,
        e,
        now,
        9400,
        10000,
        used_wh,
        rider.possession_id,
    )
    d.run(
        "UPDATE packs SET status = 'in_slot', station_id = ?, slot_no = ?, rider_id = NULL, "
        "reserved_swap_id = NULL, soc_bp = ?, soh_bp = ?, updated_at = ? WHERE serial = ?",
        sid,
        e,
        9400,
        10000,
        now,
        rider.serial,
    )
    d.run(
        "UPDATE slots SET pack_serial = ?, state = 'occupied' WHERE station_id = ? AND slot_no = ? "
        "AND (pack_serial IS NULL OR pack_serial = ?)",
        rider.serial,
        sid,
        e,
        rider.serial,
    )
    outcome = {"serial": rider.serial, "slot_no": e, "outcome": "returned", "usage_units": used_wh}
    d.run(_EVENT_KEY, sid, str(n), "BatteryIn", now)
    d.run(
        "INSERT INTO station_events (station_id, request_id, event_type, received_at, result) "
        "VALUES (?, ?, 'BatteryIn', ?, ?)",
        sid,
        str(n),
        now,
        d.json({"swap_id": swap_id, "event_type": "BatteryIn", "packs": [outcome]}),
    )
    boundary()
    # BatteryOut: the offered pack leaves with the rider under the hold placed at Authorize.
    now = d.now()
    d.run("UPDATE swap_offers SET state = 'taken' WHERE swap_id = ? AND pack_serial = ?", swap_id, taken)
    possession_id = d.one(
        "INSERT INTO possessions (rider_id, pack_serial, plan_id, swap_out_id, station_out, slot_out, "
        "at_out, soc_out_bp, soh_out_bp, hold_units, hold_transfer_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 10000, 10000, ?, ?) RETURNING id",
        rider.rider_id,
        taken,
        PLAN.id,
        swap_id,
        sid,
        k,
        now,
        PACK_WH,
        hold_id,
    )
    d.run(
        "UPDATE slots SET pack_serial = NULL, state = 'available' WHERE station_id = ? AND slot_no = ?",
        sid,
        k,
    )
    d.run(
        "UPDATE packs SET status = 'with_rider', station_id = NULL, slot_no = NULL, rider_id = ?, "
        "reserved_swap_id = NULL, soc_bp = 10000, soh_bp = 10000, updated_at = ? WHERE serial = ?",
        rider.rider_id,
        now,
        taken,
    )
    d.run("UPDATE swaps SET state = 'completed', updated_at = ? WHERE id = ?", now, swap_id)
    outcome = {"serial": taken, "slot_no": k, "outcome": "handed_over", "hold_units": PACK_WH}
    d.run(_EVENT_KEY, sid, str(n), "BatteryOut", now)
    d.run(
        "INSERT INTO station_events (station_id, request_id, event_type, received_at, result) "
        "VALUES (?, ?, 'BatteryOut', ?, ?)",
        sid,
        str(n),
        now,
        d.json({"swap_id": swap_id, "event_type": "BatteryOut", "packs": [outcome]}),
    )
    station.slots[e], station.slots[k] = rider.serial, None
    assert taken is not None
    station.riders.append(
        Rider(
            rider.rider_id, taken, int(possession_id), int(hold_id), rider.allowance_id, rider.prepaid_id
        )
    )


def measure(
    kind: str,
    seconds: float,
    progress: Progress,
    *,
    per_message: tuple[bool, ...] = (False, True),
    wal_autocheckpoint_pages: int | None = None,
) -> list[float]:
    """Swaps per second, one rate for each variant asked: one transaction a swap (False) or one
    a station message (True)."""
    size = Size(stations=8, riders_per_station=2, stock_per_station=2, warmup_s=0, run_s=0, workers=1)
    with fresh_database(kind, "raw") as url:
        db = Database.open(url)
        stations, consumed, revenue = _setup(db, size, progress)
        db.dispose()
        d = Driver(kind, url, wal_autocheckpoint_pages=wal_autocheckpoint_pages)
        results = []
        n = 0
        for each_message in per_message:
            label = "3 tx/swap" if each_message else "1 tx/swap"
            task = progress.add_task(f"raw {kind}: {label}", total=None)

            def boundary(each_message: bool = each_message) -> None:
                if each_message:
                    d.commit()
                    d.begin()

            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                n += 1
                d.begin()
                raw_swap(d, n, stations[n % len(stations)], consumed, revenue, boundary)
                d.commit()
                done += 1
            results.append(done / (time.perf_counter() - started))
            progress.remove_task(task)
        d.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.raw_limit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--swapd-sqlite", type=float, help="swapd's max swaps/s on SQLite (bench.swaps)")
    parser.add_argument("--swapd-postgresql", type=float, help="swapd's max swaps/s on PostgreSQL")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else 15.0
    metrics: dict[str, Any] = {**load_average()}
    targets: dict[str, str] = {}
    notes = [f"{seconds:g} s per variant, one writer, 28 writes per swap, no reads."]
    with Progress(console=console, transient=True) as progress:
        for kind in args.databases.split(","):
            if kind == "postgresql" and not pg_available():
                notes.append("PostgreSQL unreachable: skipped")
                continue
            one_tx, three_tx = measure(kind, seconds, progress)
            metrics[f"raw_swaps_per_s_{kind}"] = round(one_tx, 1)
            metrics[f"raw_3tx_swaps_per_s_{kind}"] = round(three_tx, 1)
            if kind == "sqlite":
                # For comparison only: the raw script with the checkpoint size swapd's writer
                # process uses (swapd.store.checkpoints), where a minimal script keeps SQLite's.
                (tuned,) = measure(
                    kind,
                    seconds,
                    progress,
                    per_message=(False,),
                    wal_autocheckpoint_pages=WRITER_AUTOCHECKPOINT_PAGES,
                )
                metrics["raw_swaps_per_s_sqlite_writer_checkpoints"] = round(tuned, 1)
            swapd_rate = getattr(args, f"swapd_{kind}")
            if swapd_rate:
                metrics[f"swapd_swaps_per_s_{kind}"] = swapd_rate
                metrics[f"ratio_swapd_to_raw_{kind}"] = round(swapd_rate / one_tx, 3)
                metrics[f"ratio_swapd_to_raw_3tx_{kind}"] = round(swapd_rate / three_tx, 3)
                if kind == "sqlite":
                    metrics["ratio_swapd_to_raw_sqlite_writer_checkpoints"] = round(
                        swapd_rate / metrics["raw_swaps_per_s_sqlite_writer_checkpoints"], 3
                    )
                targets[f"ratio_swapd_to_raw_{kind}"] = f">= {TARGET_RATIO}"
    if not targets:
        notes.append("no swapd rate given (--swapd-sqlite/--swapd-postgresql): ratio not computed")
    emit(NAME, metrics, targets, " ".join(notes))


if __name__ == "__main__":
    main()
