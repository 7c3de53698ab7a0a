"""Bad frames, unknown actions, invalid payloads and bad credentials: the right CALLERROR, status
or close, nothing written, and the other stations keep being served."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import structlog
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from swapd.gateway.session import MAX_MESSAGE_BYTES, MAX_MESSAGE_ID_CHARS, UNUSABLE_MESSAGE_ID
from swapd.services import stations
from swapd.sim.embedded import embedded_server
from swapd.store import schema as t
from swapd.store.database import Database
from tests import network as net
from tests.gateway.conftest import LiveServer, basic_auth, battery, boot, connect

pytestmark = pytest.mark.anyio

BOOT = [
    2,
    "boot-1",
    "BootNotification",
    {"chargingStation": {"model": "SwapCab", "vendorName": "raw"}, "reason": "PowerUp"},
]


def _network(db: Database) -> dict[str, str]:
    passwords = net.network(db, with_passwords=True)
    net.pack(db, "B-1", station_id="ST1", slot_no=1)
    net.rider(db, "R1", top_up_minor=10_000, payment_ref="pay-1")
    return passwords


def _snapshot(db: Database) -> list[Any]:
    # Stations' last_seen_at moves with every message; everything else must stay put.
    with db.engine.connect() as connection:
        return [
            sorted(map(tuple, connection.execute(sa.select(table))))
            for table in t.metadata.sorted_tables
            if table is not t.stations
        ]


async def _raw(server: LiveServer, station_id: str, password: str) -> Any:
    ws = await websockets.connect(
        f"{server.url}/ocpp/{station_id}",
        subprotocols=[websockets.Subprotocol("ocpp2.1")],
        additional_headers=basic_auth(station_id, password),
        max_size=None,
    )
    await ws.send(json.dumps(BOOT))
    reply = json.loads(await ws.recv())
    assert reply[0] == 3 and reply[2]["status"] == "Accepted"
    return ws


def _battery_in(message_id: str, request_id: object, serial: str, data: list[Any]) -> list[Any]:
    """A BatteryIn CALL presented with the pack's serial as its token."""
    token = {"idToken": serial, "type": "BatterySerial"}
    payload = {"eventType": "BatteryIn", "requestId": request_id, "idToken": token, "batteryData": data}
    return [2, message_id, "BatterySwap", payload]


async def _ask(ws: Any, frame: str | list[Any]) -> list[Any]:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return list(json.loads(await ws.recv()))


BAD_CALLS: dict[str, tuple[list[Any] | str, str]] = {
    "unknown action": ([2, "m1", "MakeCoffee", {}], "NotImplemented"),
    "CSMS-only action": (
        [2, "m2", "RequestBatterySwap", {"idToken": {}, "requestId": 1}],
        "NotSupported",
    ),
    "payload not an object": ([2, "m3", "Heartbeat", []], "FormatViolation"),
    "missing required field": ([2, "m4", "Authorize", {}], "OccurrenceConstraintViolation"),
    "wrong type": (
        _battery_in("m5", "x", "B-1", [battery(2, "B-1", 20, 99)]),
        "TypeConstraintViolation",
    ),
    "soC above 100": (
        _battery_in("m6", 3, "B-1", [battery(2, "B-1", 120, 99)]),
        "PropertyConstraintViolation",
    ),
    "slot outside the station": (
        _battery_in("m7", 4, "X-1", [battery(99, "X-1", 20, 99)]),
        "PropertyConstraintViolation",
    ),
    "pack into an occupied slot": (
        _battery_in("m8", 5, "X-2", [battery(1, "X-2", 20, 99)]),
        "GenericError",
    ),
    "no batteryData": (
        _battery_in("m11", 6, "B-1", []),
        "OccurrenceConstraintViolation",
    ),
    "unknown field": ([2, "m12", "Heartbeat", {"coffee": True}], "FormatViolation"),
    "bad date-time": (
        [
            2,
            "m13",
            "StatusNotification",
            {"timestamp": "yesterday", "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        ],
        "PropertyConstraintViolation",
    ),
    "idToken outside the character set": (
        [2, "m14", "Authorize", {"idToken": {"idToken": "B 1;DROP", "type": "ISO14443"}}],
        "PropertyConstraintViolation",
    ),
    "unknown message type": ([7, "m9", "Heartbeat", {}], "MessageTypeNotSupported"),
    "oversized": (
        json.dumps([2, "m10", "DataTransfer", {"vendorId": "x", "data": "y" * MAX_MESSAGE_BYTES}]),
        "FormatViolation",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
async def test_bad_calls_get_the_right_callerror_and_write_nothing(
    db: Database, live_server: LiveServer, case: str
) -> None:
    passwords = _network(db)
    ws = await _raw(live_server, "ST1", passwords["ST1"])
    other = await _raw(live_server, "ST2", passwords["ST2"])
    before = _snapshot(db)
    frame, code = BAD_CALLS[case]
    reply = await _ask(ws, frame)
    message_id = json.loads(frame)[1] if isinstance(frame, str) else frame[1]
    assert reply[:3] == [4, message_id, code], reply
    assert isinstance(reply[3], str) and reply[3]
    assert _snapshot(db) == before
    # The same socket and another station both go on working.
    assert (await _ask(ws, [2, "hb", "Heartbeat", {}]))[0] == 3
    assert (await _ask(other, [2, "hb", "Heartbeat", {}]))[0] == 3
    await ws.close()
    await other.close()


@pytest.mark.parametrize("garbage", ["not json at all", "{}", "[2]", '"text"'])
async def test_garbage_closes_only_that_socket(
    db: Database, live_server: LiveServer, garbage: str
) -> None:
    passwords = _network(db)
    ws = await _raw(live_server, "ST1", passwords["ST1"])
    other = await _raw(live_server, "ST2", passwords["ST2"])
    before = _snapshot(db)
    await ws.send(garbage)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert _snapshot(db) == before
    assert (await _ask(other, [2, "hb", "Heartbeat", {}]))[0] == 3
    await other.close()


async def test_every_station_action_gets_a_reply(db: Database, live_server: LiveServer) -> None:
    passwords = _network(db)
    ws = await _raw(live_server, "ST1", passwords["ST1"])
    calls: list[list[Any]] = [
        [2, "a1", "FirmwareStatusNotification", {"status": "Installed"}],
        [2, "a2", "LogStatusNotification", {"status": "Idle"}],
        [
            2,
            "a3",
            "NotifyReport",
            {"requestId": 1, "generatedAt": "2026-11-26T09:00:00Z", "seqNo": 0},
        ],
        [
            2,
            "a4",
            "SecurityEventNotification",
            {"type": "TamperDetectionActivated", "timestamp": "2026-11-26T09:00:00Z"},
        ],
        [2, "a5", "DataTransfer", {"vendorId": "com.example"}],
        [2, "a6", "Heartbeat", {}],
    ]
    for frame in calls:
        reply = await _ask(ws, frame)
        assert reply[0] == 3 and reply[1] == frame[1], (frame[2], reply)
    await ws.close()


async def _status_of(server: LiveServer, station_id: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"{server.url}/ocpp/{station_id}",
            subprotocols=[websockets.Subprotocol("ocpp2.1")],
            additional_headers=headers,
        )
    return int(refused.value.response.status_code)


async def test_basic_auth(db: Database, live_server: LiveServer) -> None:
    passwords = _network(db)
    assert await _status_of(live_server, "NOPE", basic_auth("NOPE", "x" * 20)) == 404
    assert await _status_of(live_server, "ST1", basic_auth("ST1", "wrong-password-123")) == 401
    assert await _status_of(live_server, "ST1", {}) == 401
    # A station may not speak for another: username must be the id in the URL.
    assert await _status_of(live_server, "ST1", basic_auth("ST2", passwords["ST2"])) == 401
    stations.set_enabled(db, "ST2", False)
    assert await _status_of(live_server, "ST2", basic_auth("ST2", passwords["ST2"])) == 403
    ok = await connect(live_server, "ST1", passwords["ST1"])
    assert (await boot(ok)).status == "Accepted"
    assert ok.ws.subprotocol == "ocpp2.1"
    await ok.close()
    older = await connect(live_server, "ST1", passwords["ST1"], subprotocol="ocpp2.0.1")
    assert older.ws.subprotocol == "ocpp2.0.1"
    await older.close()


async def test_metrics_and_health(db: Database, live_server: LiveServer) -> None:
    passwords = _network(db)
    ws = await _raw(live_server, "ST1", passwords["ST1"])
    await _ask(ws, [2, "x", "MakeCoffee", {}])
    await _ask(ws, [2, "a", "Authorize", {"idToken": {"idToken": "NOBODY", "type": "ISO14443"}}])
    base = live_server.url.replace("ws://", "http://")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/healthz")).status_code == 200
        text = (await client.get(f"{base}/metrics")).text
    assert "swapd_connected_stations 1.0" in text
    assert 'swapd_ocpp_messages_total{action="BootNotification"} 1.0' in text
    assert 'swapd_ocpp_call_errors_total{code="NotImplemented"} 1.0' in text
    assert 'swapd_refusals_total{reason="unknown_token"} 1.0' in text
    assert "swapd_decision_seconds_count 1.0" in text
    await ws.close()


def test_tls_with_certificate_and_key(db: Database, tmp_path: Path) -> None:
    """Security profile 2: `swapd serve --certfile --keyfile` speaks wss://."""
    import asyncio

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    passwords = _network(db)
    with embedded_server(db, certfile=str(cert), keyfile=str(key)) as url:
        assert url.startswith("wss://")
        context = ssl.create_default_context(cafile=str(cert))

        async def talk() -> list[Any]:
            async with websockets.connect(
                f"{url}/ocpp/ST1",
                subprotocols=[websockets.Subprotocol("ocpp2.1")],
                additional_headers=basic_auth("ST1", passwords["ST1"]),
                ssl=context,
            ) as ws:
                await ws.send(json.dumps(BOOT))
                return list(json.loads(await ws.recv()))

        assert asyncio.run(talk())[2]["status"] == "Accepted"
        plain = ssl.create_default_context()  # does not trust the self-signed certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            asyncio.run(websockets.connect(f"{url}/ocpp/ST1", ssl=plain).__aenter__())


async def test_a_message_id_longer_than_36_characters_is_refused_under_id_minus_1(
    db: Database, live_server: LiveServer
) -> None:
    """OCPP-J: a message id has at most 36 characters. Our CALLERROR must keep that rule too,
    so it goes under the id OCPP-J keeps for a CALL whose id cannot be used, "-1"."""
    passwords = _network(db)
    ws = await _raw(live_server, "ST1", passwords["ST1"])
    before = _snapshot(db)
    too_long = "m" * (MAX_MESSAGE_ID_CHARS + 1)
    reply = await _ask(ws, _battery_in(too_long, 7, "B-1", [battery(2, "B-1", 20, 99)]))
    assert reply[:3] == [4, UNUSABLE_MESSAGE_ID, "RpcFrameworkError"], reply
    assert _snapshot(db) == before  # the swap event was not processed
    oversized = [2, too_long, "DataTransfer", {"vendorId": "x", "data": "y" * MAX_MESSAGE_BYTES}]
    assert (await _ask(ws, oversized))[:3] == [4, UNUSABLE_MESSAGE_ID, "FormatViolation"]
    # A reply with such an id answers no CALL of ours: dropped, unanswered, the socket stays.
    await ws.send(json.dumps([3, too_long, {}]))
    longest = "h" * MAX_MESSAGE_ID_CHARS
    assert (await _ask(ws, [2, longest, "Heartbeat", {}]))[:2] == [3, longest]
    await ws.close()


@pytest.mark.parametrize("case", ["missing required field", "idToken outside the character set"])
async def test_a_refused_call_is_one_warning_line_without_a_traceback(
    db: Database, live_server: LiveServer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """A station's bad payload is its mistake, refused as the protocol expects: one warning,
    whether the schema check or a handler refuses it; not an error with a traceback."""
    passwords = _network(db)
    ws = await _raw(live_server, "ST1", passwords["ST1"])
    frame, code = BAD_CALLS[case]
    assert isinstance(frame, list)
    with caplog.at_level(logging.INFO), structlog.testing.capture_logs() as logged:
        assert (await _ask(ws, frame))[:3] == [4, frame[1], code]
    refused = [e for e in logged if e["event"] == "ocpp_call_refused"]
    assert len(refused) == 1, logged
    assert refused[0]["log_level"] == "warning"
    assert (refused[0]["station"], refused[0]["message_id"], refused[0]["code"]) == (
        "ST1",
        frame[1],
        code,
    )
    assert [e for e in logged if e["log_level"] in ("error", "critical", "exception")] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    await ws.close()
