"""The drills: each sets up a network, drives load through a real ``swapd serve`` process,
injects its fault, and returns what it measured with the verdict of ``verify``."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from faults.client import Counters
from faults.load import Load
from faults.pg import PrivatePostgres
from faults.server import ServerProcess
from faults.verify import Verdict, verify
from swapd.sim.embedded import embedded_server, free_port
from swapd.store import schema
from swapd.store.database import Database
from swapd.store.engine import make_engine

PROGRESS_TIMEOUT_S = 120.0

OnRound = Callable[[int, dict[str, Any]], None]


@dataclass
class DrillResult:
    scenario: str
    database: str
    rounds: int
    stations: int
    seconds: float
    verdict: Verdict
    counters: dict[str, int]
    rounds_detail: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.extra.get("failures")

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "database": self.database,
            "ok": self.ok,
            "rounds": self.rounds,
            "stations": self.stations,
            "seconds": round(self.seconds, 1),
            "verdict": self.verdict.to_json(),
            "station_counters": self.counters,
            **self.extra,
            "rounds_detail": self.rounds_detail,
        }


def _sum_counters(load: Load) -> dict[str, int]:
    total = Counters()
    for station in load.stations:
        c = station.client.counters
        total.sent += c.sent
        total.resent += c.resent
        total.reconnects += c.reconnects
        total.retry_errors += c.retry_errors
    return {
        "calls_sent": total.sent,
        "calls_resent": total.resent,
        "reconnects": total.reconnects,
        "internal_error_answers": total.retry_errors,
        "refusals": sum(load.refusals.values()),
        "errors": sum(load.errors.values()),
    }


async def _progress(load: Load, after: int, timeout_s: float = PROGRESS_TIMEOUT_S) -> float:
    """Wait until the load has more acknowledgements than ``after``; the seconds it took."""
    started = time.monotonic()
    while len(load.acks) <= after:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no swap acknowledged in {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _start_while_building(server: ServerProcess, build: Callable[[], Load]) -> Load:
    """Start the server while the load's network is built: the server's start-up (imports, its
    writer process) runs in its own process and the build (station passwords, top-ups) here,
    so the two take the time of the longer one. The database must already be migrated."""
    # Submitted to a thread now, not at the loop's next turn: the build below blocks the loop.
    starting = asyncio.get_running_loop().run_in_executor(None, server.start)
    try:
        load = build()
    except BaseException:
        with contextlib.suppress(Exception):
            await starting
        raise
    await starting
    return load


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    yield f"sqlite:///{directory / f'faults-{uuid.uuid4().hex[:8]}.db'}"


@contextmanager
def shared_postgres_database(admin_url: str) -> Iterator[str]:
    """A database of its own on the shared server (created and dropped; the server is never
    stopped)."""
    name = f"swapd_faults_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- kill -9 ---------------------------------------------------------------------------------------


async def kill9(
    database_url: str,
    *,
    rounds: int,
    stations: int = 4,
    seed: int = 1,
    on_round: OnRound | None = None,
    keep: list[Load] | None = None,
    target: str = "server",
) -> DrillResult:
    """SIGKILL the server at a random moment while stations swap, restart it, ``rounds`` times.
    ``target="writer"``: SIGKILL the server's writer process instead (SQLite), and let the
    server start another; "restart" is then the time until the next acknowledged event."""
    if target not in ("server", "writer"):
        raise ValueError(f"unknown target {target!r}: server or writer")
    started = time.monotonic()
    db = Database.open(database_url)
    server = ServerProcess(database_url, free_port())
    rng = random.Random(seed)
    try:
        load = await _start_while_building(server, lambda: Load(db, stations=stations, seed=seed))
        if keep is not None:
            keep.append(load)  # for a test that tampers with the database afterwards
        await load.connect(server.ws_url)
        stop = asyncio.Event()
        runner = asyncio.create_task(load.run(stop))
        details = []
        try:
            for round_no in range(1, rounds + 1):
                await _progress(load, len(load.acks))  # the server is busy again
                await asyncio.sleep(rng.uniform(0.0, 0.8))
                acked = len(load.acks)
                if target == "writer":
                    server.kill9_writer()
                    restart_s = first_ack_s = await _progress(load, len(load.acks))
                else:
                    server.kill9()
                    restart_s = await asyncio.to_thread(server.start)
                    first_ack_s = await _progress(load, len(load.acks))
                detail = {
                    "round": round_no,
                    "acks_before_kill": acked,
                    "restart_s": round(restart_s, 2),
                    "first_ack_after_restart_s": round(first_ack_s, 2),
                }
                details.append(detail)
                if on_round is not None:
                    on_round(round_no, detail)
        finally:
            stop.set()
            await runner
            await load.close()
        server.stop()
        verdict = await asyncio.to_thread(verify, database_url, load)
        restarts = [d["restart_s"] for d in details]
        return DrillResult(
            "kill9",
            db.dialect,
            rounds,
            stations,
            time.monotonic() - started,
            verdict,
            _sum_counters(load),
            details,
            {
                "kills": server.kills,
                "target": target,
                "restart_s_max": max(restarts, default=0.0),
                "restart_s_mean": round(sum(restarts) / len(restarts), 2) if restarts else 0.0,
                "load_errors": dict(load.errors),
                "notes": load.notes[:10],
            },
        )
    finally:
        server.close()
        db.dispose()


async def steady(
    database_url: str,
    *,
    acks: int,
    stations: int = 2,
    seed: int = 1,
    keep: list[Load] | None = None,
) -> DrillResult:
    """No fault: stations swap against a server in this process until ``acks`` events are
    acknowledged, then stop; the verdict of ``verify``. The baseline for a test of the verifier
    itself, which tampers with the database afterwards: no server process to start."""
    started = time.monotonic()
    db = Database.open(database_url)
    try:
        load = Load(db, stations=stations, seed=seed)
        if keep is not None:
            keep.append(load)
        with embedded_server(db) as url:
            await load.connect(url)
            stop = asyncio.Event()
            runner = asyncio.create_task(load.run(stop))
            try:
                await _progress(load, acks - 1)
            finally:
                stop.set()
                await runner
                await load.close()
        verdict = await asyncio.to_thread(verify, database_url, load)
        return DrillResult(
            "steady",
            db.dialect,
            0,
            stations,
            time.monotonic() - started,
            verdict,
            _sum_counters(load),
            extra={"load_errors": dict(load.errors), "notes": load.notes[:10]},
        )
    finally:
        db.dispose()


def _health_status(http_url: str) -> int:
    return httpx.get(f"{http_url}/healthz", timeout=30).status_code


# -- PostgreSQL crash ------------------------------------------------------------------------------


async def pg_restart(
    *,
    rounds: int,
    stations: int = 4,
    down_s: float = 2.0,
    seed: int = 1,
    on_round: OnRound | None = None,
) -> DrillResult:
    """Crash a private PostgreSQL (``pg_ctl -m immediate``) under load, keep it down
    ``down_s``, start it again; the server must reconnect by itself and lose nothing."""
    started = time.monotonic()
    pg = PrivatePostgres()
    server: ServerProcess | None = None
    db: Database | None = None
    try:
        pg.init()
        pg.start()
        url = pg.create_database("swapd")
        db = Database.open(url)
        opened = db
        server = ServerProcess(url, free_port())
        load = await _start_while_building(server, lambda: Load(opened, stations=stations, seed=seed))
        await load.connect(server.ws_url)
        stop = asyncio.Event()
        runner = asyncio.create_task(load.run(stop))
        rng = random.Random(seed)
        details = []
        try:
            for round_no in range(1, rounds + 1):
                await _progress(load, len(load.acks))
                await asyncio.sleep(rng.uniform(0.0, 0.8))
                await asyncio.to_thread(pg.crash)
                crashed_at = time.monotonic()
                await asyncio.sleep(down_s)
                acks_while_down = len(load.acks)
                down_health = await asyncio.to_thread(_health_status, server.http_url)
                start_s = await asyncio.to_thread(pg.start)
                up_at = time.monotonic()
                recover_s = await _progress(load, len(load.acks))
                health = httpx.get(f"{server.http_url}/healthz", timeout=10).status_code
                detail = {
                    "round": round_no,
                    "pg_start_s": round(start_s, 2),
                    "first_ack_after_pg_up_s": round(recover_s, 2),
                    "outage_seen_by_stations_s": round(up_at + recover_s - crashed_at, 2),
                    "acks_before_restart": acks_while_down,
                    "healthz_while_down": down_health,
                    "healthz_after": health,
                }
                details.append(detail)
                if on_round is not None:
                    on_round(round_no, detail)
        finally:
            stop.set()
            await runner
            await load.close()
        server.stop()
        verdict = await asyncio.to_thread(verify, url, load)
        recovers = [d["first_ack_after_pg_up_s"] for d in details]
        failures = [d for d in details if d["healthz_after"] != 200 or d["healthz_while_down"] != 503]
        return DrillResult(
            "pg-restart",
            "postgresql (private server)",
            rounds,
            stations,
            time.monotonic() - started,
            verdict,
            _sum_counters(load),
            details,
            {
                "pg_crashes": pg.crashes,
                "down_s": down_s,
                "recover_s_max": max(recovers, default=0.0),
                "recover_s_mean": round(sum(recovers) / len(recovers), 2) if recovers else 0.0,
                "failures": failures,
                "load_errors": dict(load.errors),
                "notes": load.notes[:10],
            },
        )
    finally:
        if server is not None:
            server.close()
        if db is not None:
            db.dispose()
        pg.close()


# -- reconnect storm -------------------------------------------------------------------------------


def _balances(database_url: str) -> dict[int, tuple[int, int, int, int]]:
    engine = make_engine(database_url)
    a = schema.accounts.c
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            )
            return {int(r[0]): (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}
    finally:
        engine.dispose()


async def storm(
    database_url: str,
    *,
    stations: int = 200,
    rounds: int = 1,
    seed: int = 1,
    on_round: OnRound | None = None,
) -> DrillResult:
    """Every station connects at once and swaps; then, ``rounds`` times, every station loses its
    link at the same moment (half drop TCP, half leave a half-open socket the server still
    believes in), all reconnect at once, resend their last BatterySwap, and swap again."""
    started = time.monotonic()
    db = Database.open(database_url)
    server = ServerProcess(database_url, free_port())
    try:
        load = await _start_while_building(
            server, lambda: Load(db, stations=stations, riders_per_station=1, slots=4, seed=seed)
        )
        connect_started = time.monotonic()
        await load.connect(server.ws_url)
        first_connect_s = time.monotonic() - connect_started
        await asyncio.gather(*(load.swap(s, s.riders[0]) for s in load.stations))
        details = []
        failures: list[str] = []
        for round_no in range(1, rounds + 1):
            for index, station in enumerate(load.stations):
                if index % 2:
                    station.client.abort()
                else:
                    station.client.abandon()
            before = await asyncio.to_thread(_balances, database_url)
            storm_started = time.monotonic()
            # Each resend goes out on a new connection (call reconnects a station without one).
            answers = await asyncio.gather(
                *(s.client.call("BatterySwap", load.last_event[s.id]) for s in load.stations)
            )
            reconnect_s = time.monotonic() - storm_started
            after = await asyncio.to_thread(_balances, database_url)
            changed = sum(1 for k in before if before[k] != after.get(k))
            if changed or len(after) != len(before):
                failures.append(f"round {round_no}: resent BatterySwaps changed {changed} accounts")
            if any(answer != {} for answer in answers):
                failures.append(f"round {round_no}: a resend was not answered with {{}}")
            health = httpx.get(f"{server.http_url}/healthz", timeout=10).json()
            if health.get("stations") != stations:
                failures.append(f"round {round_no}: server holds {health.get('stations')} sessions")
            swaps_started = time.monotonic()
            await asyncio.gather(*(load.swap(s, s.riders[0]) for s in load.stations))
            detail = {
                "round": round_no,
                "reconnect_and_resend_s": round(reconnect_s, 2),
                "sessions_after": health.get("stations"),
                "accounts_changed_by_resends": changed,
                "swap_after_storm_s": round(time.monotonic() - swaps_started, 2),
            }
            details.append(detail)
            if on_round is not None:
                on_round(round_no, detail)
        await load.close()
        server.stop()
        verdict = await asyncio.to_thread(verify, database_url, load)
        return DrillResult(
            "storm",
            db.dialect,
            rounds,
            stations,
            time.monotonic() - started,
            verdict,
            _sum_counters(load),
            details,
            {
                "first_connect_all_s": round(first_connect_s, 2),
                "failures": failures,
                "load_errors": dict(load.errors),
                "notes": load.notes[:10],
            },
        )
    finally:
        server.close()
        db.dispose()
