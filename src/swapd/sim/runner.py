"""One simulation run: set the network up, start (or reach) the server, play the simulated time
over real WebSockets, then compare what the simulator saw with what the server wrote.

Against a live server (``server`` given) the database is the operator's: the run refuses one that
holds real riders unless allowed, and at the end, whatever happened, removes every row it created
(``cleanup``); should that removal be impossible it retires them instead (stations disabled,
riders blocked; its plans were never listed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from swapd.services.swaps import SwapState
from swapd.sim import cleanup as sim_cleanup
from swapd.sim import network as net
from swapd.sim.config import SimConfig
from swapd.sim.embedded import embedded_server
from swapd.sim.physics import SimClock
from swapd.sim.rider import Context, SimRider
from swapd.sim.station import SimStation, SlotUse, StationError
from swapd.sim.stats import Snapshot, Stats
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.engine import database_url, make_engine
from swapd.store.ledger_check import check_ledger

PROGRESS_INTERVAL_S = 0.25
MAX_APP_REQUESTS_IN_FLIGHT = 8
MAX_REPORTED_MISMATCHES = 10

Progress = Callable[[Snapshot], None]
Phase = Callable[[str], None]


@dataclass
class Summary:
    """Everything a run reports; ``ok`` is what the exit code says."""

    prefix: str
    database: str
    server: str
    config: SimConfig
    setup_s: float
    run_s: float
    stats: Stats
    handouts: int
    server_completed: int
    ledger_ok: bool
    ledger_problems: list[str]
    ledger_transfers: int
    place_mismatches: list[str] = field(default_factory=list)
    open_offers: int = 0
    cleanup: Cleanup | None = None  # against a live server: what was removed afterwards

    @property
    def sim_completed(self) -> int:
        return self.stats.completed

    @property
    def counts_agree(self) -> bool:
        return self.sim_completed == self.server_completed

    @property
    def ok(self) -> bool:
        return (
            self.counts_agree
            and self.ledger_ok
            and not self.place_mismatches
            and self.stats.resends_changed == 0
            and (self.cleanup is None or self.cleanup.ok)
        )

    @property
    def messages_per_s(self) -> float:
        return self.stats.messages / self.run_s if self.run_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        stats, config = self.stats, self.config
        return {
            "ok": self.ok,
            "prefix": self.prefix,
            "database": self.database,
            "server": self.server,
            "network": {
                "stations": config.stations,
                "slots": config.slots,
                "riders": config.riders,
                "hours": config.hours,
                "speed": config.speed,
                "seed": config.seed,
            },
            "setup_s": round(self.setup_s, 2),
            "run_s": round(self.run_s, 2),
            "swaps": {
                "completed": stats.completed,
                "by_flow": dict(stats.swaps.most_common()),
                "walked_away": stats.walked_away,
                "resent_after_reconnect": stats.resends,
                "first_packs_at_setup": self.handouts,
            },
            "refusals": {
                "total": sum(stats.refusals.values()),
                "by_reason": dict(stats.refusals.most_common()),
            },
            "skipped": dict(stats.skipped),
            "top_ups": stats.top_ups,
            "messages": {
                "sent": stats.messages,
                "per_s": round(self.messages_per_s, 1),
                "by_action": dict(stats.sent.most_common()),
                "received": dict(stats.received),
                "call_errors": dict(stats.call_errors),
                "reconnects": stats.reconnects,
            },
            "decision_latency_ms": stats.latency_ms(),
            "errors": dict(stats.errors),
            "consistency": {
                "sim_completed": self.sim_completed,
                "server_completed": self.server_completed,
                "counts_agree": self.counts_agree,
                "ledger_ok": self.ledger_ok,
                "ledger_transfers": self.ledger_transfers,
                "ledger_problems": self.ledger_problems[:MAX_REPORTED_MISMATCHES],
                "resends_that_changed_something": stats.resends_changed,
                "pack_places_agree": not self.place_mismatches,
                "pack_place_mismatches": self.place_mismatches,
                "open_offers_left": self.open_offers,
            },
            "cleanup": None if self.cleanup is None else self.cleanup.to_json(),
            "notes": stats.notes,
        }


@dataclass
class Cleanup:
    """What became of a live-server run's rows: removed (``removed``), else retired."""

    prefix: str
    removed: sim_cleanup.Removed | None
    retired: sim_cleanup.Retired | None
    error: str | None
    ledger_ok: bool
    ledger_problems: list[str]

    @property
    def ok(self) -> bool:
        return self.removed is not None and self.ledger_ok

    def line(self) -> str:
        if self.removed is not None:
            return f"removed run {self.prefix} from the database: {self.removed.line()}"
        if self.retired is not None:
            return (
                f"could not remove run {self.prefix} ({self.error}); retired it instead: "
                f"{self.retired.line()}"
            )
        return f"could not remove or retire run {self.prefix}: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "removed": None if self.removed is None else asdict(self.removed),
            "retired": None if self.retired is None else asdict(self.retired),
            "error": self.error,
            "ledger_ok_after": self.ledger_ok,
            "ledger_problems_after": self.ledger_problems[:MAX_REPORTED_MISMATCHES],
        }


@contextmanager
def _database_url(config: SimConfig) -> Iterator[str]:
    if config.database is not None or not config.embedded:
        yield database_url(config.database)
        return
    with tempfile.TemporaryDirectory(prefix="swapd-sim-") as scratch:
        yield f"sqlite:///{Path(scratch) / 'sim.db'}"


def run(
    config: SimConfig, *, on_progress: Progress | None = None, on_phase: Phase | None = None
) -> Summary:
    """Run a whole simulation; blocking. Raises ValueError for a bad configuration."""
    config.check()
    phase = on_phase or (lambda _text: None)
    with _database_url(config) as url:
        db = Database.open(url)  # migrates a new database
        try:
            if config.embedded:
                return _run(config, db, url, net.new_prefix(db), phase, on_progress)
            real = sim_cleanup.real_riders(db)
            if real and not config.allow_real_data:
                raise sim_cleanup.RealData(real)
            prefix = net.new_prefix(db)
            try:
                summary = _run(config, db, url, prefix, phase, on_progress)
            except BaseException as error:
                phase(f"removing what run {prefix} created")
                try:
                    error.add_note(_clean_up(db, prefix).line())
                except Exception as failure:  # the database is gone too: say so, keep the cause
                    error.add_note(f"could not remove run {prefix}: {failure}")
                raise
            phase(f"removing what run {prefix} created")
            summary.cleanup = _clean_up(db, prefix)
            return summary
        finally:
            db.dispose()


def _clean_up(db: Database, prefix: str) -> Cleanup:
    """Remove the run's rows; if that fails, retire them. Then check the ledger again."""
    sim_cleanup.wait_disconnected(db, prefix)
    removed = retired = None
    error = None
    try:
        removed = sim_cleanup.remove_run(db, prefix)
    except (sim_cleanup.CleanupError, sa.exc.SQLAlchemyError) as failure:
        error = str(failure).splitlines()[0]
        try:
            retired = sim_cleanup.retire_run(db, prefix)
        except sa.exc.SQLAlchemyError as second:
            error += f"; retiring failed too: {str(second).splitlines()[0]}"
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    return Cleanup(prefix, removed, retired, error, report.ok, list(report.problems))


def _run(
    config: SimConfig,
    db: Database,
    url: str,
    prefix: str,
    phase: Phase,
    on_progress: Progress | None,
) -> Summary:
    phase("setting up the network")
    started = time.monotonic()
    network = net.build(db, config, random.Random(config.seed), prefix)
    setup_s = time.monotonic() - started
    stats = Stats()
    with contextlib.ExitStack() as stack:
        if config.server is None:
            server_db = Database(make_engine(url))  # the server's own engine and pool
            stack.callback(server_db.dispose)
            server_url = stack.enter_context(embedded_server(server_db))
        else:
            server_url = config.server
        phase(f"running {config.hours:g} simulated hours against {server_url}")
        run_s, riders, stations = asyncio.run(play(config, network, server_url, db, stats, on_progress))
    phase("checking")
    return _summarise(config, network, db, stats, riders, stations, setup_s, run_s, url, server_url)


async def play(
    config: SimConfig,
    network: net.Network,
    server_url: str,
    db: Database,
    stats: Stats,
    on_progress: Progress | None,
) -> tuple[float, list[SimRider], list[SimStation]]:
    clock = SimClock(config.speed)
    stations = [
        SimStation(
            spec,
            server_url,
            clock,
            stats,
            response_timeout_s=config.response_timeout_s,
            meter_interval_s=config.meter_interval_s,
            heartbeat_interval_s=config.heartbeat_interval_s,
        )
        for spec in network.stations
    ]
    try:
        await asyncio.gather(*(s.start() for s in stations))
    except StationError:
        await asyncio.gather(*(s.stop() for s in stations), return_exceptions=True)
        raise
    tasks: list[asyncio.Task[Any]] = []
    try:
        run_s, riders = await _play_time(config, network, db, stats, on_progress, clock, stations, tasks)
    finally:
        # Interrupted or failed: no rider or station loop outlives the run, and every socket is
        # closed before the caller removes the run's stations.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in stations), return_exceptions=True)
    return run_s, riders, stations


async def _play_time(
    config: SimConfig,
    network: net.Network,
    db: Database,
    stats: Stats,
    on_progress: Progress | None,
    clock: SimClock,
    stations: list[SimStation],
    tasks: list[asyncio.Task[Any]],
) -> tuple[float, list[SimRider]]:
    clock.start()
    end_s = config.duration_s
    ctx = Context(
        clock, stations, stats, db, config, end_s, asyncio.Semaphore(MAX_APP_REQUESTS_IN_FLIGHT)
    )
    riders = [
        SimRider(spec, ctx, random.Random(config.seed * 1_000_003 + index))
        for index, spec in enumerate(network.riders)
    ]
    stop = asyncio.Event()
    background = [asyncio.create_task(s.run_charging(end_s, stop)) for s in stations]
    background += [asyncio.create_task(s.run_heartbeat(end_s, stop)) for s in stations]
    if on_progress is not None:
        background.append(asyncio.create_task(_progress(clock, end_s, config, stats, on_progress, stop)))
    rider_tasks = [asyncio.create_task(r.live(), name=r.id) for r in riders]
    tasks += background + rider_tasks
    _done, pending = await asyncio.wait(rider_tasks, timeout=end_s / config.speed + config.grace_s)
    for task in pending:
        task.cancel()
        stats.errors["rider stopped at the end"] += 1
    await asyncio.gather(*pending, return_exceptions=True)
    for task in rider_tasks:
        if not task.cancelled() and task.exception() is not None:
            stats.errors["rider crashed"] += 1
            stats.note(f"{task.get_name()} crashed: {task.exception()!r}")
    await clock.sleep_until(end_s)
    stop.set()
    for outcome in await asyncio.gather(*background, return_exceptions=True):
        if isinstance(outcome, BaseException):
            stats.errors["station loop crashed"] += 1
            stats.note(f"station loop crashed: {outcome!r}")
    run_s = clock.real_elapsed()
    if on_progress is not None:
        on_progress(stats.snapshot(min(clock.now(), end_s), end_s, run_s))
    return run_s, riders


async def _progress(
    clock: SimClock,
    end_s: float,
    config: SimConfig,
    stats: Stats,
    on_progress: Progress,
    stop: asyncio.Event,
) -> None:
    max_frames = int((end_s / config.speed + config.grace_s) / PROGRESS_INTERVAL_S) + 100
    for _ in range(max_frames):
        on_progress(stats.snapshot(min(clock.now(), end_s), end_s, clock.real_elapsed()))
        with contextlib.suppress(
            TimeoutError
        ):  # asyncio.timeout: wait_for (3.11) can swallow a cancellation
            async with asyncio.timeout(PROGRESS_INTERVAL_S):
                await stop.wait()
        if stop.is_set():
            return


def _places(tx: Tx, prefix: str) -> dict[str, tuple[str, ...]]:
    """Where the server has every pack of this run: ('rider', id) or ('slot', station, n)."""
    p = t.packs.c
    rows = tx.repo.execute(
        sa.select(p.serial, p.status, p.rider_id, p.station_id, p.slot_no).where(
            p.serial.startswith(f"{prefix}-P", autoescape=True)
        )
    )
    places: dict[str, tuple[str, ...]] = {}
    for row in rows:
        if row.status == "with_rider":
            places[row.serial] = ("rider", str(row.rider_id))
        elif row.status == "in_slot":
            places[row.serial] = ("slot", str(row.station_id), str(row.slot_no))
        else:
            places[row.serial] = (str(row.status),)
    return places


def _summarise(
    config: SimConfig,
    network: net.Network,
    db: Database,
    stats: Stats,
    riders: list[SimRider],
    stations: list[SimStation],
    setup_s: float,
    run_s: float,
    url: str,
    server_url: str,
) -> Summary:
    server_completed = net.server_completed(db, network)
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    ours: dict[str, tuple[str, ...]] = {}
    for rider in riders:
        for pack in rider.packs:
            ours[pack.serial] = ("rider", rider.id)
    for station in stations:
        for slot_no, slot in enumerate(station.slots, start=1):
            if slot is None:
                continue
            if slot.use is SlotUse.RIDER:  # a swap cut short: the pack is still the rider's
                continue
            ours[slot.serial] = ("slot", station.id, str(slot_no))
    theirs = db.read(lambda tx: _places(tx, network.prefix))
    mismatches = [
        f"{serial}: sim {ours.get(serial)} server {theirs.get(serial)}"
        for serial in sorted(set(ours) | set(theirs))
        if ours.get(serial) != theirs.get(serial)
    ]
    ids = [s.id for s in network.stations]
    open_offers = db.read(
        lambda tx: int(
            tx.repo.execute(
                sa.select(sa.func.count())
                .select_from(t.swaps)
                .where(t.swaps.c.station_id.in_(ids), t.swaps.c.state == SwapState.OFFERED)
            ).scalar_one()
        )
    )
    temporary = config.database is None and config.embedded
    return Summary(
        prefix=network.prefix,
        database="(temporary SQLite file)" if temporary else _safe_url(url),
        server=server_url if config.server else f"embedded at {server_url}",
        config=config,
        setup_s=setup_s,
        run_s=run_s,
        stats=stats,
        handouts=network.handouts,
        server_completed=server_completed,
        ledger_ok=report.ok,
        ledger_problems=list(report.problems),
        ledger_transfers=report.transfers,
        place_mismatches=_shorten(mismatches),
        open_offers=open_offers,
    )


def _shorten(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_REPORTED_MISMATCHES:
        return lines
    return [*lines[:MAX_REPORTED_MISMATCHES], f"... and {len(lines) - MAX_REPORTED_MISMATCHES} more"]


def _safe_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
