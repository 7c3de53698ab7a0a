"""A bare OCPP-J station client: raw frames over a WebSocket, so drills can resend, duplicate,
reorder and garble messages at will, and survive the server going away.

``call`` is what a real station does with a message it must deliver: it keeps the message,
reconnects when the socket is lost (or the server answers InternalError because its database
is down) and sends it again until an answer arrives or the deadline passes. The answer is the
acknowledgement the drills count.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("ocpp2.1")
ANSWER_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 0.5
# A server whose database is away answers InternalError; the message is kept and sent again.
RETRY_CODES = frozenset({"InternalError"})


class CallError(Exception):
    """The server answered the CALL with a CALLERROR that resending will not change."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: CALLERROR {code}: {description}")
        self.code = code
        self.description = description


class Undelivered(Exception):
    """No answer before the deadline."""


@dataclass
class Counters:
    sent: int = 0
    resent: int = 0  # sends after a lost socket or a retryable CALLERROR
    reconnects: int = 0
    retry_errors: int = 0  # InternalError answers (database away)


@dataclass
class StationClient:
    """One station's socket. Calls are serialised (OCPP-J: one CALL at a time per station)."""

    base_url: str  # ws://host:port
    station_id: str
    password: str
    counters: Counters = field(default_factory=Counters)
    _ws: ClientConnection | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/ocpp/{self.station_id}"

    def headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.station_id}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def open(self, *, deadline_s: float = 60.0) -> None:
        """Connect, retrying (the server may be restarting) until ``deadline_s`` has passed."""
        until = time.monotonic() + deadline_s
        backoff_s = 0.02
        while True:
            try:
                self._ws = await connect(
                    self.url,
                    subprotocols=[SUBPROTOCOL],
                    additional_headers=self.headers(),
                    open_timeout=CONNECT_TIMEOUT_S,
                    max_size=None,
                    proxy=None,
                    ping_interval=None,
                )
                return
            except (OSError, WebSocketException, TimeoutError) as error:
                if time.monotonic() > until:
                    raise Undelivered(f"{self.station_id}: cannot connect: {error!r}") from error
                await asyncio.sleep(backoff_s)
                backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(OSError, WebSocketException):
                await ws.close()

    def abandon(self) -> None:
        """Forget the socket without a closing handshake, as a station that lost its link does;
        the server finds out only when the new connection replaces it."""
        self._ws = None

    def abort(self) -> None:
        """Drop the TCP connection at once (no close frame)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.transport.abort()

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None, "not connected"
        await self._ws.send(text)

    async def recv_raw(self, timeout_s: float = ANSWER_TIMEOUT_S) -> str:
        assert self._ws is not None, "not connected"
        message = await asyncio.wait_for(self._ws.recv(), timeout=timeout_s)
        return message if isinstance(message, str) else message.decode()

    async def call_once(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send one CALL on the open socket and return the raw answer frame (CALLRESULT or
        CALLERROR) for it; server-initiated CALLs in between are ignored."""
        unique_id = f"{self.station_id}-{next(self._ids)}"
        await self.send_raw(json.dumps([2, unique_id, action, payload]))
        self.counters.sent += 1
        while True:
            frame = json.loads(await self.recv_raw())
            if (
                isinstance(frame, list)
                and len(frame) >= 3
                and frame[1] == unique_id
                and frame[0] in (3, 4)
            ):
                return frame

    async def call(
        self, action: str, payload: dict[str, Any], *, deadline_s: float = 300.0
    ) -> dict[str, Any]:
        """Deliver a CALL whatever happens to the socket; the CALLRESULT payload."""
        until = time.monotonic() + deadline_s
        attempt = 0
        async with self._lock:
            while True:
                attempt += 1
                if attempt > 1:
                    self.counters.resent += 1
                if time.monotonic() > until:
                    raise Undelivered(f"{self.station_id}: {action} got no answer in {deadline_s} s")
                try:
                    if self._ws is None:
                        self.counters.reconnects += 1
                        await self.open(deadline_s=max(1.0, until - time.monotonic()))
                    frame = await self.call_once(action, payload)
                except (OSError, WebSocketException, TimeoutError):
                    self._ws = None
                    await asyncio.sleep(0.02)
                    continue
                if frame[0] == 3:
                    return dict(frame[2])
                code, description = str(frame[2]), str(frame[3])
                if code in RETRY_CODES:
                    self.counters.retry_errors += 1
                    await asyncio.sleep(0.2)
                    continue
                raise CallError(action, code, description)

    async def boot(self) -> None:
        answer = await self.call(
            "BootNotification",
            {
                "chargingStation": {"model": "FaultCab", "vendorName": "swapd-faults"},
                "reason": "PowerUp",
            },
        )
        if answer.get("status") != "Accepted":
            raise CallError("BootNotification", "NotAccepted", str(answer))


def battery(slot_no: int, serial: str, soc_pct: float, soh_pct: float) -> dict[str, Any]:
    return {"evseId": slot_no, "serialNumber": serial, "soC": soc_pct, "soH": soh_pct}


def swap_event(
    event: str, request_id: int, token: dict[str, str], data: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"eventType": event, "requestId": request_id, "idToken": token, "batteryData": data}


def meter_soc(slot_no: int, soc_pct: float, timestamp: str) -> dict[str, Any]:
    return {
        "evseId": slot_no,
        "meterValue": [
            {"timestamp": timestamp, "sampledValue": [{"value": soc_pct, "measurand": "SoC"}]}
        ],
    }
