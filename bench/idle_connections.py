"""Idle stations: N stations connected to one ``swapd serve`` process over WebSocket, booted and
sending OCPP Heartbeats at a short interval; the server's resident memory per connection and the
most connections one process holds in 1 GiB.

Station passwords: every station gets the same password, stored as a scrypt hash with a small
cost parameter (N=16 instead of swapd's 2**14). swapd verifies a password with scrypt once per
station (~40 ms of CPU each); with the real cost, connecting 10,000 stations would spend ~7
minutes of the benchmark in authentication, which is not what is measured here.

Run: ``uv run python -m bench.idle_connections [--quick] [--stations N]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing
import random
import secrets
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import sqlalchemy as sa
from rich.progress import Progress

from bench._common import (
    connect_station,
    console,
    emit,
    fresh_database,
    load_average,
    percentile,
    raise_fd_limit,
    swapd_server,
)
from swapd.services import catalog
from swapd.store import schema as t
from swapd.store.database import Database

NAME = "idle_connections"
PASSWORD = "bench-idle-password-0001"
TARGET_STATIONS = 10_000
TARGET_RSS_MIB = 1024
CONNECT_CONCURRENCY = 64


@dataclass(frozen=True)
class Size:
    stations: int
    heartbeat_s: float
    hold_s: float  # how long all stations stay connected, heartbeating, after the last connects
    workers: int


QUICK = Size(stations=300, heartbeat_s=2, hold_s=5, workers=1)
FULL = Size(stations=10_000, heartbeat_s=30, hold_s=60, workers=4)


def cheap_hash(password: str) -> str:
    """A hash in swapd's stored format (see swapd.security) with a small scrypt cost."""
    n, r, p = 16, 8, 1
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    encoded = [base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    return "$".join(["scrypt", str(n), str(r), str(p), *encoded])


def provision(db: Database, count: int, progress: Progress) -> list[str]:
    task = progress.add_task(f"provisioning {count} stations", total=count)
    ids = []
    for i in range(count):
        station_id = f"IST{i:05d}"
        catalog.add_station(db, station_id, 4)
        ids.append(station_id)
        progress.advance(task)
    hashed = cheap_hash(PASSWORD)
    db.write(lambda tx: tx.repo.execute(sa.update(t.stations).values(password_hash=hashed)))
    progress.remove_task(task)
    return ids


# -- the load-generator processes --------------------------------------------------------------


async def _station(
    url: str,
    station_id: str,
    gate: asyncio.Semaphore,
    stop: asyncio.Event,
    heartbeat_s: float,
    stats: dict[str, Any],
    deflate: bool,
) -> None:
    from websockets.typing import Subprotocol

    auth = base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    async with gate:
        ws = await connect_station(
            f"{url}/ocpp/{station_id}",
            subprotocols=[Subprotocol("ocpp2.1")],
            additional_headers={"Authorization": f"Basic {auth}"},
            open_timeout=300,
            ping_interval=None,
            compression="deflate" if deflate else None,
        )
        boot = {
            "chargingStation": {"model": "BenchCab", "vendorName": "swapd-bench"},
            "reason": "PowerUp",
        }
        await ws.send(json.dumps([2, "boot", "BootNotification", boot]))
        reply = json.loads(await ws.recv())
        if reply[0] != 3 or reply[2].get("status") != "Accepted":
            stats["errors"] += 1
    stats["connected"] += 1
    n = 0
    try:
        await asyncio.sleep(random.uniform(0, heartbeat_s))
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            await ws.send(json.dumps([2, f"hb{n}", "Heartbeat", {}]))
            reply = json.loads(await ws.recv())
            if reply[0] == 3:
                stats["heartbeats"] += 1
                stats["latency_s"].append(time.perf_counter() - started)
            else:
                stats["errors"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), heartbeat_s)
    finally:
        await ws.close()


async def _worker(
    pipe: Connection, url: str, station_ids: list[str], heartbeat_s: float, deflate: bool
) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    stop = asyncio.Event()
    stats: dict[str, Any] = {"connected": 0, "heartbeats": 0, "errors": 0, "latency_s": []}

    async def guarded(station_id: str) -> None:
        try:
            await _station(url, station_id, gate, stop, heartbeat_s, stats, deflate)
        except Exception:
            stats["errors"] += 1

    tasks = [asyncio.create_task(guarded(s)) for s in station_ids]
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "status":
            pipe.send((stats["connected"], stats["heartbeats"], stats["errors"]))
        else:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            pipe.send(stats)
            return


def worker_main(
    pipe: Connection, url: str, station_ids: list[str], heartbeat_s: float, deflate: bool
) -> None:
    raise_fd_limit()
    asyncio.run(_worker(pipe, url, station_ids, heartbeat_s, deflate))


# -- the benchmark -----------------------------------------------------------------------------


class _Workers:
    """The load-generator processes, each holding its share of the stations over a pipe."""

    def __init__(self, size: Size, url: str, ids: list[str], deflate: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for w in range(size.workers):
            parent, child = context.Pipe()
            share = ids[w :: size.workers]
            args = (child, url, share, size.heartbeat_s, deflate)
            process = context.Process(target=worker_main, args=args, daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def status(self) -> tuple[int, int, int]:
        """Stations connected, heartbeats answered and errors, summed over the workers."""
        for pipe in self.pipes:
            pipe.send("status")
        parts = [pipe.recv() for pipe in self.pipes]
        return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)

    def stop(self) -> list[dict[str, Any]]:
        """Each worker's final stats, once its stations have closed."""
        for pipe in self.pipes:
            pipe.send("stop")
        results = [pipe.recv() for pipe in self.pipes]
        for process in self.processes:
            process.join(timeout=30)
        return results


def run(size: Size, deflate: bool) -> dict[str, Any]:
    with fresh_database("sqlite", "idle") as url, Progress(console=console, transient=True) as progress:
        db = Database.open(url)
        ids = provision(db, size.stations, progress)
        db.dispose()
        with swapd_server(url) as server:
            time.sleep(1.0)
            base_rss = server.rss_bytes()
            workers = _Workers(size, server.url, ids, deflate)
            task = progress.add_task("connecting", total=size.stations)
            started = time.monotonic()
            peak_rss = base_rss
            while True:
                connected, _, errors = workers.status()
                progress.update(task, completed=connected)
                peak_rss = max(peak_rss, server.rss_bytes())
                if connected + errors >= size.stations or time.monotonic() - started > 900:
                    break
                time.sleep(0.5)
            connect_s = time.monotonic() - started
            progress.remove_task(task)
            task = progress.add_task(f"{connected} stations idle, heartbeating", total=size.hold_s)
            held_from = time.monotonic()
            while time.monotonic() - held_from < size.hold_s:
                time.sleep(1.0)
                peak_rss = max(peak_rss, server.rss_bytes())
                progress.update(task, completed=time.monotonic() - held_from)
            still, beats, errors = workers.status()
            end_rss = server.rss_bytes()
            results = workers.stop()
    latencies = sorted(x for r in results for x in r["latency_s"])
    per_connection = (peak_rss - base_rss) / max(still, 1)
    return {
        "connected_stations": still,
        "connect_all_s": round(connect_s, 1),
        "server_rss_base_mib": round(base_rss / 2**20, 1),
        "server_rss_peak_mib": round(peak_rss / 2**20, 1),
        "server_rss_end_mib": round(end_rss / 2**20, 1),
        "rss_per_connection_kib": round(per_connection / 1024, 1),
        "projected_stations_in_1gib": (
            int((2**30 - base_rss) / per_connection) if per_connection else 0
        ),
        "heartbeats_answered": beats,
        "heartbeat_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "heartbeat_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.idle_connections", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stations", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="stations do not offer permessage-deflate (by default they do, as the websockets "
        "client does, and swapd accepts it: compression state costs memory per socket)",
    )
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.stations or args.workers:
        size = Size(
            args.stations or size.stations, size.heartbeat_s, size.hold_s, args.workers or size.workers
        )
    raise_fd_limit()
    metrics = {**load_average(), **run(size, args.deflate)}
    metrics.update({f"{k}_after": v for k, v in load_average().items() if k == "loadavg_1m"})
    targets = {
        "connected_stations": f">= {min(size.stations, TARGET_STATIONS)}",
        "server_rss_peak_mib": f"<= {TARGET_RSS_MIB}",
        "projected_stations_in_1gib": f">= {TARGET_STATIONS}",
    }
    notes = (
        f"{size.stations} stations over {size.workers} load-generator process(es), SQLite, Heartbeat "
        f"every {size.heartbeat_s:g} s (each one a database write), held {size.hold_s:g} s after all "
        "connected; per-connection = (peak RSS - RSS before connections) / stations; station passwords "
        "hashed with a cheap scrypt cost (see module doc). Stations "
        f"{'offer' if args.deflate else 'do not offer'} permessage-deflate."
    )
    emit(NAME, metrics, targets, notes)


if __name__ == "__main__":
    main()
