"""The gateway's cached key conversions give what the ``ocpp`` package's own routing gives, for
every field name the OCPP 2.1 and 2.0.1 schemas have, in any nesting; and the gateway's dispatch
needs nothing of ocpp's routing that it leaves out."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import ocpp
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v21 import call_result as result21
from ocpp.v21 import datatypes as types21

from swapd.gateway import casing
from swapd.gateway.session import Station21, Station201


def _schema_keys() -> list[str]:
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                keys.add(key)
                walk(value)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    root = Path(ocpp.__file__).parent
    for version in ("v21", "v201"):
        for schema in (root / version / "schemas").glob("*.json"):
            walk(json.loads(schema.read_text()))
    return sorted(keys)


CAMEL_KEYS = _schema_keys()
SNAKE_KEYS = sorted({next(iter(camel_to_snake_case({key: None}))) for key in CAMEL_KEYS})

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))


def payloads(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=4),
        ),
        max_leaves=12,
    )


def test_every_schema_key_converts_as_ocpp_converts_it() -> None:
    assert len(CAMEL_KEYS) > 500  # the walk found the schemas
    for key in CAMEL_KEYS:
        assert casing.to_snake({key: 1}) == camel_to_snake_case({key: 1})
    for key in SNAKE_KEYS:
        assert casing.to_wire({key: 1}) == snake_to_camel_case({key: 1})


@settings(max_examples=300)
@given(payloads(CAMEL_KEYS))
def test_incoming_payloads_convert_as_ocpp_converts_them(payload: Any) -> None:
    assert casing.to_snake(payload) == camel_to_snake_case(payload)


@settings(max_examples=300)
@given(payloads(SNAKE_KEYS))
def test_replies_convert_as_ocpp_converts_them(reply: Any) -> None:
    expected = snake_to_camel_case(remove_nones(reply)) if isinstance(reply, dict | list) else reply
    assert casing.to_wire(reply) == expected


def test_reply_dataclasses_serialize_as_ocpp_serializes_them() -> None:
    replies = [
        result21.Authorize(
            id_token_info={
                "status": "Accepted",
                "evse_id": [2],
                "personal_message": {"format": "UTF8", "content": "x"},
            }
        ),
        result21.Authorize(id_token_info={"status": "Invalid"}),
        result21.BootNotification(current_time="2026-11-26T10:00:00Z", interval=300, status="Accepted"),
        result21.Heartbeat(current_time="2026-11-26T10:00:00Z"),
        result21.BatterySwap(),
        result21.TransactionEvent(
            total_cost=1.5,
            id_token_info=types21.IdTokenInfoType(
                status="Accepted", cache_expiry_date_time=None, evse_id=[1]
            ),
        ),
    ]
    for reply in replies:
        assert casing.to_wire(reply) == snake_to_camel_case(remove_nones(serialize_as_dict(reply)))


def test_no_handler_needs_what_the_fast_dispatch_leaves_out() -> None:
    """_Routing._handle passes no call_unique_id and runs no @after hook."""
    for station_class in (Station21, Station201):
        handlers: list[Any] = []
        for name in dir(station_class):
            member = getattr(station_class, name)
            if hasattr(member, "_on_action"):
                handlers.append(member)
            assert not hasattr(member, "_after_action"), name
        assert len(handlers) >= 8
        for handler in handlers:
            assert "call_unique_id" not in inspect.signature(handler).parameters, handler.__name__
