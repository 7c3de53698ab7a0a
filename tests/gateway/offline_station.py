"""An OCPP 2.1 swap station for tests that keeps a local authorization list and goes on swapping
while it cannot reach the server, as docs/OFFLINE.md asks of a station.

It is written as a station vendor would from that page and OCPP alone (it reads the list as it
arrives on the wire, not through swapd's own model): SendLocalList (Full replaces, Differential
applies when its version is above the station's, else VersionMismatch; an item without
idTokenInfo removes its token) and GetLocalListVersion; offline, a token is served when its
entry is Accepted and its group (the rider) has had fewer than ``offlineSwapsMax`` swaps here
since the station lost the server, and each swap's BatterySwap events are queued with the time
they happened; back online, it boots and replays the queue in order, marked offline.

A ``StationState`` outlives the connections: each connection is an ``OfflineStation`` over it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result

from tests.gateway.conftest import LiveServer, basic_auth

VENDOR = "org.swapd"
CHARGED_SOC = 90.0


def _get(data: dict[str, Any], snake: str, camel: str) -> Any:
    return data.get(snake, data.get(camel))


@dataclass
class Entry:
    status: str
    group: str | None
    offline_swaps_max: int


@dataclass
class PackInSlot:
    serial: str
    soc: float
    soh: float = 100.0


@dataclass
class StationState:
    station_id: str
    password: str
    slots: dict[int, PackInSlot]
    slot_count: int = 8
    version: int = 0
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    queue: list[dict[str, Any]] = field(default_factory=list)  # BatterySwap events to replay
    replayed: list[dict[str, Any]] = field(default_factory=list)
    served_offline: Counter[str] = field(default_factory=Counter)  # per group, this offline spell
    updates: list[tuple[float, str, int]] = field(default_factory=list)  # (loop time, type, version)
    honour_blocked: bool = True  # False: a station that serves Blocked tokens all the same
    next_request_id: int = 5_000

    # -- the list ---------------------------------------------------------------------------------

    def apply_list(self, version: int, update_type: str, items: list[dict[str, Any]]) -> str:
        if update_type == "Differential" and version <= self.version:
            return "VersionMismatch"
        if update_type == "Full":
            self.entries = {}
        for item in items:
            token = _get(item, "id_token", "idToken")
            key = (token["type"], _get(token, "id_token", "idToken"))
            info = _get(item, "id_token_info", "idTokenInfo")
            if info is None:
                self.entries.pop(key, None)
                continue
            group = _get(info, "group_id_token", "groupIdToken")
            custom = _get(info, "custom_data", "customData") or {}
            limit = _get(custom, "offline_swaps_max", "offlineSwapsMax")
            mine = _get(custom, "vendor_id", "vendorId") == VENDOR
            self.entries[key] = Entry(
                info["status"],
                None if group is None else _get(group, "id_token", "idToken"),
                int(limit) if mine and limit is not None else 0,
            )
        self.version = version
        return "Accepted"

    def status_of(self, token_type: str, value: str) -> str | None:
        entry = self.entries.get((token_type, value))
        return None if entry is None else entry.status

    # -- serving offline --------------------------------------------------------------------------

    def serve_offline(self, token: dict[str, str], returned: PackInSlot | None, at: datetime) -> str:
        """A rider at the station while it is offline: ``token`` presented, ``returned`` the
        depleted pack put into an empty slot (None for a card with nothing to return). Returns
        the answer; when served, the swap's events are queued."""
        entry = self.entries.get((token["type"], token["idToken"]))
        if entry is None:
            return "Unknown"
        if entry.status != "Accepted" and self.honour_blocked:
            return entry.status
        group = entry.group or token["idToken"]
        if self.served_offline[group] >= entry.offline_swaps_max and self.honour_blocked:
            return "NoCredit"
        charged = sorted(
            (slot for slot, pack in self.slots.items() if pack.soc >= CHARGED_SOC),
            key=lambda slot: (-self.slots[slot].soc, slot),
        )
        if not charged:
            return "NoBatteryAvailable"
        request_id = self.next_request_id
        self.next_request_id += 1
        if returned is not None:
            empty = min(n for n in range(1, self.slot_count + 1) if n not in self.slots)
            self.slots[empty] = returned
            self._queue(request_id, "BatteryIn", token, empty, returned, at)
        taken_slot = charged[0]
        taken = self.slots.pop(taken_slot)
        self._queue(request_id, "BatteryOut", token, taken_slot, taken, at)
        self.served_offline[group] += 1
        return "Accepted"

    def _queue(
        self,
        request_id: int,
        event_type: str,
        token: dict[str, str],
        slot: int,
        pack: PackInSlot,
        at: datetime,
    ) -> None:
        self.queue.append(
            {
                "battery_data": [
                    {"evseId": slot, "serialNumber": pack.serial, "soC": pack.soc, "soH": pack.soh}
                ],
                "event_type": event_type,
                "id_token": dict(token),
                "request_id": request_id,
                "custom_data": {"vendorId": VENDOR, "offline": True, "timestamp": at.isoformat()},
            }
        )


class OfflineStation(ChargePoint):  # type: ignore[misc]
    state: StationState

    @on("SendLocalList")  # type: ignore[misc]
    async def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        self.state.updates.append((asyncio.get_running_loop().time(), update_type, version_number))
        status = self.state.apply_list(version_number, update_type, local_authorization_list or [])
        return call_result.SendLocalList(status=status)

    @on("GetLocalListVersion")  # type: ignore[misc]
    async def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(version_number=self.state.version)


@dataclass
class Online:
    station: OfflineStation
    ws: Any
    task: asyncio.Task[None]

    async def close(self) -> None:
        """The station loses the server."""
        await self.ws.close()
        self.task.cancel()


async def go_online(server: LiveServer, state: StationState, *, replay: bool = True) -> Online:
    """Connect, boot, and replay what was queued offline (in order); the offline count restarts."""
    ws = await websockets.connect(
        f"{server.url}/ocpp/{state.station_id}",
        subprotocols=[websockets.Subprotocol("ocpp2.1")],
        additional_headers=basic_auth(state.station_id, state.password),
    )
    station = OfflineStation(state.station_id, ws)
    station.state = state
    task = asyncio.create_task(station.start())
    boot = await station.call(
        call.BootNotification(
            charging_station={"model": "SwapCab", "vendor_name": "swapd-tests"}, reason="PowerUp"
        )
    )
    assert boot.status == "Accepted"
    state.served_offline.clear()
    if replay:
        await replay_queue(station, state)
    return Online(station, ws, task)


async def replay_queue(station: OfflineStation, state: StationState) -> None:
    while state.queue:
        event = state.queue[0]
        await station.call(call.BatterySwap(**event), suppress=False)
        state.replayed.append(state.queue.pop(0))


async def replay_again(station: OfflineStation, state: StationState) -> None:
    """Send every event replayed so far once more (a station that lost the answers)."""
    for event in list(state.replayed):
        await station.call(call.BatterySwap(**event), suppress=False)
