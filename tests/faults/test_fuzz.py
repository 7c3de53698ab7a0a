"""Property-based fuzzing of OCPP frames sent to a live server: CALLs of real actions with
payloads mutated to break their schema (missing fields, wrong types, huge numbers, unicode,
over-long strings, unknown fields), values the schema allows but swaps cannot have, idTokens
outside OCPP's character set, and broken frames (truncated JSON, wrong message types, unknown
actions, oversized frames).

For every frame: the server does not crash and keeps answering (a Heartbeat after it gets its
reply), the frame is answered with a CALLERROR carrying a code OCPP-J defines for that fault (a
frame without a readable message id may only close the socket, with 1007 or 1009), and nothing
is written to the database: every table is compared before and after.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from swapd.gateway.validation import schema_fault
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import make_engine, upgrade
from tests.faults.conftest import Net

# Codes OCPP-J 2.x defines for a malformed or unacceptable CALL. InternalError (a handler
# crashed) and GenericError are not acceptable answers to bad input.
PROPER_CODES = frozenset(
    {
        "FormatViolation",
        "PropertyConstraintViolation",
        "OccurrenceConstraintViolation",
        "TypeConstraintViolation",
        "ProtocolError",
        "NotImplemented",
        "NotSupported",
        "MessageTypeNotSupported",
        "SecurityError",
    }
)
CLOSE_CODES = frozenset({1007, 1009})  # no message id to answer: the socket goes
ANSWER_TIMEOUT_S = 20.0
MAX_EXAMPLES = 120
NOW = "2026-11-02T09:00:00Z"
TOKEN = {"idToken": "R1-PACK", "type": "BatterySerial"}

VALID: dict[str, dict[str, Any]] = {
    "Authorize": {"idToken": TOKEN},
    "BatterySwap": {
        "eventType": "BatteryIn",
        "requestId": 42,
        "idToken": TOKEN,
        "batteryData": [{"evseId": 5, "serialNumber": "R1-PACK", "soC": 40.0, "soH": 100.0}],
    },
    "MeterValues": {
        "evseId": 1,
        "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": 55.0, "measurand": "SoC"}]}],
    },
    "StatusNotification": {
        "timestamp": NOW,
        "connectorStatus": "Occupied",
        "evseId": 5,
        "connectorId": 1,
    },
    "NotifyEvent": {
        "generatedAt": NOW,
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": NOW,
                "trigger": "Delta",
                "actualValue": "Occupied",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "Connector", "evse": {"id": 5}},
                "variable": {"name": "AvailabilityState"},
            }
        ],
    },
    "TransactionEvent": {
        "eventType": "Updated",
        "timestamp": NOW,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "T-1"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": 60.0, "measurand": "SoC"}]}],
    },
    "BootNotification": {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
    "Heartbeat": {},
    "DataTransfer": {"vendorId": "acme"},
    "SecurityEventNotification": {"type": "Tamper", "timestamp": NOW},
    "FirmwareStatusNotification": {"status": "Installed"},
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x80), min_size=1, max_size=300),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def schema_breaking_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A real action whose payload one mutation makes invalid against the official schema."""
    action = draw(st.sampled_from(sorted(VALID)))
    payload = copy.deepcopy(VALID[action])
    paths = _paths(payload)
    mutation = draw(st.sampled_from(["replace", "delete", "extra"] if paths else ["extra"]))
    if mutation == "extra":
        target: Any = payload
        if paths:
            parent = draw(st.sampled_from([(), *paths]))
            for step in parent:
                target = target[step]
        if isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        elif isinstance(target, list):
            target.append(draw(json_values))
        else:
            payload[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    else:
        path = draw(st.sampled_from(paths))
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        if mutation == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    assume(schema_fault("2.1", action, payload) is not None)
    return action, payload


@st.composite
def impossible_swaps(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Schema-valid BatterySwaps that no station can send: a slot the station does not have,
    a percentage outside 0..100, a requestId longer than 64 digits, an idToken outside OCPP's
    identifierString."""
    payload = copy.deepcopy(VALID["BatterySwap"])
    payload["eventType"] = draw(st.sampled_from(["BatteryIn", "BatteryOut", "BatteryOutTimeout"]))
    item = payload["batteryData"][0]
    fault = draw(st.sampled_from(["slot", "soc", "soh", "request", "token"]))
    if fault == "slot":
        item["evseId"] = draw(st.integers(min_value=9, max_value=10**18) | st.integers(max_value=0))
    elif fault in ("soc", "soh"):
        key = "soC" if fault == "soc" else "soH"
        item[key] = draw(
            st.floats(min_value=100.01, max_value=1e300) | st.floats(max_value=-0.01, min_value=-1e300)
        )
    elif fault == "request":
        payload["requestId"] = draw(st.integers(min_value=10**64, max_value=10**80))
    else:
        bad = draw(
            st.text(min_size=1, max_size=36).filter(
                lambda s: any(not c.isascii() or not c.isalnum() for c in s)
            )
        )
        assume(not all(c.isascii() and (c.isalnum() or c in "*-_=:+|@.") for c in bad))
        payload["idToken"] = {"idToken": bad, "type": "BatterySerial"}
    return "BatterySwap", payload


@st.composite
def broken_frames(draw: st.DrawFn) -> str:
    """Frames that are not a well-formed CALL of a known action."""
    kind = draw(
        st.sampled_from(
            [
                "truncated",
                "not_a_list",
                "short_call",
                "message_type",
                "unknown_action",
                "huge",
                "id_type",
            ]
        )
    )
    if kind == "truncated":
        text = json.dumps([2, "fz-1", "Authorize", {"idToken": TOKEN}])
        return text[: draw(st.integers(min_value=1, max_value=len(text) - 1))]
    if kind == "not_a_list":
        return json.dumps(
            draw(json_scalars | st.dictionaries(st.text(max_size=5), json_scalars, max_size=3))
        )
    if kind == "short_call":
        return json.dumps([2, "fz-2", draw(st.sampled_from(sorted(VALID)))])
    if kind == "message_type":
        return json.dumps([draw(st.integers(min_value=5, max_value=10**6)), "fz-3", "Heartbeat", {}])
    if kind == "unknown_action":
        name = draw(st.text(min_size=1, max_size=40).filter(lambda s: s not in VALID))
        return json.dumps([2, "fz-4", name, {}])
    if kind == "huge":
        return json.dumps([2, "fz-5", "DataTransfer", {"vendorId": "acme", "data": "x" * 70_000}])
    return json.dumps(
        [2, draw(st.integers() | st.none() | st.lists(st.integers(), max_size=2)), "Heartbeat", {}]
    )


_PRESENCE = frozenset({"last_seen_at", "connected_at", "connection_id"})


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, less a station's presence: last_seen_at moves with each
    Heartbeat, connected_at and connection_id with each socket the probe reopens (and the server
    writes them after the close it answered, so a snapshot may fall on either side)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as connection:
        for table in t.metadata.sorted_tables:
            columns = [c for c in table.columns if not (table is t.stations and c.name in _PRESENCE)]
            rows = connection.execute(sa.select(*columns)).all()
            tables[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return tables


class Probe:
    """One booted station's socket, reopened whenever the server closes it."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.ws: ClientConnection | None = None
        self.closes: list[int] = []

    def open(self) -> ClientConnection:
        if self.ws is None:
            token = base64.b64encode(f"ST1:{self.net.passwords['ST1']}".encode()).decode()
            self.ws = connect(
                f"{self.net.url}/ocpp/ST1",
                subprotocols=["ocpp2.1"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {token}"},
                max_size=None,
                open_timeout=ANSWER_TIMEOUT_S,
            )
        return self.ws

    def exchange(self, text: str) -> list[Any] | int:
        """Send a frame: the answer frame, or the close code when the server closed instead."""
        ws = self.open()
        try:
            ws.send(text)
            while True:
                frame = json.loads(ws.recv(timeout=ANSWER_TIMEOUT_S))
                if frame[0] in (3, 4):
                    return list(frame)
        except ConnectionClosed as closed:
            self.ws = None
            code = closed.rcvd.code if closed.rcvd is not None else -1
            self.closes.append(code)
            return code

    def call(self, action: str, payload: dict[str, Any]) -> list[Any] | int:
        return self.exchange(json.dumps([2, "fz-call", action, payload]))

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: what is fuzzed is the gateway's handling of frames, which does not depend on
    the database, and a whole-database snapshot per example is slow on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def probe(db: Database, net: Net) -> Iterator[Probe]:
    probe = Probe(net)
    answer = probe.call("BootNotification", VALID["BootNotification"])
    assert isinstance(answer, list) and answer[0] == 3
    yield probe
    probe.close()


def _check(db: Database, probe: Probe, text: str, *, may_close: bool) -> None:
    before = snapshot(db)
    answer = probe.exchange(text)
    if isinstance(answer, int):
        assert may_close and answer in CLOSE_CODES, f"socket closed with {answer} for {text[:200]!r}"
    else:
        assert answer[0] == 4, f"{text[:200]!r} was accepted: {answer}"
        assert answer[2] in PROPER_CODES, f"{text[:200]!r} got {answer[2]}: {answer[3]}"
    assert snapshot(db) == before, f"{text[:200]!r} wrote to the database"
    alive = probe.call("Heartbeat", {})
    assert isinstance(alive, list) and alive[0] == 3, f"no Heartbeat answer after {text[:200]!r}"


FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(call=schema_breaking_calls() | impossible_swaps())
def test_invalid_calls_get_a_callerror_and_write_nothing(
    db: Database, probe: Probe, call: tuple[str, dict[str, Any]]
) -> None:
    action, payload = call
    _check(db, probe, json.dumps([2, "fz-0", action, payload]), may_close=False)


@FUZZ
@given(frame=broken_frames())
def test_broken_frames_are_refused_and_the_server_keeps_answering(
    db: Database, probe: Probe, frame: str
) -> None:
    _check(db, probe, frame, may_close=True)
