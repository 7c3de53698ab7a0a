"""swapd's WebSocket protocol under uvicorn: reading goes on while a few messages wait, pauses
once PAUSE_AFTER_MESSAGES wait unread, resumes when the application has taken them all; frames
sent back to back, past that limit, are all answered, in order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.protocol import State
from websockets.server import ServerProtocol

from swapd.gateway.protocol import PAUSE_AFTER_MESSAGES, SwapdWebSocketProtocol
from swapd.store.database import Database
from tests.gateway.conftest import LiveServer, basic_auth, network

pytestmark = pytest.mark.anyio


class _Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.resumes = 0

    def pause_reading(self) -> None:
        assert not self.paused, "paused twice"
        self.paused, self.pauses = True, self.pauses + 1

    def resume_reading(self) -> None:
        assert self.paused, "resumed without a pause"
        self.paused, self.resumes = False, self.resumes + 1


def _protocol() -> tuple[Any, _Transport]:
    # The attributes uvicorn's message path uses, without a server, a socket or a handshake.
    protocol: Any = SwapdWebSocketProtocol.__new__(SwapdWebSocketProtocol)
    transport = _Transport()
    protocol.transport = transport
    protocol.queue = asyncio.Queue()
    protocol.read_paused = False
    protocol.close_sent = False
    protocol.frames = []
    protocol.curr_msg_data_type = "text"
    return protocol, transport


def test_shutdown_closes_a_connection_the_client_is_closing_without_an_error() -> None:
    """uvicorn's own shutdown raised InvalidState here, out of the server's thread."""
    closed: list[bool] = []
    protocol, transport = _protocol()
    transport.close = lambda: closed.append(True)  # type: ignore[attr-defined]
    protocol.handshake_complete = True
    protocol.ping_timer = protocol.pong_timer = None
    protocol.conn = ServerProtocol()
    protocol.conn.state = State.CLOSING  # the client's close frame came, and ours went back
    protocol.shutdown()
    assert closed == [True]


def _arrives(protocol: Any, text: str) -> None:
    protocol.frames = [text.encode()]
    protocol.send_receive_event_to_app()


async def test_reading_pauses_only_when_messages_pile_up_and_resumes_when_all_are_taken() -> None:
    protocol, transport = _protocol()
    for n in range(1, PAUSE_AFTER_MESSAGES):
        _arrives(protocol, f"m{n}")
        assert not transport.paused, f"paused with only {n} message(s) waiting"
    # One station, one CALL at a time: taking each message as it comes never pauses.
    assert (await protocol.receive())["text"] == "m1"
    _arrives(protocol, "m4")
    assert not transport.paused
    _arrives(protocol, "m5")  # now PAUSE_AFTER_MESSAGES wait unread
    assert transport.paused and transport.pauses == 1
    taken = []
    for _ in range(PAUSE_AFTER_MESSAGES):
        assert transport.paused, "resumed before the queue was empty"
        taken.append((await protocol.receive())["text"])
    assert taken == ["m2", "m3", "m4", "m5"]
    assert not transport.paused and transport.resumes == 1
    assert protocol.queue.empty()


async def test_a_message_after_close_is_dropped_and_does_not_pause() -> None:
    protocol, transport = _protocol()
    protocol.close_sent = True
    for n in range(PAUSE_AFTER_MESSAGES + 2):
        _arrives(protocol, f"late{n}")
    assert protocol.queue.empty()
    assert not transport.paused


async def test_frames_sent_back_to_back_are_all_answered_in_order(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    count = PAUSE_AFTER_MESSAGES * 10
    async with websockets.connect(
        f"{live_server.url}/ocpp/ST1",
        subprotocols=[websockets.Subprotocol("ocpp2.1")],
        additional_headers=basic_auth("ST1", passwords["ST1"]),
    ) as ws:
        boot = {"chargingStation": {"model": "SwapCab", "vendorName": "t"}, "reason": "PowerUp"}
        await ws.send(json.dumps([2, "boot", "BootNotification", boot]))
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        # Without waiting for answers (OCPP-J says not to, a station may still do it): the
        # server reads them in as they come, pausing and resuming as they pile up.
        for n in range(count):
            await ws.send(json.dumps([2, f"hb-{n}", "Heartbeat", {}]))
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]
    assert [a[1] for a in answers] == [f"hb-{n}" for n in range(count)]
    assert all(a[0] == 3 and "currentTime" in a[2] for a in answers)
