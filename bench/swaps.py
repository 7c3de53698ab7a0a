"""Swap throughput and decision latency over real OCPP 2.1 WebSockets.

A real ``swapd serve`` process (uvicorn) on a fresh SQLite file (WAL, each answer after the fsync
of its commit: swapd.store.wal_sync) and then on a fresh PostgreSQL database; load-generator
processes on the same machine drive many stations through complete battery-as-key swaps
(Authorize by the returned pack's serial, BatterySwap BatteryIn, BatterySwap BatteryOut).

1. Closed loop: every station swaps back to back -> the most complete swaps per second.
2. Open loop at half the target load (250 swaps/s; half the closed-loop maximum when that is
   lower), swaps starting on a fixed schedule whatever the answers take -> decision latency
   p50/p99: from sending Authorize with the returned pack's serial (the swap-in
   event) to receiving its answer, the one that decides.
3. PostgreSQL with two server processes (``swapd serve --workers 2`` on one database, the
   stations spread over both by the kernel): the closed loop only; then every station
   reconnects (the kernel picks a process again: some land on the other) and swaps on for a
   few seconds without booting again; then the fault drills' verifier (faults/verify.py) on
   that database: every swap exactly once.

Run: ``uv run python -m bench.swaps [--quick] [--databases sqlite,postgresql,postgresql_2_servers]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from faults.load import Ack
from faults.verify import Verdict, verify
from prometheus_client.parser import text_string_to_metric_families
from rich.progress import Progress

from bench._common import (
    Server,
    console,
    emit,
    fresh_database,
    load_average,
    percentile,
    pg_available,
    process_tree,
    raise_fd_limit,
    swapd_server,
)
from bench._loadgen import Samples, StationPlan, worker_main
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, stations, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import database_url

NAME = "swaps"
PASSWORD = "bench-station-password-0001"
PLAN = Plan("bench-energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)
TOP_UP_MINOR = 100_000_000  # enough allowance for every swap the run can make
TARGET_SWAPS_PER_S = 500
TARGET_P99_MS = 20.0
TWO_SERVERS = "postgresql_2_servers"


@dataclass(frozen=True)
class Size:
    stations: int
    riders_per_station: int
    stock_per_station: int  # charged packs in slots; one more slot stays empty for returns
    warmup_s: float
    run_s: float
    workers: int


QUICK = Size(stations=24, riders_per_station=2, stock_per_station=2, warmup_s=1, run_s=4, workers=1)
FULL = Size(stations=160, riders_per_station=3, stock_per_station=3, warmup_s=5, run_s=30, workers=2)


@dataclass(frozen=True)
class Names:
    """How provisioning names stations, riders and packs. ``verified``: the stations record what
    the server acknowledged, for faults/verify.py, whose loads name stations ``<prefix>-S...``
    and packs ``<prefix>-P...``."""

    station: str = "BST"
    rider: str = "BR"
    pack: str = "BP"
    verified: bool = False


PLAIN = Names()
VERIFIED_PREFIX = "BENCH2"
VERIFIED = Names(f"{VERIFIED_PREFIX}-S", f"{VERIFIED_PREFIX}-R", f"{VERIFIED_PREFIX}-P", verified=True)


def provision(db: Database, size: Size, progress: Progress, names: Names = PLAIN) -> list[StationPlan]:
    """Stations, riders with allowance, each rider holding one pack (handed over through the
    app path), and charged stock in the slots, all through swapd's services."""
    catalog.add_pack_model(db, "BENCH", 1700)
    catalog.add_plan(db, PLAN)
    slots_per_station = size.stock_per_station + 1
    plans = []
    task = progress.add_task("provisioning", total=size.stations)
    for s in range(size.stations):
        station_id = f"{names.station}{s:04d}"
        catalog.add_station(db, station_id, max(slots_per_station, size.riders_per_station))
        stations.set_password(db, station_id, PASSWORD)
        held = []
        holders = {}
        for r in range(size.riders_per_station):
            rider_id = f"{names.rider}{s:04d}-{r}"
            serial = f"{names.pack}{s:04d}-R{r}"
            catalog.add_rider(db, rider_id, PLAN.id)
            payments.top_up(db, rider_id, TOP_UP_MINOR, f"{rider_id}-pay")
            catalog.register_pack(
                db, serial, "BENCH", soc=100, soh=100, station_id=station_id, slot_no=1
            )
            token = IdToken(TokenType.APP, rider_id)
            offer = swaps.authorize(db, station_id, token, request_id=f"setup-{r}")
            if not offer.accepted:
                raise RuntimeError(f"setup: {rider_id} refused: {offer.text}")
            reading = BatteryReading.parse(1, serial, 100, 100)
            swaps.battery_out(db, station_id, f"setup-{r}", [reading], token=token)
            held.append(serial)
            holders[serial] = rider_id
        slots: dict[int, str | None] = {}
        for k in range(1, slots_per_station + 1):
            if k <= size.stock_per_station:
                serial = f"{names.pack}{s:04d}-S{k}"
                catalog.register_pack(
                    db, serial, "BENCH", soc=100, soh=100, station_id=station_id, slot_no=k
                )
                slots[k] = serial
            else:
                slots[k] = None
        plans.append(StationPlan(station_id, PASSWORD, slots, held, holders if names.verified else {}))
        progress.advance(task)
    return plans


def _merge(parts: list[Samples]) -> Samples:
    total = Samples()
    for part in parts:
        total.completed += part.completed
        total.completed_all += part.completed_all
        total.refused += part.refused
        total.errors += part.errors
        total.late_starts += part.late_starts
        total.decision_s += part.decision_s
        total.battery_in_s += part.battery_in_s
        total.swap_s += part.swap_s
        total.acks += part.acks
    return total


def _ms(values: list[float], fraction: float) -> float:
    return round(percentile(sorted(values), fraction) * 1000, 2)


def _cpu_s(pid: int, *, tree: bool = True) -> float:
    """User + system CPU seconds a process has used, with its children (the server's writer
    process) unless ``tree`` is False (/proc)."""
    ticks = 0
    for member in process_tree(pid) if tree else [pid]:
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _profile(pid: int, kind: str, size: Size) -> subprocess.Popen[bytes] | None:
    """With SWAPD_BENCH_PROFILE=DIR, sample the server with py-spy (all threads) during the
    closed loop and keep the collapsed stacks in DIR/swaps-<db>.txt."""
    directory = os.environ.get("SWAPD_BENCH_PROFILE")
    if not directory:
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    output = Path(directory) / f"swaps-{kind}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    duration = str(int(size.warmup_s + size.run_s))
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        duration,
        "--format",
        "raw",
        "--nonblocking",
        "--subprocesses",  # the writer process (SQLite) too
    ]
    return subprocess.Popen([*command, "--rate", "200", "-o", str(output)], stdout=subprocess.DEVNULL)


class Generators:
    """The load-generator processes and the pipes to them."""

    def __init__(self, url: str, plans: list[StationPlan], workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for w in range(workers):
            parent, child = context.Pipe()
            share = plans[w::workers]
            process = context.Process(target=worker_main, args=(child, url, share), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def _gather(self, expected: str) -> list[Any]:
        answers = []
        for pipe in self.pipes:
            answer = pipe.recv()
            if answer[0] != expected:
                raise RuntimeError(f"load generator: {answer}")
            answers.append(answer[1] if len(answer) > 1 else None)
        return answers

    def ready(self) -> int:
        return sum(self._gather("ready"))

    def run(self, command: tuple[Any, ...], rate_split: float | None = None) -> Samples:
        for pipe in self.pipes:
            if rate_split is None:
                pipe.send(command)
            else:
                pipe.send((*command, rate_split / len(self.pipes)))
        return _merge(self._gather("samples"))

    def placed(self) -> list[tuple[str, dict[int, str | None], dict[str, str]]]:
        """Every station's slots and its riders' packs (StationPlan.holders) as it sees them."""
        for pipe in self.pipes:
            pipe.send(("placed",))
        return [station for part in self._gather("placed") for station in part]

    def reconnect(self) -> None:
        """Every station closes its socket and opens another, without booting again."""
        for pipe in self.pipes:
            pipe.send(("reconnect",))
        self._gather("reconnected")

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.send(("stop",))
        for pipe in self.pipes:
            pipe.recv()
        for process in self.processes:
            process.join(timeout=10)


def _decision_buckets(http: str) -> dict[float, float]:
    """The server's own Authorize timings so far (swapd_decision_seconds, from /metrics): the
    cumulative count of each bucket, by its upper bound in seconds."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "swapd_decision_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    counts[float(sample.labels["le"])] = sample.value
    return counts


def _server_side(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Server-side decision times of one phase: the share within the p99 target (counted up to
    the largest bucket bound not above it, so never more than is known to be within), and the
    upper bound of the bucket that holds the 99th percentile. Next to the stations' round trips
    they tell the server's queue from the network and the load generator."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    if total <= 0:
        return {}
    p99_bound = next(bound for bound, count in counts.items() if count >= 0.99 * total)
    target_s = TARGET_P99_MS / 1000
    within = max((count for bound, count in counts.items() if bound <= target_s), default=0.0) / total
    return {
        "server_decisions_within_20ms": round(within, 4),
        "server_decision_p99_at_most_ms": p99_bound * 1000,
    }


def open_loop_rate(max_rate: float) -> float:
    """The brief asks for the p99 "at half that load", that load being the 500 swaps/s target:
    half of it, or half of what the server carried when it carried less. Not half of a closed
    loop that beat the target: that would tie the latency measured to the throughput's noise
    (the closed loop's maximum varies by a quarter from run to run on a shared machine)."""
    return max(min(max_rate, TARGET_SWAPS_PER_S) / 2, 1.0)


def run_on(
    kind: str, size: Size, serve_args: Sequence[str] = (), open_rate: float | None = None
) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    with fresh_database(kind, "swaps") as url, Progress(console=console, transient=True) as progress:
        db = Database.open(url)
        plans = provision(db, size, progress)
        db.dispose()
        with swapd_server(url, serve_args) as server:
            connecting = progress.add_task(f"{kind}: connecting {size.stations} stations", total=None)
            generators = Generators(server.url, plans, size.workers)
            generators.ready()
            progress.remove_task(connecting)
            max_rate, closed, _ = _closed_loop(kind, size, server, generators, progress, url)
            metrics.update(closed)
            half = open_rate or open_loop_rate(max_rate)
            metrics.update(_open_loop(kind, size, server, generators, progress, half))
            generators.stop()
            metrics["server_rss_mib"] = round(server.rss_bytes() / 2**20, 1)
            metrics["loadavg_1m_after_open"] = load_average()["loadavg_1m"]
        # The server must have recorded exactly the swaps the stations completed (setup ones too).
        setup = size.stations * size.riders_per_station
        metrics["server_completed_swaps"] = _completed_swaps(url) - setup
    return {f"{key}_{kind}": value for key, value in metrics.items()}


def _backend_cpu_s(url: str) -> dict[int, float]:
    """PostgreSQL: CPU seconds each server process of this database has used (/proc)."""
    with sa.create_engine(database_url(url), poolclass=sa.pool.NullPool).connect() as connection:
        pids = connection.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return {int(pid): _cpu_s(int(pid), tree=False) for pid in pids}


def _closed_loop(
    kind: str, size: Size, server: Server, generators: Generators, progress: Progress, url: str
) -> tuple[float, dict[str, Any], Samples]:
    """Every station as fast as the server answers: the maximum rate (swaps/s) and its metrics."""
    phase = progress.add_task(f"{kind}: closed loop", total=None)
    cpu_before = _cpu_s(server.pid)
    backends_before = _backend_cpu_s(url) if kind.startswith("postgresql") else {}
    start_at = time.time() + 0.5
    profiler = _profile(server.pid, kind, size)
    closed = generators.run(("closed", start_at, size.warmup_s, size.run_s))
    if profiler is not None:
        profiler.wait()
    server_cpu_s = _cpu_s(server.pid) - cpu_before
    server_cpu = server_cpu_s / (0.5 + size.warmup_s + size.run_s)
    database: dict[str, Any] = {}
    if kind.startswith("postgresql"):
        # The database's own work a swap (its backends for this database; a connection opened
        # during the run counts from zero): the other half of what the machine spends.
        after = _backend_cpu_s(url)
        backends_s = sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in after.items())
        database["database_cpu_ms_per_swap"] = round(1000 * backends_s / max(closed.completed_all, 1), 2)
    progress.remove_task(phase)
    max_rate = closed.completed / size.run_s
    # CPU per swap does not depend on how much CPU other work left the server: the
    # number to compare across runs on a shared machine.
    per_swap = server_cpu_s / max(closed.completed_all, 1)
    return (
        max_rate,
        {
            "max_swaps_per_s": round(max_rate, 1),
            "closed_loop_decision_p50_ms": _ms(closed.decision_s, 0.50),
            "closed_loop_decision_p99_ms": _ms(closed.decision_s, 0.99),
            "closed_loop_swap_p50_ms": _ms(closed.swap_s, 0.50),
            "server_cpu_cores_at_max": round(server_cpu, 2),
            "server_cpu_ms_per_swap": round(per_swap * 1000, 2),
            **database,
            "closed_loop_errors": closed.errors + closed.refused,
            "loadavg_1m_after_max": load_average()["loadavg_1m"],
        },
        closed,
    )


def _open_loop(
    kind: str,
    size: Size,
    server: Server,
    generators: Generators,
    progress: Progress,
    rate: float,
) -> dict[str, Any]:
    """Swaps started at a fixed rate (swaps/s) whatever the answers: the latencies under load."""
    phase = progress.add_task(f"{kind}: open loop at {rate:.0f} swaps/s", total=None)
    start_at = time.time() + 0.5
    buckets_before = _decision_buckets(server.http)
    opened = generators.run(("open", start_at, size.warmup_s, size.run_s), rate_split=rate)
    server_side = _server_side(buckets_before, _decision_buckets(server.http))
    progress.remove_task(phase)
    return {
        "open_loop_rate_swaps_per_s": round(rate, 1),
        "open_loop_achieved_swaps_per_s": round(opened.completed / size.run_s, 1),
        "decision_p50_ms": _ms(opened.decision_s, 0.50),
        "decision_p99_ms": _ms(opened.decision_s, 0.99),
        **server_side,  # warm-up included: the server cannot tell it apart
        "battery_in_p99_ms": _ms(opened.battery_in_s, 0.99),
        "swap_p50_ms": _ms(opened.swap_s, 0.50),
        "swap_p99_ms": _ms(opened.swap_s, 0.99),
        "open_loop_late_starts": opened.late_starts,
        "open_loop_errors": opened.errors + opened.refused,
    }


@dataclass(frozen=True)
class RecordedLoad:
    """What the stations of the two-server phase recorded, as faults/verify.py reads a load."""

    prefix: str
    station_ids: list[str]
    baseline_swap_id: int
    acks: list[Ack]
    placed: list[tuple[str, dict[int, str | None], dict[str, str]]]

    @property
    def swaps_acknowledged(self) -> int:
        return sum(1 for ack in self.acks if ack.event == "BatteryOut")

    def places(self) -> dict[str, tuple[str, ...]]:
        ours: dict[str, tuple[str, ...]] = {}
        for station_id, slots, holders in self.placed:
            for slot_no, serial in slots.items():
                if serial is not None:
                    ours[serial] = ("slot", station_id, str(slot_no))
            for serial, rider_id in holders.items():
                ours[serial] = ("rider", rider_id)
        return ours


def run_two_servers(size: Size) -> dict[str, Any]:
    """The closed loop against ``swapd serve --workers 2`` on one PostgreSQL database, the
    stations spread over both processes by the kernel (SO_REUSEPORT); then faults/verify.py
    on that database: every acknowledged event exactly once, every swap charged once, the
    packs where the stations put them, the ledger check clean."""
    kind = TWO_SERVERS
    metrics: dict[str, Any] = {}
    with (
        fresh_database("postgresql", "swaps2") as url,
        Progress(console=console, transient=True) as progress,
    ):
        db = Database.open(url)
        plans = provision(db, size, progress, VERIFIED)
        baseline = _last_swap_id(db)
        db.dispose()
        with swapd_server(url, ["--workers", "2"], workers=2) as server:
            connecting = progress.add_task(f"{kind}: connecting {size.stations} stations", total=None)
            generators = Generators(server.url, plans, size.workers)
            generators.ready()
            progress.remove_task(connecting)
            _, closed, samples = _closed_loop(kind, size, server, generators, progress, url)
            metrics.update(closed)
            metrics["stations_by_worker"] = "+".join(
                str(n) for _, n in sorted(_stations_by_worker(server.log_path).items())
            )
            metrics["server_rss_mib"] = round(server.rss_bytes() / 2**20, 1)
            # Every station reconnects (some land on the other worker) and swaps on.
            phase = progress.add_task(f"{kind}: reconnected, swapping on", total=None)
            generators.reconnect()
            after = generators.run(("closed", time.time() + 0.5, 0.0, _after_reconnect_s(size)))
            progress.remove_task(phase)
            metrics["stations_moved_on_reconnect"] = _stations_moved(server.log_path)
            metrics["swaps_after_reconnect"] = after.completed
            metrics["errors_after_reconnect"] = after.errors + after.refused
            placed = generators.placed()
            generators.stop()
        checking = progress.add_task(f"{kind}: faults/verify.py", total=None)
        load = RecordedLoad(
            VERIFIED_PREFIX,
            [plan.station_id for plan in plans],
            baseline,
            [Ack(*ack) for ack in samples.acks + after.acks],
            placed,
        )
        verdict = verify(url, load)
        progress.remove_task(checking)
    metrics.update({f"verifier_{key}": value for key, value in _verdict_metrics(verdict).items()})
    return {f"{key}_{kind}": value for key, value in metrics.items()}


def _verdict_metrics(verdict: Verdict) -> dict[str, Any]:
    found = verdict.to_json()
    return {
        "ok": int(verdict.ok),
        "swaps_acknowledged": verdict.swaps_acknowledged,
        "events_acknowledged": verdict.events_acknowledged,
        "server_completed": verdict.server_completed,
        "lost": found["lost"],
        "doubled": found["doubled"],
        "duplicate_transfer_keys": verdict.duplicate_transfer_keys,
        "place_mismatches": len(verdict.place_mismatches),
        "ledger_ok": int(verdict.ledger_ok),
        "ledger_transfers": verdict.ledger_transfers,
        "examples": "; ".join(found["examples"][:3]),
    }


def _stations_by_worker(log_path: Path) -> Counter[int]:
    """Station connections by the worker that accepted them (``station_connected`` log records).
    Two workers share the log file, and a line can hold two records (seen in a full run): each
    record is decoded on its own, and text that is not one is skipped."""
    workers: Counter[int] = Counter()
    decoder = json.JSONDecoder()
    for line in log_path.read_text(errors="replace").splitlines():
        at = line.find("{")
        while at >= 0:
            try:
                record, end = decoder.raw_decode(line, at)
            except ValueError:
                at = line.find("{", at + 1)
                continue
            if isinstance(record, dict) and record.get("event") == "station_connected":
                workers[int(record.get("worker", -1))] += 1
            at = line.find("{", end)
    return workers


def _after_reconnect_s(size: Size) -> float:
    return max(2.0, size.run_s / 6)


def _stations_moved(log_path: Path) -> int:
    """Stations whose last two connections were accepted by different workers."""
    workers: dict[str, list[int]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"station_connected"' in line:
            entry = json.loads(line)
            workers.setdefault(str(entry.get("station")), []).append(int(entry.get("worker", -1)))
    return sum(1 for seen in workers.values() if len(seen) >= 2 and seen[-1] != seen[-2])


def _last_swap_id(db: Database) -> int:
    return int(db.read(lambda tx: tx.repo.execute(sa.select(sa.func.max(t.swaps.c.id))).scalar() or 0))


def _completed_swaps(url: str) -> int:
    db = Database.open(url)
    recorded = db.read(
        lambda tx: tx.repo.execute(
            sa.select(sa.func.count()).select_from(t.swaps).where(t.swaps.c.state == "completed")
        ).scalar_one()
    )
    db.dispose()
    return int(recorded)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.swaps", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--databases",
        default=f"sqlite,postgresql,{TWO_SERVERS}",
        help=f"phases: sqlite, postgresql, {TWO_SERVERS} (swapd serve --workers 2, closed loop "
        "only, then the fault drills' verifier)",
    )
    parser.add_argument("--stations", type=int, help="override the number of stations")
    parser.add_argument("--workers", type=int, help="load-generator processes")
    parser.add_argument("--seconds", type=float, help="measured seconds per phase")
    parser.add_argument(
        "--no-writer-process",
        action="store_true",
        help="serve SQLite's calls in the server process itself (as before the writer process)",
    )
    parser.add_argument(
        "--open-rate",
        type=float,
        help="swaps/s of the open loop (default: half the target, or of the maximum if lower)",
    )
    args = parser.parse_args(argv)
    serve_args = ["--no-writer-process"] if args.no_writer_process else []
    size = QUICK if args.quick else FULL
    if args.stations or args.workers or args.seconds:
        size = Size(
            args.stations or size.stations,
            size.riders_per_station,
            size.stock_per_station,
            size.warmup_s,
            args.seconds or size.run_s,
            args.workers or size.workers,
        )
    raise_fd_limit()
    metrics: dict[str, Any] = {**load_average()}
    notes = [
        f"{size.stations} stations, {size.riders_per_station} riders each, "
        f"{size.workers} load-generator process(es), {size.warmup_s:g} s warm-up + "
        f"{size.run_s:g} s measured per phase; decision = "
        "Authorize(BatterySerial) round trip; open loop at half the target (or of the "
        "closed-loop maximum if lower); "
        "server CPU and memory include its writer process (SQLite)."
        + (" Run with --no-writer-process." if args.no_writer_process else "")
    ]
    targets: dict[str, str] = {}
    for kind in args.databases.split(","):
        if kind.startswith("postgresql") and not pg_available():
            notes.append(f"PostgreSQL unreachable: {kind} skipped")
            continue
        console.log(f"swaps on {kind}: {size}")
        if kind == TWO_SERVERS:
            metrics.update(run_two_servers(size))
        else:
            metrics.update(run_on(kind, size, serve_args, args.open_rate))
    if "max_swaps_per_s_sqlite" in metrics:
        targets["max_swaps_per_s_sqlite"] = f">= {TARGET_SWAPS_PER_S}"
        targets["decision_p99_ms_sqlite"] = f"<= {TARGET_P99_MS:g}"
    if f"max_swaps_per_s_{TWO_SERVERS}" in metrics:
        notes.append(
            f"{TWO_SERVERS}: swapd serve --workers 2 on one PostgreSQL database, closed loop only, "
            "stations spread by the kernel (stations_by_worker), server CPU and memory of both "
            "workers and their supervisor; then every station reconnects and swaps on "
            f"for {_after_reconnect_s(size):g} s (stations_moved_on_reconnect: those that "
            "reached the other worker); then faults/verify.py on it "
            "(verifier_ok = 1: every acknowledged event once, every swap charged once, packs in "
            "place, ledger check clean)."
        )
        targets[f"closed_loop_errors_{TWO_SERVERS}"] = "== 0"
        targets[f"errors_after_reconnect_{TWO_SERVERS}"] = "== 0"
        targets[f"verifier_ok_{TWO_SERVERS}"] = "== 1"
    emit(NAME, metrics, targets, " ".join(notes))


if __name__ == "__main__":
    main()
