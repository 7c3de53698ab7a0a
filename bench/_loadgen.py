"""The swap load generator: simulated stations speaking OCPP-J 2.1 over real WebSockets, in a
process of its own, driven by the benchmark through a pipe.

Frames are written by hand (the same JSON the ``ocpp`` package sends) so that the generator spends
as little CPU as possible on the shared 2-core machine: what it measures should be the server.
One station sends one CALL at a time, as OCPP-J requires; many stations run concurrently.

The battery-as-key swap, as the profile spec and the simulator send it:
  Authorize(idToken={serial, BatterySerial})      -> Accepted, idTokenInfo.evseId = [slot k]
  BatterySwap(BatteryIn,  requestId, same token)   the returned pack, into an empty slot
  BatterySwap(BatteryOut, requestId, same token)   the charged pack taken from slot k
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from bench._common import connect_station

CONNECT_CONCURRENCY = 50
RETURN_SOC_DROP_PCT = (2.0, 8.0)  # a returned pack stays above the station's 90 % "charged" mark


class SwapFailed(Exception):
    pass


@dataclass
class StationPlan:
    """What one station looks like after provisioning (picklable, sent to the worker)."""

    station_id: str
    password: str
    slots: dict[int, str | None]  # slot number -> pack serial (None: empty)
    riders: list[str]  # the serial each queued rider holds
    # Serial -> the rider holding it. When given, the station records every event the server
    # acknowledged (Samples.acks) and where its packs end up (``placed``), for faults/verify.py.
    holders: dict[str, str] = field(default_factory=dict)


# An event the server acknowledged: station, requestId, BatteryIn or BatteryOut, the serials.
Ack = tuple[str, int, str, tuple[str, ...]]


@dataclass
class Samples:
    completed: int = 0
    completed_all: int = 0  # warm-up included (for CPU per swap)
    refused: int = 0
    errors: int = 0
    decision_s: list[float] = field(default_factory=list)
    battery_in_s: list[float] = field(default_factory=list)
    swap_s: list[float] = field(default_factory=list)
    late_starts: int = 0  # open loop: arrivals that found no idle station at their time
    acks: list[Ack] = field(default_factory=list)  # warm-up included; stations with holders only


class SimStation:
    def __init__(self, plan: StationPlan, ws: ClientConnection) -> None:
        self.id = plan.station_id
        self.slots = dict(plan.slots)
        self.riders = deque(plan.riders)
        self.ws = ws
        self._ids = itertools.count(1)
        self._requests = itertools.count(1)
        self.rng = random.Random(plan.station_id)
        self.holders = dict(plan.holders)
        self.tracked = bool(plan.holders)

    def placed(self) -> tuple[str, dict[int, str | None], dict[str, str]]:
        """Where this station's packs are now: its slots, and the riders' packs by serial."""
        return self.id, dict(self.slots), dict(self.holders)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        unique_id = str(next(self._ids))
        await self.ws.send(json.dumps([2, unique_id, action, payload]))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply[0] == 2:  # a CALL from the server: not expected here, answer nothing
                continue
            if reply[1] != unique_id:
                continue
            if reply[0] == 4:
                raise SwapFailed(f"{action}: CALLERROR {reply[2]}: {reply[3]}")
            result: dict[str, Any] = reply[2]
            return result

    async def boot(self) -> None:
        answer = await self.call(
            "BootNotification",
            {"chargingStation": {"model": "BenchCab", "vendorName": "swapd-bench"}, "reason": "PowerUp"},
        )
        if answer.get("status") != "Accepted":
            raise SwapFailed(f"{self.id}: boot {answer}")

    async def swap(self, samples: Samples, counted: bool) -> None:
        """One complete battery-as-key swap by the next rider in this station's queue."""
        serial = self.riders.popleft()
        token = {"idToken": serial, "type": "BatterySerial"}
        try:
            started = time.perf_counter()
            answer = await self.call("Authorize", {"idToken": token})
            decided = time.perf_counter()
            info = answer.get("idTokenInfo", {})
            if info.get("status") != "Accepted" or not info.get("evseId"):
                if counted:
                    samples.refused += 1
                self.riders.append(serial)
                return
            offered = int(info["evseId"][0])
            taken = self.slots[offered]
            empty = next(s for s, p in sorted(self.slots.items()) if p is None)
            request_id = next(self._requests)
            returned_soc = round(100.0 - self.rng.uniform(*RETURN_SOC_DROP_PCT), 1)
            await self.call(
                "BatterySwap",
                {
                    "batteryData": [
                        {"evseId": empty, "serialNumber": serial, "soC": returned_soc, "soH": 100}
                    ],
                    "eventType": "BatteryIn",
                    "idToken": token,
                    "requestId": request_id,
                },
            )
            returned = time.perf_counter()
            self.slots[empty] = serial
            if self.tracked:
                samples.acks.append((self.id, request_id, "BatteryIn", (serial,)))
            await self.call(
                "BatterySwap",
                {
                    "batteryData": [{"evseId": offered, "serialNumber": taken, "soC": 100, "soH": 100}],
                    "eventType": "BatteryOut",
                    "idToken": token,
                    "requestId": request_id,
                },
            )
            done = time.perf_counter()
            self.slots[offered] = None
            assert taken is not None
            self.riders.append(taken)
            if self.tracked:
                samples.acks.append((self.id, request_id, "BatteryOut", (taken,)))
                self.holders[taken] = self.holders.pop(serial)
        except (SwapFailed, OSError, KeyError, StopIteration, ValueError):
            if counted:
                samples.errors += 1
            raise
        samples.completed_all += 1
        if counted:
            samples.completed += 1
            samples.decision_s.append(decided - started)
            samples.battery_in_s.append(returned - decided)
            samples.swap_s.append(done - started)


def _auth(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _socket(url: str, plan: StationPlan) -> ClientConnection:
    ws: ClientConnection = await connect_station(
        f"{url}/ocpp/{plan.station_id}",
        subprotocols=[Subprotocol("ocpp2.1")],
        additional_headers=_auth(plan.station_id, plan.password),
        open_timeout=120,
        ping_interval=None,
        max_size=1024 * 1024,
    )
    return ws


async def _open(url: str, plan: StationPlan, gate: asyncio.Semaphore) -> SimStation:
    async with gate:
        station = SimStation(plan, await _socket(url, plan))
        await station.boot()
        return station


async def _reopen(url: str, plan: StationPlan, station: SimStation, gate: asyncio.Semaphore) -> None:
    """Close the station's socket and open another, as a station does after a network outage:
    no BootNotification, the swaps go on (on whichever server process the socket reaches)."""
    async with gate:
        await station.ws.close()
        station.ws = await _socket(url, plan)


async def _closed_loop(
    stations: list[SimStation], start_at: float, warmup_s: float, run_s: float
) -> Samples:
    """Every station swaps back to back: the most the server completes."""
    samples = Samples()
    count_from, stop_at = start_at + warmup_s, start_at + warmup_s + run_s
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def loop(station: SimStation) -> None:
        while time.time() < stop_at:
            counted = time.time() >= count_from
            try:
                await station.swap(samples, counted)
            except (SwapFailed, OSError, KeyError, StopIteration, ValueError):
                await asyncio.sleep(0.05)

    await asyncio.gather(*(loop(s) for s in stations))
    return samples


async def _open_loop(
    stations: list[SimStation], start_at: float, warmup_s: float, run_s: float, rate_per_s: float
) -> Samples:
    """Swaps start at a fixed rate whatever the answers take (open loop), each on an idle station."""
    samples = Samples()
    idle: asyncio.Queue[SimStation] = asyncio.Queue()
    for station in stations:
        idle.put_nowait(station)
    count_from, stop_at = start_at + warmup_s, start_at + warmup_s + run_s
    interval_s = 1.0 / rate_per_s
    tasks: set[asyncio.Task[None]] = set()
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def one(station: SimStation, counted: bool) -> None:
        try:
            await station.swap(samples, counted)
        except (SwapFailed, OSError, KeyError, StopIteration, ValueError):
            pass
        finally:
            idle.put_nowait(station)

    next_at = time.time()
    while next_at < stop_at:
        delay = next_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        counted = next_at >= count_from
        if idle.empty() and counted:
            samples.late_starts += 1
        station = await idle.get()
        task = asyncio.create_task(one(station, counted))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval_s
    if tasks:
        await asyncio.gather(*tasks)
    return samples


async def _serve(pipe: Connection, url: str, plans: list[StationPlan]) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    stations = list(await asyncio.gather(*(_open(url, plan, gate) for plan in plans)))
    pipe.send(("ready", len(stations)))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        kind = command[0]
        if kind == "closed":
            _, start_at, warmup_s, run_s = command
            samples = await _closed_loop(stations, start_at, warmup_s, run_s)
        elif kind == "open":
            _, start_at, warmup_s, run_s, rate = command
            samples = await _open_loop(stations, start_at, warmup_s, run_s, rate)
        elif kind == "placed":
            pipe.send(("placed", [station.placed() for station in stations]))
            continue
        elif kind == "reconnect":
            await asyncio.gather(
                *(_reopen(url, plan, s, gate) for plan, s in zip(plans, stations, strict=True))
            )
            pipe.send(("reconnected",))
            continue
        else:
            for station in stations:
                await station.ws.close()
            pipe.send(("stopped",))
            return
        pipe.send(("samples", samples))


def worker_main(pipe: Connection, url: str, plans: list[StationPlan]) -> None:
    """Entry point of one load-generator process."""
    from bench._common import raise_fd_limit

    raise_fd_limit()
    try:
        asyncio.run(_serve(pipe, url, plans))
    except Exception as error:
        pipe.send(("failed", f"{type(error).__name__}: {error}"))
        raise
