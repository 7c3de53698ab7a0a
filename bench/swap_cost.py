"""What one swap costs: CPU and statements of a station's three messages, one swap at a time.

A rider returns a pack and takes the one offered, through the calls the gateway makes for a
battery-as-key swap (``Database.call`` of Authorize, BatteryIn and BatteryOut, each alone in its
group and transaction, as on a quiet server), in this process, with no WebSocket, no load
generator and no other swap beside it. Metrics per database:

* ``cpu_ms_per_swap_<db>``: this process's CPU (every thread: the event loop and the call thread),
  which on SQLite includes the database engine itself;
* ``db_cpu_ms_per_swap_postgresql``: the CPU of the PostgreSQL backends serving it (read from
  ``/proc``: the server must run on this machine);
* ``wall_ms_per_swap_<db>``: the same swaps' wall time, which adds the waits (each COMMIT's
  fsync, PostgreSQL's replies);
* ``statements_per_swap_<db>``: statements the database executed (SQLite: its trace callback;
  PostgreSQL: ``pg_stat_statements`` when the server loads it, else not reported), transaction
  control included.

Why this beside ``bench.swaps``: the closed loop shares two cores with its load generators, and
its rate moved by 30 % between runs of the same code here; these numbers are the work itself and
move by a few percent, so they are the ones to compare two versions with (alternated runs still).
They do not show what grouping saves under load (one COMMIT for many calls).

Run: ``uv run python -m bench.swap_cost [--quick | --smoke] [--swaps N]
[--databases sqlite,postgresql]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from rich.progress import Progress

from bench._common import console, emit, fresh_database, load_average, pg_available
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database, ManualClock
from swapd.store.engine import database_url, make_engine, upgrade

NAME = "swap_cost"
PLAN = Plan("cost-energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)
TOP_UP_MINOR = 100_000_000
STATION = "COST1"
RIDER = "COST-R1"
# Returned at 92 %: above the station's 90 % "charged" mark, so that the same four packs can go
# round for any number of swaps (8 % of 1,700 Wh is still metered and charged every swap).
RETURN_SOC_PCT = 92
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a fixed clock: the same rows every run


@dataclass
class Cost:
    swaps: int
    cpu_s: float
    wall_s: float
    db_cpu_s: float | None
    statements: int | None


class Swapper:
    """One rider at one station of four slots, three charged packs and one in the rider's hands."""

    def __init__(self, db: Database) -> None:
        self.db = db
        catalog.add_pack_model(db, "COST", 1700)
        catalog.add_plan(db, PLAN)
        catalog.add_station(db, STATION, 4)
        catalog.add_rider(db, RIDER, PLAN.id)
        payments.top_up(db, RIDER, TOP_UP_MINOR, f"{RIDER}-pay")
        for slot_no in (1, 2, 3):
            catalog.register_pack(
                db, f"COST-P{slot_no}", "COST", soc=100, soh=100, station_id=STATION, slot_no=slot_no
            )
        app = IdToken(TokenType.APP, RIDER)
        first = swaps.authorize(db, STATION, app, request_id="setup")
        if not first.accepted:
            raise RuntimeError(f"setup refused: {first.text}")
        slot_no, serial = first.offered[0].slot_no, first.offered[0].serial
        swaps.battery_out(
            db, STATION, "setup", [BatteryReading.parse(slot_no, serial, 100, 100)], token=app
        )
        self.held, self.empty_slot, self.count = serial, slot_no, 0

    async def swap(self) -> None:
        db, key = self.db, IdToken(TokenType.BATTERY_SERIAL, self.held)
        request = f"cost-{self.count}"
        self.count += 1
        offer = await db.call(swaps.authorize, db, STATION, key)
        if not offer.accepted:
            raise RuntimeError(f"swap {request} refused: {offer.text}")
        returned = BatteryReading.parse(self.empty_slot, self.held, RETURN_SOC_PCT, 100)
        done = await db.call(swaps.battery_in, db, STATION, request, [returned], token=key)
        if done.packs[0].outcome != "returned":
            raise RuntimeError(f"swap {request}: the return was {done.packs[0].outcome}")
        slot_no, serial = offer.offered[0].slot_no, offer.offered[0].serial
        taken = BatteryReading.parse(slot_no, serial, 100, 100)
        out = await db.call(swaps.battery_out, db, STATION, request, [taken], token=key)
        if out.packs[0].rider_id != RIDER:
            raise RuntimeError(f"swap {request}: the pack went to {out.packs[0].rider_id}")
        self.held, self.empty_slot = serial, slot_no

    async def run(self, count: int, tick: Callable[[], None]) -> None:
        for _ in range(count):
            await self.swap()
            tick()


def _process_cpu_s(pids: list[int]) -> float | None:
    """User + system CPU of the processes ``pids`` (Linux /proc); None if one is not to be seen
    here (a PostgreSQL server on another machine or in a container)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Statements:
    """Counts what the database executes, where it can be counted."""

    def __init__(self, engine: sa.Engine, kind: str) -> None:
        self.kind, self.engine, self.count = kind, engine, 0
        self.pg_stats = False
        if kind == "sqlite":
            sa.event.listen(engine, "connect", self._trace)

    def _trace(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(self._seen)

    def _seen(self, _statement: str) -> None:
        self.count += 1

    def reset(self) -> None:
        self.count = 0
        if self.kind == "postgresql":
            try:
                with self.engine.connect() as connection:
                    connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                    connection.execute(sa.text("SELECT pg_stat_statements_reset()"))
                    connection.commit()
                self.pg_stats = True
            except sa.exc.DBAPIError:
                self.pg_stats = False  # the server does not load it: no count

    def total(self) -> int | None:
        if self.kind == "sqlite":
            return self.count
        if not self.pg_stats:
            return None
        query = (
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND userid = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
            "AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_stat_activity%'"
        )
        with self.engine.connect() as connection:
            return int(connection.execute(sa.text(query)).scalar_one())


def _backend_pids(url: str) -> list[int]:
    """The backends of every other connection to the database (an engine of its own: one from
    the measured engine's pool could be the very connection the calls use)."""
    inspector = sa.create_engine(database_url(url), poolclass=sa.NullPool)
    with inspector.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        )
        pids = [int(pid) for pid in rows.scalars()]
    inspector.dispose()
    return pids


def measure(kind: str, warmup: int, count: int, progress: Progress) -> Cost:
    with fresh_database(kind, f"cost_{os.getpid()}") as url:
        engine = make_engine(url)
        statements = Statements(engine, kind)  # before the first connection: SQLite's trace
        upgrade(engine)
        # One call thread: one connection, as each of a server's call threads has.
        db = Database(engine, ManualClock(START), call_threads=1)
        try:
            swapper = Swapper(db)
            task = progress.add_task(f"{kind}: swaps", total=warmup + count)

            def tick() -> None:
                # Drawn every 50 swaps by this thread: a refresh thread's CPU would be counted.
                progress.advance(task)
                if swapper.count % 50 == 0:
                    progress.refresh()

            # The warm-up prepares every statement of the path on the connection.
            asyncio.run(swapper.run(warmup, tick))
            pids = _backend_pids(url) if kind == "postgresql" else []
            statements.reset()
            db_cpu0 = _process_cpu_s(pids) if pids else None
            cpu0, wall0 = time.process_time(), time.perf_counter()
            asyncio.run(swapper.run(count, tick))
            cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            db_cpu1 = _process_cpu_s(pids) if db_cpu0 is not None else None
            db_cpu_s = db_cpu1 - db_cpu0 if db_cpu0 is not None and db_cpu1 is not None else None
            executed = statements.total()
        finally:
            db.dispose()
            engine.dispose()
    return Cost(count, cpu_s, wall_s, db_cpu_s, executed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="200 swaps a database")
    size.add_argument("--smoke", action="store_true", help="20 swaps a database (tests)")
    parser.add_argument("--swaps", type=int, help="measured swaps a database (default 1,000)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    count = args.swaps or (20 if args.smoke else 200 if args.quick else 1_000)
    warmup = 5 if args.smoke else 50
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    metrics: dict[str, float] = load_average()
    notes = [
        f"{count} swaps a database after {warmup} of warm-up, one at a time, in process "
        "(Database.call of Authorize, BatteryIn, BatteryOut: the gateway's calls, each alone in "
        "its transaction); CPU of this process, and of PostgreSQL's backends"
    ]
    with Progress(console=console, transient=True, auto_refresh=False) as progress:
        for kind in kinds:
            if kind == "postgresql" and not pg_available():
                notes.append("PostgreSQL not reachable: not measured")
                continue
            cost = measure(kind, warmup, count, progress)
            metrics[f"cpu_ms_per_swap_{kind}"] = round(1000 * cost.cpu_s / cost.swaps, 3)
            metrics[f"wall_ms_per_swap_{kind}"] = round(1000 * cost.wall_s / cost.swaps, 3)
            if cost.db_cpu_s is not None:
                metrics[f"db_cpu_ms_per_swap_{kind}"] = round(1000 * cost.db_cpu_s / cost.swaps, 3)
            if cost.statements is not None:
                metrics[f"statements_per_swap_{kind}"] = round(cost.statements / cost.swaps, 2)
            elif kind == "postgresql":
                notes.append("PostgreSQL without pg_stat_statements: statements not counted")
            if kind == "postgresql" and cost.db_cpu_s is None:
                notes.append("PostgreSQL's backends not visible here: their CPU not measured")
    emit(NAME, metrics, {}, "; ".join(notes) + ".")


if __name__ == "__main__":
    main()
