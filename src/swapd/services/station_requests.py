"""The OCPP requests swapd sends to stations, checked against the official JSON schemas before
they are queued and again before they are sent.

Stations are written by others, in other languages, often with strict schema validation: a
request with an unknown field or a wrong type is refused by them with a CALLERROR, or worse,
ignored. So every request is a plain dict in the wire's casing (``evseId``, never ``evse_id``),
built here or by a use case, and it must pass its action's ``<Action>Request.json`` of the
station's OCPP version (the schemas ship in the ``ocpp`` package) under draft 4 with RFC 3339
date-times. The validators here check the stations' incoming messages too
(swapd.gateway.validation, which maps a fault to its CALLERROR code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import best_match

from swapd.domain.errors import InvalidInput

OCPP_21 = "2.1"
OCPP_201 = "2.0.1"
# Far above any request swapd builds (a local list chunk is the largest, about 60 KiB at
# MAX_LOCAL_LIST_ITEMS); the station's own frame limit is usually 64 KiB or more.
MAX_REQUEST_BYTES = 60_000

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type check reports it
    if "T" not in value.upper():
        raise ValueError("a date-time needs a date and a time")
    if datetime.fromisoformat(value).tzinfo is None:
        raise ValueError("a date-time needs a time zone (Z or +hh:mm)")
    return True


def _date_time_ok(value: object) -> bool:
    try:
        return _is_date_time(value)
    except ValueError:
        return False


@cache
def _schema(version: str, name: str) -> dict[str, Any]:
    folder = "v" + version.replace(".", "")
    text = resources.files("ocpp").joinpath(folder, "schemas", f"{name}.json").read_text("utf-8-sig")
    schema: dict[str, Any] = json.loads(text)
    return {**schema, "$schema": "http://json-schema.org/draft-04/schema#"}


@cache
def fast_validator(version: str, name: str) -> Callable[[Any], Any]:
    """The schema ``name`` (``BatterySwapRequest``, ``ResetResponse``, ...) of OCPP ``version``
    compiled by fastjsonschema: draft 4 (1.0 is not an integer) with RFC 3339 date-times."""
    return fastjsonschema.compile(_schema(version, name), formats={"date-time": _date_time_ok})  # type: ignore[no-any-return]


@cache
def precise_validator(version: str, name: str) -> Draft4Validator:
    """The same schema under the same rules through jsonschema: slower, but it names the fault."""
    return Draft4Validator(_schema(version, name), format_checker=_FORMATS)


def _fault(version: str, name: str, payload: dict[str, Any]) -> str | None:
    try:
        fast_validator(version, name)(payload)
        return None
    except fastjsonschema.JsonSchemaException:
        pass
    error = best_match(precise_validator(version, name).iter_errors(payload))
    if error is None:
        return f"{name} does not conform to its schema"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{name} {where.lstrip('.') or 'payload'}: {error.message}"[:300]


def known_action(action: str, version: str = OCPP_21) -> bool:
    try:
        _schema(version, f"{action}Request")
    except (FileNotFoundError, OSError):
        return False
    return True


def check_request(action: str, payload: dict[str, Any], version: str = OCPP_21) -> None:
    """Raise InvalidInput unless ``payload`` is a valid ``action`` request for ``version``."""
    if not known_action(action, version):
        raise InvalidInput(f"{action} is not an OCPP {version} request")
    if len(json.dumps(payload, separators=(",", ":"))) > MAX_REQUEST_BYTES:
        raise InvalidInput(f"{action} would exceed {MAX_REQUEST_BYTES} bytes")
    fault = _fault(version, f"{action}Request", payload)
    if fault is not None:
        raise InvalidInput(fault)


def response_fault(action: str, payload: dict[str, Any], version: str = OCPP_21) -> str | None:
    """Why a station's answer breaks its schema, or None. Recorded, not thrown: the station
    did answer, and the operator should see what it said."""
    return _fault(version, f"{action}Response", payload)
