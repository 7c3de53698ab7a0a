"""Schema checks of incoming CALLs, answered with the CALLERROR code OCPP-J 2.x defines for each
kind of fault. The ``ocpp`` package validates too, but reports a missing field as ProtocolError and
a value out of range as FormatViolation; stations branch on these codes, so we name them exactly."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from ocpp.messages import MessageType, get_validator

# OCPP's identifierString: the character set of idToken values (case-insensitive).
IDENTIFIER = re.compile(r"[A-Za-z0-9*\-_=:+|@.]*")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time: a date, 'T', a time and a zone (the ``ocpp`` package skips this)."""
    if not isinstance(value, str):
        return True  # the type check reports it
    if "T" not in value.upper():
        raise ValueError("a date-time needs a date and a time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a time zone (Z or +hh:mm)")
    return True


@cache
def _validator(version: str, action: str) -> Draft4Validator:
    schema = get_validator(MessageType.Call, action, version).schema
    return Draft4Validator(schema, format_checker=_FORMATS)


# OCPP-J 2.0.1/2.1 part 4, CallError codes:
#   TypeConstraintViolation       a field has the wrong data type ("somestring": 12)
#   OccurrenceConstraintViolation a field is missing, or a list has too few / too many items
#   PropertyConstraintViolation   a field holds an invalid value (range, length, enumeration)
#   FormatViolation               the payload is not the PDU's structure (unknown fields, ...)
_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "exclusiveMinimum": "PropertyConstraintViolation",
    "exclusiveMaximum": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
}


def _where(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "payload"


def schema_fault(version: str, action: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    """The CALLERROR code and a one-line description for a payload that breaks its action's
    schema, or None when it conforms."""
    error = best_match(_validator(version, action).iter_errors(payload))
    if error is None:
        return None
    code = _CODE_BY_KEYWORD.get(str(error.validator), "FormatViolation")
    return code, f"{action} {_where(error)}: {error.message}"[:500]
