"""Load for the drills: stations of a simulator network doing battery-as-key swaps over OCPP,
each with its own riders, recording every event the server acknowledged.

A station keeps a message until it is answered (see ``client.StationClient.call``), so a swap
cut by a crash is finished after the restart with the same requestId, as a real station resends
its queue. When ``run`` returns, every swap started has been acknowledged, and the model here
(which pack is in which slot, which rider holds which pack) is what the server must hold.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from faults.client import CallError, StationClient, battery, meter_soc, swap_event
from swapd.services import payments
from swapd.sim import network as net
from swapd.sim.config import Shares, SimConfig
from swapd.store.database import Database

# Enough allowance that nobody runs dry during a drill: refusals are not what is tested here.
TOP_UP_MINOR = 50_000_000
CHARGED_PCT = 100.0
MAX_SWAPS_PER_STATION = 1_000_000


@dataclass(frozen=True, slots=True)
class Ack:
    """An event the server answered: it must be in the database exactly once."""

    station_id: str
    request_id: int
    event: str  # BatteryIn or BatteryOut
    serials: tuple[str, ...]


@dataclass
class Pack:
    serial: str
    soc_pct: float
    soh_pct: float


@dataclass
class Rider:
    id: str
    pack: Pack


@dataclass
class Station:
    client: StationClient
    slots: list[Pack | None]
    riders: list[Rider]
    request_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def id(self) -> str:
        return self.client.station_id


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Load:
    def __init__(
        self,
        db: Database,
        *,
        stations: int,
        riders_per_station: int = 2,
        slots: int = 8,
        seed: int = 1,
    ) -> None:
        self.db = db
        self.rng = random.Random(seed)
        config = SimConfig(
            stations=stations,
            slots=slots,
            riders=stations * riders_per_station,
            seed=seed,
            shares=Shares(two_packs=0, cards=0, short_of_credit=0, deliveries_plan=0),
        )
        self.network = net.build(db, config, random.Random(seed))
        for spec in self.network.riders:
            payments.top_up(db, spec.id, TOP_UP_MINOR, f"{spec.id}-faults", actor="swapd-faults")
        self.acks: list[Ack] = []
        self.refusals: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.notes: list[str] = []
        self.stations: list[Station] = []
        # The last BatterySwap each station had answered: what it resends after a reconnect.
        self.last_event: dict[str, dict[str, object]] = {}
        self._riders = {
            spec.id: Rider(
                spec.id, Pack(spec.packs[0].serial, spec.packs[0].soc_pct, spec.packs[0].soh_pct)
            )
            for spec in self.network.riders
        }

    @property
    def prefix(self) -> str:
        return self.network.prefix

    @property
    def station_ids(self) -> list[str]:
        return [s.id for s in self.network.stations]

    @property
    def baseline_swap_id(self) -> int:
        return self.network.baseline_swap_id

    @property
    def swaps_acknowledged(self) -> int:
        return sum(1 for a in self.acks if a.event == "BatteryOut")

    def riders(self) -> list[Rider]:
        return list(self._riders.values())

    async def connect(self, server_url: str) -> None:
        """Open and boot every station at once, then report every stocked pack charged."""
        riders = list(self._riders.values())
        self.stations = []
        for index, spec in enumerate(self.network.stations):
            slots = [None if p is None else Pack(p.serial, p.soc_pct, p.soh_pct) for p in spec.slots]
            # The simulator hands rider i its first pack at station i % n: that is its home.
            home = riders[index :: len(self.network.stations)]
            client = StationClient(server_url, spec.id, spec.password)
            self.stations.append(Station(client, slots, home))
        await asyncio.gather(*(self._boot(s) for s in self.stations))

    async def _boot(self, station: Station) -> None:
        await station.client.open()
        await station.client.boot()
        for slot_no, pack in enumerate(station.slots, start=1):
            if pack is not None and pack.soc_pct < CHARGED_PCT:
                await station.client.call("MeterValues", meter_soc(slot_no, CHARGED_PCT, now_iso()))
                pack.soc_pct = CHARGED_PCT

    async def run(self, stop: asyncio.Event) -> None:
        """Swap at every station until ``stop`` is set; each station finishes its swap under way."""
        await asyncio.gather(*(self._station_loop(s, stop) for s in self.stations))

    async def close(self) -> None:
        await asyncio.gather(*(s.client.close() for s in self.stations))

    async def _station_loop(self, station: Station, stop: asyncio.Event) -> None:
        for _ in range(MAX_SWAPS_PER_STATION):
            if stop.is_set():
                return
            rider = self.rng.choice(station.riders)
            try:
                await self.swap(station, rider)
            except CallError as error:
                self.errors[f"{error.code}"] += 1
                self._note(f"{station.id} {rider.id}: {error}")
                await asyncio.sleep(0.1)

    def _note(self, text: str) -> None:
        if len(self.notes) < 50:
            self.notes.append(text)

    async def swap(self, station: Station, rider: Rider) -> bool:
        """One battery-as-key swap: Authorize, BatteryIn, BatteryOut, then the returned pack is
        charged at once (MeterValues) so that it can be offered again. True when completed."""
        client = station.client
        empty = [n for n, p in enumerate(station.slots, start=1) if p is None]
        assert empty, f"{station.id}: no empty slot"
        slot_in = self.rng.choice(empty)
        soc_in = round(self.rng.uniform(10, 60), 1)
        returned = Pack(rider.pack.serial, soc_in, rider.pack.soh_pct)
        token = {"idToken": returned.serial, "type": "BatterySerial"}
        answer = await client.call("Authorize", {"idToken": token})
        info = answer["idTokenInfo"]
        offered = [int(n) for n in info.get("evseId") or []]
        if info.get("status") != "Accepted" or not offered:
            self.refusals[str(info.get("status"))] += 1
            return False
        taking = [station.slots[n - 1] for n in offered]
        if any(p is None or n == slot_in for p, n in zip(taking, offered, strict=True)):
            self.errors["offer mismatch"] += 1
            self._note(f"{station.id}: offered {offered}, slots {station.slots}")
            return False
        request_id = next(station.request_ids)
        data_in = [battery(slot_in, returned.serial, returned.soc_pct, returned.soh_pct)]
        await client.call("BatterySwap", swap_event("BatteryIn", request_id, token, data_in))
        station.slots[slot_in - 1] = returned
        self.acks.append(Ack(station.id, request_id, "BatteryIn", (returned.serial,)))
        data_out = [
            battery(n, p.serial, p.soc_pct, p.soh_pct)
            for n, p in zip(offered, taking, strict=True)
            if p is not None
        ]
        out = swap_event("BatteryOut", request_id, token, data_out)
        await client.call("BatterySwap", out)
        self.last_event[station.id] = out
        for n in offered:
            station.slots[n - 1] = None
        taken = taking[0]
        assert taken is not None
        rider.pack = taken
        self.acks.append(
            Ack(station.id, request_id, "BatteryOut", tuple(d["serialNumber"] for d in data_out))
        )
        await client.call("MeterValues", meter_soc(slot_in, CHARGED_PCT, now_iso()))
        returned.soc_pct = CHARGED_PCT
        return True

    def places(self) -> dict[str, tuple[str, ...]]:
        """Where the load believes every pack of its network is."""
        ours: dict[str, tuple[str, ...]] = {}
        for rider in self._riders.values():
            ours[rider.pack.serial] = ("rider", rider.id)
        for station in self.stations:
            for slot_no, pack in enumerate(station.slots, start=1):
                if pack is not None:
                    ours[pack.serial] = ("slot", station.id, str(slot_no))
        return ours
