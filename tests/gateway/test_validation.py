"""The fast schema check (fastjsonschema) and the precise one (jsonschema, which names the
CALLERROR code) give the same verdict on every payload, valid or broken."""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.gateway.validation import _fast_validator, _validator, schema_fault
from tests.faults.test_fuzz import VALID, _paths, json_values

# Values a station might plausibly send in any field: right and wrong types, edge numbers,
# date-times with and without a zone, enumeration members and near misses.
plausible = st.one_of(
    json_values,
    st.sampled_from(
        [
            0,
            1,
            -1,
            1.0,
            2.5,
            True,
            "",
            "BatteryIn",
            "batteryin",
            "Accepted",
            "2026-11-02T09:00:00Z",
            "2026-11-02T09:00:00",
            "2026-11-02T09:00:00+09:00",
            "2026-11-02",
            "not a date",
            "x" * 37,
            "x" * 2000,
            {"idToken": "R1", "type": "BatterySerial"},
            [],
            {},
        ]
    ),
)


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    action = draw(st.sampled_from(sorted(VALID)))
    payload = copy.deepcopy(VALID[action])
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        paths = _paths(payload)
        if not paths:
            payload[draw(st.text(min_size=1, max_size=8))] = copy.deepcopy(draw(plausible))
            continue
        path = draw(st.sampled_from(paths))
        parent: Any = payload
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            parent[path[-1]] = copy.deepcopy(draw(plausible))  # sampled values are shared
        elif isinstance(parent, dict):
            del parent[path[-1]]
    return action, payload


@settings(max_examples=600, deadline=None)
@given(payloads())
def test_fast_and_precise_validators_agree(case: tuple[str, dict[str, Any]]) -> None:
    action, payload = case
    precise = _validator("2.1", action).is_valid(payload)
    try:
        _fast_validator("2.1", action)(payload)
        fast = True
    except fastjsonschema.JsonSchemaException:
        fast = False
    assert fast == precise, (action, payload)
    assert (schema_fault("2.1", action, payload) is None) == precise


@pytest.mark.parametrize("action", sorted(VALID))
def test_the_sample_payloads_are_valid(action: str) -> None:
    assert schema_fault("2.1", action, VALID[action]) is None


def test_a_broken_payload_gets_its_precise_code() -> None:
    payload = copy.deepcopy(VALID["BatterySwap"])
    payload["requestId"] = "42"
    assert schema_fault("2.1", "BatterySwap", payload) == (
        "TypeConstraintViolation",
        "BatterySwap requestId: '42' is not of type 'integer'",
    )
    del payload["requestId"]
    fault = schema_fault("2.1", "BatterySwap", payload)
    assert fault is not None and fault[0] == "OccurrenceConstraintViolation"
