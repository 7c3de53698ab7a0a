"""A simulated swap station: an OCPP 2.1 client over a real WebSocket, and slots that charge packs.

Each station speaks for itself on one socket, one CALL at a time (as OCPP-J requires). The lock
that serialises the calls also covers reading the slot a report is about, so a SoC report always
names the pack that is in the slot when it is sent. Riders change slots only between calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import itertools
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from swapd.sim.network import CHARGED_SOC_PCT, StationSpec
from swapd.sim.physics import FULL_PCT, SimClock, charged
from swapd.sim.stats import Stats

SUBPROTOCOL = Subprotocol("ocpp2.1")
CONNECT_ATTEMPTS = 5
# A server that is busy checking other stations' passwords (after a restart every station comes
# back at once) answers 503 with Retry-After: wait as told, as a real station does, for at most
# this long in all, however many times it asks.
BUSY_WAIT_MAX_S = 60.0
BUSY_RETRY_AFTER_MAX_S = 10.0
CALL_ATTEMPTS = 3
MAX_APP_REQUESTS = 10_000
METER_TICK_SIM_S = 60.0
MIN_TICK_REAL_S = 0.05
MIN_HEARTBEAT_REAL_S = 1.0
MAX_FRAME_BYTES = 1024 * 1024


class StationError(Exception):
    """A station could not get its message answered."""


class StationDown(StationError):
    """No answer at all: the socket could not be (re)opened, or every attempt was lost."""


class CallRejected(StationError):
    """The server answered with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: CALLERROR {code}: {description}")
        self.code = code


class _Lost(Exception):
    """The socket closed while a CALL waited for its answer."""


class SlotUse(enum.Enum):
    RIDER = "rider"  # a rider's pack, inserted and waiting for the decision
    STOCK = "stock"  # the station's pack, charging or charged
    OFFERED = "offered"  # stock offered to a rider who has not taken it (yet)


@dataclass
class SlotPack:
    serial: str
    soc_pct: float  # at ``at_s``
    soh_pct: float
    at_s: float
    use: SlotUse
    reported_soc: float = 0.0  # the SoC the server last heard of
    reported_at_s: float = 0.0
    tx_id: str | None = None  # the open charging transaction (TransactionEvent stations)

    def soc_now(self, now_s: float) -> float:
        if self.use is SlotUse.RIDER:
            return self.soc_pct
        return charged(self.soc_pct, (now_s - self.at_s) / 3600)


@dataclass
class Carried:
    """A pack with a rider."""

    serial: str
    soc_pct: float
    soh_pct: float


@dataclass(frozen=True, slots=True)
class _Report:
    payload: Any
    soc: float
    kind: str  # meter, start, update, end
    tx_id: str | None = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def battery(slot_no: int, serial: str, soc_pct: float, soh_pct: float) -> dict[str, Any]:
    # Plain dicts with the wire names: ocpp 2.1.0 camel-cases 'soc' wrongly otherwise.
    return {"evseId": slot_no, "serialNumber": serial, "soC": round(soc_pct, 1), "soH": soh_pct}


class _Client(ChargePoint):  # type: ignore[misc]
    """The station's side of the server's requests: swaps started from the app, and the
    management commands an operator sends from the console (answered as a cabinet would;
    a reset or an availability change does not stop the simulated station)."""

    owner: SimStation

    @on("RequestBatterySwap")  # type: ignore[misc]
    async def on_request_battery_swap(self, id_token: dict[str, Any], request_id: int, **_: Any) -> Any:
        return call_result.RequestBatterySwap(status=self.owner.swap_requested(id_token, request_id))

    @on("Reset")  # type: ignore[misc]
    async def on_reset(self, type: str, **_: Any) -> Any:
        self.owner.stats.received["Reset"] += 1
        return call_result.Reset(status="Scheduled" if type == "OnIdle" else "Accepted")

    @on("ChangeAvailability")  # type: ignore[misc]
    async def on_change_availability(self, **_: Any) -> Any:
        self.owner.stats.received["ChangeAvailability"] += 1
        return call_result.ChangeAvailability(status="Accepted")

    @on("TriggerMessage")  # type: ignore[misc]
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        self.owner.stats.received["TriggerMessage"] += 1
        if requested_message == "StatusNotification":
            self.owner.later(self.owner.send_status(range(1, len(self.owner.slots) + 1)))
        elif requested_message == "Heartbeat":
            self.owner.later(self.owner.send_calls([call.Heartbeat()]))
        else:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status="Accepted")

    @on("GetVariables")  # type: ignore[misc]
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        self.owner.stats.received["GetVariables"] += 1
        known = self.owner.variables()
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            result: dict[str, Any] = {"component": {"name": key[0]}, "variable": {"name": key[1]}}
            if key in known:
                result |= {"attributeStatus": "Accepted", "attributeValue": known[key]}
            else:
                result["attributeStatus"] = "UnknownVariable"
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on("SetVariables")  # type: ignore[misc]
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        self.owner.stats.received["SetVariables"] += 1
        known = self.owner.variables()
        results = [
            {
                "attributeStatus": "Accepted"
                if (d["component"]["name"], d["variable"]["name"]) in known
                else "UnknownVariable",
                "component": {"name": d["component"]["name"]},
                "variable": {"name": d["variable"]["name"]},
            }
            for d in set_variable_data
        ]
        return call_result.SetVariables(set_variable_result=results)

    @on("GetBaseReport")  # type: ignore[misc]
    async def on_get_base_report(self, request_id: int, **_: Any) -> Any:
        self.owner.stats.received["GetBaseReport"] += 1
        data = [
            {
                "component": {"name": component},
                "variable": {"name": variable},
                "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}],
            }
            for (component, variable), value in self.owner.variables().items()
        ]
        report = call.NotifyReport(
            request_id=request_id, generated_at=now_iso(), seq_no=0, tbc=False, report_data=data
        )
        self.owner.later(self.owner.send_calls([report]))
        return call_result.GetBaseReport(status="Accepted")

    @on("UpdateFirmware")  # type: ignore[misc]
    async def on_update_firmware(self, request_id: int, **_: Any) -> Any:
        self.owner.stats.received["UpdateFirmware"] += 1
        steps = ("Downloading", "Downloaded", "Installing", "Installed")
        notes = [call.FirmwareStatusNotification(status=s, request_id=request_id) for s in steps]
        self.owner.later(self.owner.send_calls(notes))
        return call_result.UpdateFirmware(status="Accepted")

    @on("GetLog")  # type: ignore[misc]
    async def on_get_log(self, request_id: int, **_: Any) -> Any:
        self.owner.stats.received["GetLog"] += 1
        notes = [
            call.LogStatusNotification(status=s, request_id=request_id)
            for s in ("Uploading", "Uploaded")
        ]
        self.owner.later(self.owner.send_calls(notes))
        return call_result.GetLog(status="Accepted", filename=f"{self.owner.id}-diagnostics.log")

    @on("UnlockConnector")  # type: ignore[misc]
    async def on_unlock_connector(self, **_: Any) -> Any:
        self.owner.stats.received["UnlockConnector"] += 1
        return call_result.UnlockConnector(status="Unlocked")

    @on("SetDisplayMessage")  # type: ignore[misc]
    async def on_set_display_message(self, **_: Any) -> Any:
        self.owner.stats.received["SetDisplayMessage"] += 1
        return call_result.SetDisplayMessage(status="Accepted")


class SimStation:
    def __init__(
        self,
        spec: StationSpec,
        server_url: str,
        clock: SimClock,
        stats: Stats,
        *,
        response_timeout_s: float,
        meter_interval_s: float,
        heartbeat_interval_s: float,
    ) -> None:
        self.id = spec.id
        self._password = spec.password
        self._url = f"{server_url.rstrip('/')}/ocpp/{spec.id}"
        self.clock = clock
        self.stats = stats
        self.meter_values = spec.meter_values
        self._timeout_s = response_timeout_s
        self._meter_interval_s = meter_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self.slots: list[SlotPack | None] = [
            None
            if p is None
            else SlotPack(p.serial, p.soc_pct, p.soh_pct, 0.0, SlotUse.STOCK, reported_soc=p.soc_pct)
            for p in spec.slots
        ]
        self.lock = asyncio.Lock()
        self._client: _Client | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._request_ids = itertools.count(1)
        self._tx_ids = itertools.count(1)
        self._seq_nos = itertools.count(0)
        self.app_requests: dict[int, str] = {}  # RequestBatterySwap received: requestId -> token
        self._follow_ups: set[asyncio.Task[None]] = set()

    # -- the socket ------------------------------------------------------------------------------

    async def _open(self) -> None:
        credentials = base64.b64encode(f"{self.id}:{self._password}".encode()).decode()
        error: Exception | None = None
        busy_until = time.monotonic() + BUSY_WAIT_MAX_S
        attempt = 0
        while attempt < CONNECT_ATTEMPTS:
            try:
                ws = await connect(
                    self._url,
                    subprotocols=[SUBPROTOCOL],
                    additional_headers={"Authorization": f"Basic {credentials}"},
                    open_timeout=self._timeout_s,
                    max_size=MAX_FRAME_BYTES,
                    proxy=None,
                )
                break
            except InvalidStatus as failure:
                error = failure
                wait_s = _busy_retry_after_s(failure)
                if wait_s is None or time.monotonic() + wait_s > busy_until:
                    attempt += 1
                    await asyncio.sleep(0.1 * 2**attempt)
                else:
                    await asyncio.sleep(wait_s)  # busy: not an attempt that failed
            except (OSError, WebSocketException, TimeoutError) as failure:
                error = failure
                attempt += 1
                await asyncio.sleep(0.1 * 2**attempt)
        else:
            raise StationDown(f"{self.id}: cannot connect to {self._url}: {error!r}")
        client = _Client(self.id, ws, response_timeout=self._timeout_s)
        client.owner = self
        self._ws, self._client = ws, client
        self._reader = asyncio.create_task(client.start(), name=f"{self.id}-reader")

    async def _close(self) -> None:
        ws, reader = self._ws, self._reader
        self._ws = self._client = self._reader = None
        if ws is not None:
            with contextlib.suppress(OSError, WebSocketException):
                await ws.close()
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _reconnect(self) -> None:
        self.stats.reconnects += 1
        await self._close()
        await self._open()

    async def _exchange(self, payload: Any) -> Any:
        client, reader = self._client, self._reader
        if client is None or reader is None or reader.done():
            raise _Lost()
        pending = asyncio.ensure_future(client.call(payload, suppress=False))
        try:
            done, _ = await asyncio.wait({pending, reader}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        if pending in done:
            return pending.result()
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        raise _Lost()

    async def _call(self, payload: Any) -> tuple[Any, float]:
        """Send one CALL (the lock held): its answer and how long it took. Lost sockets are
        reopened and the CALL sent again, as a station does after a reconnect."""
        action = type(payload).__name__
        for _ in range(CALL_ATTEMPTS):
            if self._client is None:
                await self._reconnect()
            self.stats.sent[action] += 1
            started = time.perf_counter()
            try:
                response = await self._exchange(payload)
            except OCPPError as error:
                self.stats.call_errors[f"{action} {error.code}"] += 1
                raise CallRejected(action, str(error.code), str(error.description)) from None
            except (_Lost, OSError, WebSocketException, TimeoutError):
                self.stats.errors[f"lost {action}"] += 1
                await self._reconnect()
                continue
            return response, time.perf_counter() - started
        raise StationDown(f"{self.id}: {action} got no answer in {CALL_ATTEMPTS} attempts")

    async def start(self) -> None:
        async with self.lock:
            await self._open()
            boot, _ = await self._call(
                call.BootNotification(
                    charging_station={"model": "SimCabinet", "vendor_name": "swapd-sim"},
                    reason="PowerUp",
                )
            )
        if boot.status != "Accepted":
            raise StationDown(f"{self.id}: BootNotification answered {boot.status}")
        await self.send_status(range(1, len(self.slots) + 1))

    async def stop(self) -> None:
        async with self.lock:
            await self._close()

    async def drop_and_reconnect(self) -> None:
        async with self.lock:
            await self._reconnect()

    # -- messages riders cause -------------------------------------------------------------------

    async def authorize(self, id_token: dict[str, str]) -> dict[str, Any]:
        async with self.lock:
            response, seconds = await self._call(call.Authorize(id_token=id_token))
        self.stats.decision(seconds)
        return dict(response.id_token_info)

    async def battery_swap(
        self, event: str, request_id: int, id_token: dict[str, str], data: list[dict[str, Any]]
    ) -> None:
        payload = call.BatterySwap(
            battery_data=data, event_type=event, id_token=id_token, request_id=request_id
        )
        async with self.lock:
            await self._call(payload)

    async def send_status(self, slot_nos: Sequence[int] | range) -> None:
        """StatusNotification for each slot as it is now; a lost one is only counted."""
        for slot_no in slot_nos:
            async with self.lock:
                status = "Available" if self.slots[slot_no - 1] is None else "Occupied"
                try:
                    await self._call(
                        call.StatusNotification(
                            timestamp=now_iso(),
                            connector_status=status,
                            evse_id=slot_no,
                            connector_id=1,
                        )
                    )
                except StationError as error:
                    self.stats.note(f"{self.id}: StatusNotification {slot_no}: {error}")

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Calls the station makes after answering the server (a report, firmware progress)."""
        task = asyncio.create_task(work)
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_ups.discard)

    async def send_calls(self, payloads: Sequence[Any]) -> None:
        for payload in payloads:
            async with self.lock:
                try:
                    await self._call(payload)
                except StationError as error:
                    self.stats.note(f"{self.id}: {type(payload).__name__}: {error}")

    def variables(self) -> dict[tuple[str, str], str]:
        """What the simulated cabinet reports of itself (GetVariables, GetBaseReport)."""
        return {
            ("ChargingStation", "Model"): "SimCabinet",
            ("ChargingStation", "VendorName"): "swapd-sim",
            ("ChargingStation", "SlotCount"): str(len(self.slots)),
            ("OCPPCommCtrlr", "HeartbeatInterval"): str(int(self._heartbeat_interval_s)),
            ("SampledDataCtrlr", "TxUpdatedInterval"): str(int(self._meter_interval_s)),
        }

    def swap_requested(self, id_token: dict[str, Any], request_id: int) -> str:
        """RequestBatterySwap from the server (an app swap): accepted, and remembered."""
        self.stats.received["RequestBatterySwap"] += 1
        if len(self.app_requests) >= MAX_APP_REQUESTS:
            self.app_requests.pop(next(iter(self.app_requests)))
        self.app_requests[int(request_id)] = str(id_token.get("id_token", ""))
        return "Accepted"

    def next_request_id(self) -> int:
        return next(self._request_ids)

    # -- slots: what riders do with their hands (no messages) -------------------------------------

    def free_slots(self) -> int:
        return sum(1 for s in self.slots if s is None)

    def insert(self, packs: Sequence[Carried]) -> list[int] | None:
        """A rider puts packs into empty slots; None when there are not enough."""
        free = [n for n, s in enumerate(self.slots, start=1) if s is None]
        if len(free) < len(packs):
            return None
        chosen = free[: len(packs)]
        now = self.clock.now()
        for slot_no, pack in zip(chosen, packs, strict=True):
            self.slots[slot_no - 1] = SlotPack(
                pack.serial, pack.soc_pct, pack.soh_pct, now, SlotUse.RIDER
            )
        return chosen

    def readings(self, slot_nos: Sequence[int]) -> list[dict[str, Any]]:
        now = self.clock.now()
        data = []
        for slot_no in slot_nos:
            pack = self.slots[slot_no - 1]
            assert pack is not None, f"{self.id}: slot {slot_no} is empty"
            data.append(battery(slot_no, pack.serial, pack.soc_now(now), pack.soh_pct))
        return data

    def hand_back(self, slot_nos: Sequence[int]) -> list[Carried]:
        """Refused: the rider takes their own packs back."""
        packs = []
        for slot_no in slot_nos:
            pack = self.slots[slot_no - 1]
            assert pack is not None and pack.use is SlotUse.RIDER
            self.slots[slot_no - 1] = None
            packs.append(Carried(pack.serial, pack.soc_pct, pack.soh_pct))
        return packs

    def keep_returned(self, slot_nos: Sequence[int], data: list[dict[str, Any]]) -> None:
        """BatteryIn acknowledged: the packs are the station's and start charging."""
        now = self.clock.now()
        for slot_no, item in zip(slot_nos, data, strict=True):
            pack = self.slots[slot_no - 1]
            assert pack is not None and pack.use is SlotUse.RIDER
            pack.use, pack.at_s = SlotUse.STOCK, now
            pack.soc_pct = pack.reported_soc = float(item["soC"])
            pack.reported_at_s = now

    def offer(self, slot_nos: Sequence[int]) -> bool:
        """The server offered these slots: they must hold stock nobody else was offered."""
        packs = [self.slots[n - 1] if 1 <= n <= len(self.slots) else None for n in slot_nos]
        if not slot_nos or any(p is None or p.use is not SlotUse.STOCK for p in packs):
            return False
        for pack in packs:
            assert pack is not None
            pack.use = SlotUse.OFFERED
        return True

    def release_offer(self, slot_nos: Sequence[int]) -> None:
        for slot_no in slot_nos:
            pack = self.slots[slot_no - 1]
            assert pack is not None and pack.use is SlotUse.OFFERED
            pack.use = SlotUse.STOCK

    async def complete_handover(
        self, slot_nos: Sequence[int], data: list[dict[str, Any]]
    ) -> list[Carried]:
        """BatteryOut acknowledged: the rider has the packs. The slots are emptied before anything
        else runs; then charging ends and the slots are reported free."""
        taken, ended = [], []
        for slot_no, item in zip(slot_nos, data, strict=True):
            pack = self.slots[slot_no - 1]
            assert pack is not None and pack.use is SlotUse.OFFERED
            self.slots[slot_no - 1] = None
            taken.append(Carried(pack.serial, float(item["soC"]), pack.soh_pct))
            if pack.tx_id is not None:
                ended.append((slot_no, pack.tx_id))
        for slot_no, tx_id in ended:
            async with self.lock:
                try:
                    await self._call(self._transaction("Ended", slot_no, tx_id, None, departed=True))
                except StationError as error:
                    self.stats.note(f"{self.id}: TransactionEvent Ended {slot_no}: {error}")
        await self.send_status(slot_nos)
        return taken

    # -- charging and liveness -------------------------------------------------------------------

    def _sample(self, soc: float, context: str) -> dict[str, Any]:
        return {
            "timestamp": now_iso(),
            "sampledValue": [{"value": soc, "measurand": "SoC", "context": context}],
        }

    def _transaction(
        self, event: str, slot_no: int, tx_id: str, soc: float | None, *, departed: bool = False
    ) -> Any:
        info: dict[str, Any] = {"transactionId": tx_id}
        trigger = {"Started": "CablePluggedIn", "Updated": "MeterValuePeriodic"}.get(event)
        context = {"Started": "Transaction.Begin", "Updated": "Sample.Periodic"}.get(event)
        if event == "Ended":
            trigger = "EVDeparted" if departed else "SoCLimitReached"
            info["stoppedReason"] = "EVDisconnected" if departed else "SOCLimitReached"
            context = "Transaction.End"
        else:
            info["chargingState"] = "Charging"
        return call.TransactionEvent(
            event_type=event,
            timestamp=now_iso(),
            trigger_reason=trigger,
            seq_no=next(self._seq_nos),
            transaction_info=info,
            evse={"id": slot_no, "connectorId": 1},
            id_token={"idToken": "", "type": "NoAuthorization"} if event == "Started" else None,
            meter_value=None if soc is None else [self._sample(soc, str(context))],
        )

    def _next_report(self, slot_no: int, pack: SlotPack, now: float) -> _Report | None:
        soc = round(pack.soc_now(now), 1)
        crossed = pack.reported_soc < CHARGED_SOC_PCT <= soc  # now good to hand out: say so at once
        full = soc >= FULL_PCT > pack.reported_soc
        due = now - pack.reported_at_s >= self._meter_interval_s and soc > pack.reported_soc
        if self.meter_values or (pack.tx_id is None and soc >= FULL_PCT):
            if crossed or full or due:
                payload = call.MeterValues(
                    evse_id=slot_no, meter_value=[self._sample(soc, "Sample.Periodic")]
                )
                return _Report(payload, soc, "meter")
            return None
        if pack.tx_id is None:
            tx_id = f"{self.id[-12:]}-{slot_no}-{next(self._tx_ids)}"
            return _Report(self._transaction("Started", slot_no, tx_id, soc), soc, "start", tx_id)
        if full:
            return _Report(self._transaction("Ended", slot_no, pack.tx_id, soc), soc, "end")
        if crossed or due:
            return _Report(self._transaction("Updated", slot_no, pack.tx_id, soc), soc, "update")
        return None

    async def _report(self, slot_no: int) -> None:
        async with self.lock:
            pack = self.slots[slot_no - 1]
            if pack is None or pack.use is SlotUse.RIDER:
                return
            now = self.clock.now()
            report = self._next_report(slot_no, pack, now)
            if report is None:
                return
            try:
                await self._call(report.payload)
            except StationError as error:
                self.stats.note(f"{self.id}: SoC report {slot_no}: {error}")
                return
            pack.reported_soc, pack.reported_at_s = report.soc, now
            if report.kind == "start":
                pack.tx_id = report.tx_id
            elif report.kind == "end":
                pack.tx_id = None

    async def run_charging(self, until_s: float, stop: asyncio.Event) -> None:
        """Report SoC of charging packs now and then, until the time is up."""
        tick_real_s = max(MIN_TICK_REAL_S, METER_TICK_SIM_S / self.clock.speed)
        max_ticks = int(until_s / self.clock.speed / tick_real_s) + 100
        for _ in range(max_ticks):
            if stop.is_set() or self.clock.now() >= until_s:
                return
            for slot_no in range(1, len(self.slots) + 1):
                await self._report(slot_no)
            await asyncio.sleep(tick_real_s)

    async def run_heartbeat(self, until_s: float, stop: asyncio.Event) -> None:
        interval_real_s = max(MIN_HEARTBEAT_REAL_S, self._heartbeat_interval_s / self.clock.speed)
        max_beats = int(until_s / self.clock.speed / interval_real_s) + 10
        for _ in range(max_beats):
            try:  # asyncio.timeout: wait_for (3.11) can swallow a cancellation
                async with asyncio.timeout(interval_real_s):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            if self.clock.now() >= until_s:
                return
            async with self.lock:
                try:
                    await self._call(call.Heartbeat())
                except StationError as error:
                    self.stats.note(f"{self.id}: Heartbeat: {error}")

    def contents(self) -> dict[int, str | None]:
        return {n: (None if p is None else p.serial) for n, p in enumerate(self.slots, start=1)}


def _busy_retry_after_s(failure: InvalidStatus) -> float | None:
    """The wait a 503 or 429 handshake answer asks for (bounded), None for other refusals."""
    response = failure.response
    if response.status_code not in (429, 503):
        return None
    try:
        return min(BUSY_RETRY_AFTER_MAX_S, max(0.1, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0
