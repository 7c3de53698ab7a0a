"""Decision time against the length of a rider's swap history.

A rider who swaps twice a day has some 700 swaps after a year. The decision (Authorize by the
returned pack's serial) looks up that rider's open offers; if it read them through the rider's
whole history, every rider would get slower to serve with every swap they make. This runs the
services directly (``Database.write``, no WebSocket, one caller), so only the database work is
timed: a rider with ``H`` completed swaps behind them (rows written straight into ``swaps``)
makes complete battery-as-key swaps, and the Authorize calls are timed, for each ``H``.

``--smoke`` (for the tests) is the quick run's history lengths with 10 decisions each: every
measurement made, none worth reading.

Run: ``uv run python -m bench.rider_history [--quick | --smoke] [--databases sqlite,postgresql]``
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from rich.progress import Progress

from bench._common import console, emit, fresh_database, load_average, percentile, pg_available
from bench.swaps import Size, provision
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, swaps
from swapd.services.swaps import BatteryReading, SwapState
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import make_engine, upgrade

NAME = "rider_history"
HISTORY = (0, 1_000, 10_000)
QUICK_HISTORY = (0, 2_000)
DECISIONS = 300
QUICK_DECISIONS = 60
SMOKE_DECISIONS = 10
# The decision with the longest history may take at most this many times the one with none.
TARGET_GROWTH = 1.5


def _add_history(db: Database, rider_id: str, serial: str, count: int) -> None:
    """``count`` completed swaps of the rider at another station, oldest first."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [
        {
            "station_id": "HIST",
            "request_id": f"h{i}",
            "rider_id": rider_id,
            "token_type": TokenType.BATTERY_SERIAL.value,
            "token_value": serial,
            "state": SwapState.COMPLETED,
            "reason": None,
            "created_at": start + timedelta(hours=12 * i),
            "updated_at": start + timedelta(hours=12 * i),
        }
        for i in range(count)
    ]
    catalog.add_station(db, "HIST", 2)
    with db.engine.begin() as connection:
        for offset in range(0, count, 5_000):
            connection.execute(sa.insert(t.swaps), rows[offset : offset + 5_000])


def _decisions(db: Database, history: int, decisions: int, progress: Progress) -> list[float]:
    [plan] = provision(db, Size(1, 1, 3, 0, 0, 1), progress)
    _add_history(db, "BR0000-0", plan.riders[0], history)
    slots, riders = dict(plan.slots), deque(plan.riders)
    times = []
    for request in range(1, decisions + 1):
        serial = riders.popleft()
        token = IdToken(TokenType.BATTERY_SERIAL, serial)
        started = time.perf_counter()
        offer = swaps.authorize(db, plan.station_id, token)
        times.append(time.perf_counter() - started)
        if not offer.accepted or not offer.offered:
            raise RuntimeError(f"refused at history {history}: {offer.text}")
        offered = offer.offered_slots[0]
        taken = slots[offered]
        empty = next(s for s, p in sorted(slots.items()) if p is None)
        returned = BatteryReading.parse(empty, serial, 95, 100)
        swaps.battery_in(db, plan.station_id, str(request), [returned], token=token)
        slots[empty] = serial
        assert taken is not None
        handed = BatteryReading.parse(offered, taken, 100, 100)
        swaps.battery_out(db, plan.station_id, str(request), [handed], token=token)
        slots[offered], riders = None, deque([taken])
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rider_history", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--smoke", action="store_true", help=f"the quick run with {SMOKE_DECISIONS} decisions (tests)"
    )
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    kinds = [k for k in args.databases.split(",") if k != "postgresql" or pg_available()]
    histories = QUICK_HISTORY if args.quick or args.smoke else HISTORY
    decisions = SMOKE_DECISIONS if args.smoke else QUICK_DECISIONS if args.quick else DECISIONS
    metrics: dict[str, float] = dict(load_average())
    targets: dict[str, str] = {}
    with Progress(console=console, transient=True) as progress:
        for kind in kinds:
            p50s = {}
            for history in histories:
                with fresh_database(kind, f"history_{history}") as url:
                    engine = make_engine(url)
                    upgrade(engine)
                    db = Database(engine)
                    try:
                        times = sorted(_decisions(db, history, decisions, progress))
                    finally:
                        db.dispose()
                p50s[history] = percentile(times, 0.5) * 1000
                metrics[f"decision_p50_ms_{kind}_history_{history}"] = round(p50s[history], 3)
                p99 = percentile(times, 0.99) * 1000
                metrics[f"decision_p99_ms_{kind}_history_{history}"] = round(p99, 3)
                console.log(f"{kind}, history {history}: p50 {p50s[history]:.3f} ms")
            longest, none = max(histories), min(histories)
            key = f"decision_p50_growth_{kind}"
            metrics[key] = round(p50s[longest] / p50s[none], 2)
            targets[key] = f"<= {TARGET_GROWTH}"
    notes = (
        f"{decisions} decisions per history length, one caller, services called directly "
        f"(no WebSocket); growth = p50 at {max(histories)} past swaps / p50 at {min(histories)}."
    )
    emit(NAME, metrics, targets, notes)


if __name__ == "__main__":
    main()
