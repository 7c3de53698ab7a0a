"""A simulated rider: rides on an accelerated clock until the pack runs low, then swaps it at a
station with the battery as key, an RFID card or the app, and handles what the server says."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from typing import Any

from swapd.domain.decision import RefusalReason
from swapd.domain.errors import StationOffline
from swapd.gateway.codes import REASON_CODE, status_for
from swapd.readmodels import money
from swapd.services import app_swaps, payments
from swapd.sim.config import SimConfig
from swapd.sim.network import RiderSpec
from swapd.sim.physics import SimClock, drained, hours_until
from swapd.sim.station import Carried, SimStation, StationError
from swapd.sim.stats import Stats
from swapd.store.database import Database

MAX_ATTEMPTS_PER_RIDER = 10_000
_CODE_PREFIX = re.compile(r"^([A-Z][A-Za-z]*): ")


def refusal_key(status: str, message: str | None) -> str:
    """How a refusal is counted: the authorization status, with the swap reason code the
    personal message starts with (``NotAtThisTime/NoBatteryAvailable``) when there is one."""
    match = _CODE_PREFIX.match(message or "")
    return f"{status}/{match.group(1)}" if match else status


def app_refusal_key(reason: str | None) -> str:
    if reason is None:
        return "Unknown"
    try:
        refusal = RefusalReason(reason)
    except ValueError:
        return reason
    code = REASON_CODE.get(refusal)
    status = status_for(reason)
    return f"{status}/{code}" if code else status


@dataclass
class Context:
    clock: SimClock
    stations: list[SimStation]
    stats: Stats
    db: Database
    config: SimConfig
    end_s: float
    app_gate: asyncio.Semaphore  # app requests block a worker thread each


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # completed, refused, walked_away, skipped, error
    reason: str | None = None
    station_id: str | None = None


class SimRider:
    def __init__(self, spec: RiderSpec, ctx: Context, rng: random.Random) -> None:
        self.id = spec.id
        self.spec = spec
        self.ctx = ctx
        self.rng = rng
        self.packs = [Carried(p.serial, spec.start_soc_pct, p.soh_pct) for p in spec.packs]
        self.soc_at_s = 0.0
        self.pct_per_h = rng.uniform(10, 25)  # riding and resting, averaged
        self.low_pct = rng.uniform(10, 30)  # when the rider heads for a station
        self.next_s: float | None = None  # a retry planned; None: ride until the pack is low
        self.avoid: str | None = None
        self._top_ups = 0

    # -- the day ----------------------------------------------------------------------------------

    def _drain(self, now_s: float) -> None:
        hours = (now_s - self.soc_at_s) / 3600
        for pack in self.packs:
            pack.soc_pct = drained(pack.soc_pct, self.pct_per_h, hours)
        self.soc_at_s = now_s

    async def live(self) -> None:
        clock, end_s = self.ctx.clock, self.ctx.end_s
        for _ in range(MAX_ATTEMPTS_PER_RIDER):
            now = clock.now()
            self._drain(now)
            if self.next_s is not None:
                wake = self.next_s
            elif self.packs:
                lowest = min(p.soc_pct for p in self.packs)
                wake = now + hours_until(lowest, self.low_pct, self.pct_per_h) * 3600
            else:
                wake = now + self.rng.uniform(20, 60) * 60
            travel_s = self.rng.uniform(5, 20) * 60
            if wake + travel_s >= end_s:
                return
            await clock.sleep_until(wake + travel_s)
            self._drain(clock.now())
            outcome = await self._attempt()
            await self._after(outcome)

    async def _attempt(self) -> Outcome:
        station = self._pick_station(len(self.packs))
        if station is None:
            self.ctx.stats.skipped["no empty slot"] += 1
            return Outcome("skipped")
        shares = self.ctx.config.shares
        by_card = self.spec.card is not None and self.rng.random() < shares.card_use
        try:
            if not self.packs:
                if by_card:
                    return await self._at_slot(station, by_card=True)
                return await self._by_app(station)
            if self.rng.random() < shares.app_use:
                return await self._by_app(station)
            return await self._at_slot(station, by_card=by_card)
        except StationError as error:
            self.ctx.stats.errors[type(error).__name__] += 1
            self.ctx.stats.note(f"{self.id} at {station.id}: {error}")
            return Outcome("error", station_id=station.id)

    def _pick_station(self, need_slots: int) -> SimStation | None:
        candidates = [
            s for s in self.ctx.stations if s.free_slots() >= need_slots and s.id != self.avoid
        ]
        return self.rng.choice(candidates) if candidates else None

    async def _after(self, outcome: Outcome) -> None:
        now = self.ctx.clock.now()
        minutes = self.rng.uniform
        self.avoid = None
        if outcome.kind == "completed":
            self.next_s = None
        elif outcome.kind == "refused" and outcome.reason == "NoCredit":
            if self.rng.random() < self.ctx.config.shares.top_up_after_refusal:
                await self._top_up()
                self.next_s = now + minutes(5, 15) * 60
            else:
                self.next_s = now + minutes(60, 180) * 60
        elif outcome.kind in ("refused", "skipped"):
            self.avoid = outcome.station_id
            self.next_s = now + minutes(10, 20) * 60
        elif outcome.kind == "walked_away":
            self.next_s = now + minutes(20, 60) * 60
        else:
            self.next_s = now + minutes(20, 40) * 60

    async def _top_up(self) -> None:
        """A sandbox payment, as the rider's app would make after the refusal."""
        self._top_ups += 1
        ref = f"{self.id}-topup-{self._top_ups}"
        try:
            await asyncio.to_thread(
                payments.top_up, self.ctx.db, self.id, self.spec.refill_minor, ref, actor="swapd-sim"
            )
        except Exception as error:
            self.ctx.stats.errors["top_up"] += 1
            self.ctx.stats.note(f"{self.id}: top-up failed: {error!r}")
            return
        self.ctx.stats.top_ups += 1

    # -- the swap flows ---------------------------------------------------------------------------

    def _flow(self, name: str) -> str:
        return f"{name} x2" if self.spec.vehicle_packs == 2 else name

    async def _at_slot(self, station: SimStation, *, by_card: bool) -> Outcome:
        """Battery as key (or a card): packs into empty slots, Authorize, BatteryIn, BatteryOut.
        A rider without a pack only taps the card and takes what is offered."""
        stats = self.ctx.stats
        carried = self.packs
        slots = station.insert(carried)
        assert slots is not None, "the station was picked for its free slots"
        self.packs = []
        if by_card:
            assert self.spec.card is not None
            token = {"idToken": self.spec.card, "type": "ISO14443"}
        else:
            token = {"idToken": carried[0].serial, "type": "BatterySerial"}
        flow = "rfid" if by_card else "battery_key"
        if not carried:
            flow = "rfid pickup"
        try:
            if slots:
                await station.send_status(slots)
            info = await station.authorize(token)
        except StationError:
            self.packs = station.hand_back(slots)
            raise
        status = str(info.get("status"))
        offered = [int(n) for n in info.get("evse_id") or []]
        if status != "Accepted" or not offered:
            self.packs = station.hand_back(slots)
            await station.send_status(slots)
            if status == "Accepted":
                stats.errors["accepted without slots"] += 1
                stats.note(f"{self.id} at {station.id}: Accepted without evseId: {info}")
                return Outcome("error", station_id=station.id)
            message = (info.get("personal_message") or {}).get("content")
            key = refusal_key(status, message)
            stats.refusals[key] += 1
            return Outcome("refused", key, station.id)
        request_id = station.next_request_id()
        return await self._exchange(station, request_id, token, slots, offered, flow)

    async def _by_app(self, station: SimStation) -> Outcome:
        """The app asks the server (services.app_swaps); the server sends RequestBatterySwap."""
        stats = self.ctx.stats
        slots = station.insert(self.packs)
        assert slots is not None, "the station was picked for its free slots"
        self.packs = []
        if slots:
            await station.send_status(slots)
        try:
            async with self.ctx.app_gate:
                result = await asyncio.to_thread(
                    app_swaps.request_swap,
                    self.ctx.db,
                    station.id,
                    self.id,
                    timeout_s=self.ctx.config.app_timeout_s,
                )
        except StationOffline:
            # The station's socket dropped (the simulator drops some on purpose) before the
            # server could deliver RequestBatterySwap: a refusal the rider sees, not an error.
            self.packs = station.hand_back(slots)
            await station.send_status(slots)
            stats.refusals[StationOffline.code] += 1
            return Outcome("refused", StationOffline.code, station.id)
        except Exception as error:
            self.packs = station.hand_back(slots)
            await station.send_status(slots)
            stats.errors["app request"] += 1
            stats.note(f"{self.id} at {station.id}: app request failed: {error!r}")
            return Outcome("error", station_id=station.id)
        if not result.accepted or result.request_id is None:
            self.packs = station.hand_back(slots)
            await station.send_status(slots)
            key = app_refusal_key(result.reason)
            stats.refusals[key] += 1
            if result.reason in (app_swaps.STATION_REFUSED, app_swaps.STATION_NO_ANSWER):
                # The server decided yes and asked the station, which did not start the swap.
                stats.note(f"{self.id} at {station.id}: app swap not started: {result.text}")
            return Outcome("refused", key, station.id)
        request_id = int(result.request_id)
        if station.app_requests.pop(request_id, None) is None:
            stats.errors["RequestBatterySwap not seen"] += 1
            stats.note(f"{self.id} at {station.id}: app swap {request_id} accepted, no request seen")
        token = {"idToken": self.id, "type": "Central"}
        flow = "app" if slots else "app pickup"
        return await self._exchange(station, request_id, token, slots, list(result.offered_slots), flow)

    async def _exchange(
        self,
        station: SimStation,
        request_id: int,
        token: dict[str, str],
        slots: list[int],
        offered: list[int],
        flow: str,
    ) -> Outcome:
        """After an accepted decision: BatteryIn for the packs brought (if any), then BatteryOut of
        the offered slots, or BatteryOutTimeout when the rider walks away."""
        stats, shares = self.ctx.stats, self.ctx.config.shares
        resend = self.rng.random() < shares.resend
        resend_in = resend and bool(slots) and self.rng.random() < 0.5
        if slots:
            data_in = station.readings(slots)
            try:
                await station.battery_swap("BatteryIn", request_id, token, data_in)
            except StationError:
                self.packs = station.hand_back(slots)
                raise
            station.keep_returned(slots, data_in)
            if resend_in:
                await self._resend(station, "BatteryIn", request_id, token, data_in)
        if not station.offer(offered):
            stats.errors["offer mismatch"] += 1
            stats.note(
                f"{self.id} at {station.id}: offered slots {offered} do not hold free stock: "
                f"{station.contents()}"
            )
            return Outcome("error", station_id=station.id)
        data_out = station.readings(offered)
        if self.rng.random() < shares.walk_away:
            try:
                await station.battery_swap("BatteryOutTimeout", request_id, token, data_out)
            finally:
                station.release_offer(offered)
            stats.walked_away += 1
            return Outcome("walked_away", station_id=station.id)
        try:
            await station.battery_swap("BatteryOut", request_id, token, data_out)
        except StationError:
            station.release_offer(offered)
            raise
        self.packs = await station.complete_handover(offered, data_out)
        self.soc_at_s = self.ctx.clock.now()
        stats.swaps[self._flow(flow)] += 1
        if resend and not resend_in:
            await self._resend(station, "BatteryOut", request_id, token, data_out)
        return Outcome("completed", station_id=station.id)

    async def _resend(
        self,
        station: SimStation,
        event: str,
        request_id: int,
        token: dict[str, str],
        data: list[dict[str, Any]],
    ) -> None:
        """The station loses its socket, reconnects and sends the same BatterySwap again: the
        server must acknowledge it and change nothing."""
        stats, db = self.ctx.stats, self.ctx.db
        before = await asyncio.to_thread(money.rider_balance, db, self.id)
        await station.drop_and_reconnect()
        await station.battery_swap(event, request_id, token, data)
        after = await asyncio.to_thread(money.rider_balance, db, self.id)
        stats.resends += 1
        if before != after:
            stats.resends_changed += 1
            stats.note(f"{self.id}: resent {event} {request_id} changed {before} -> {after}")
