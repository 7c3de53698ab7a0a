"""Reading the fields of one table of a scenario file, with errors that say where the problem is.

Every error is an :class:`InvalidInput` whose message starts with the place (file, step number and
kind) and names the field, so the CLI can print it as one line and exit 2. Values are checked as
strictly as the services check them: booleans are not integers, floats are not amounts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import TypeVar

from swapd.domain.errors import InvalidInput
from swapd.domain.packs import validate_code, validate_serial
from swapd.domain.quantities import percent_to_bp
from swapd.domain.riders import IdToken, TokenType
from swapd.services.swaps import BatteryReading

T = TypeVar("T")

# How a token is written in a scenario: a one-key table such as ``{ battery = "B-0001" }``.
TOKEN_KEYS: dict[str, TokenType] = {
    "battery": TokenType.BATTERY_SERIAL,
    "rfid": TokenType.RFID,
    "rfid_15693": TokenType.RFID_15693,
    "app": TokenType.APP,
    "operator": TokenType.OPERATOR,
}


def describe_value(value: object) -> str:
    """A value as the user wrote it in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def suggestion(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_time(value: object, where: str) -> datetime:
    """An instant with a UTC offset: a TOML offset date-time or an ISO 8601 string.

    Local times are refused because the ledger stores aware timestamps and a scenario must
    mean the same instant on every machine.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{where}: not an ISO 8601 date-time: {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(f"{where}: needs a UTC offset, e.g. 2026-11-02T09:00:00Z")
        return value.astimezone(UTC)
    if isinstance(value, date | time):
        raise InvalidInput(f"{where}: needs a date and time with offset, got {value}")
    raise InvalidInput(f"{where}: must be a date-time such as 2026-11-02T09:00:00Z")


class Fields:
    """The fields of one TOML table. Each accessor marks its field as read; ``finish`` refuses
    whatever was not read, so a misspelt field is an error instead of a silently ignored one."""

    def __init__(self, data: Mapping[str, object], where: str) -> None:
        self._data = dict(data)
        self._read: set[str] = set()
        self.where = where

    def error(self, field: str, message: str) -> InvalidInput:
        return InvalidInput(f"{self.where}, {field}: {message}")

    def fail(self, message: str) -> InvalidInput:
        """An error about the table as a whole rather than one of its fields."""
        return InvalidInput(f"{self.where}: {message}")

    def has(self, name: str) -> bool:
        return name in self._data

    def names(self) -> list[str]:
        return list(self._data)

    def raw(self, name: str) -> object:
        """The value, which must be present."""
        self._read.add(name)
        if name not in self._data:
            raise self.error(name, "required field missing")
        return self._data[name]

    def optional(self, name: str) -> object | None:
        self._read.add(name)
        return self._data.get(name)

    def checked(self, name: str, check: Callable[[], T]) -> T:
        """Run a domain validator, putting this field's place in front of its message."""
        try:
            return check()
        except InvalidInput as error:
            # Domain messages often name the field already ("soc must be ..."): say it once.
            if error.message.startswith(name):
                raise InvalidInput(f"{self.where}: {error.message}") from None
            raise self.error(name, error.message) from None

    # -- scalars ----------------------------------------------------------------------------

    def text(self, name: str, default: str | None = None) -> str:
        value = self.raw(name) if default is None or self.has(name) else default
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, got {describe_value(value)}")
        if not value.isprintable():
            raise self.error(name, "must be printable characters")
        return value

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def code(self, name: str, what: str) -> str:
        value = self.raw(name)
        return self.checked(name, lambda: validate_code(value, what))

    def serial(self, name: str) -> str:
        value = self.raw(name)
        return self.checked(name, lambda: validate_serial(value))

    def integer(self, name: str, *, minimum: int | None = None, default: int | None = None) -> int:
        value = self.raw(name) if default is None or self.has(name) else default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {describe_value(value)}")
        if minimum is not None and value < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(name, f"must be {wanted}, got {value}")
        return value

    def optional_integer(self, name: str, *, minimum: int | None = None) -> int | None:
        return self.integer(name, minimum=minimum) if self.has(name) else None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {describe_value(value)}")
        return value

    def percent_bp(self, name: str, default: int | None = None) -> int:
        """A percentage as written (98.0, 95.25, 100) in basis points; at most two decimals."""
        if default is not None and not self.has(name):
            self._read.add(name)
            return default
        value = self.raw(name)
        return self.checked(name, lambda: percent_to_bp(value, name))

    def request_id(self, name: str) -> str:
        """OCPP requestIds are integers; strings are accepted too, as the services store text."""
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.error(name, f"must be an integer or a string, got {describe_value(value)}")
        text = str(value)
        if not 1 <= len(text) <= 64 or not text.isprintable():
            raise self.error(name, "must be 1-64 printable characters")
        return text

    def instant(self, name: str) -> datetime:
        value = self.raw(name)
        return parse_time(value, f"{self.where}, {name}")

    def choice(self, name: str, choices: Mapping[str, T]) -> T:
        value = self.raw(name)
        if not isinstance(value, str) or value not in choices:
            hint = suggestion(value, choices) if isinstance(value, str) else ""
            known = ", ".join(choices)
            raise self.error(name, f"{describe_value(value)} is not one of {known}{hint}")
        return choices[value]

    # -- tables and arrays --------------------------------------------------------------------

    def table(self, name: str) -> Fields:
        value = self.raw(name)
        if not isinstance(value, dict):
            raise self.error(name, f"must be a table, got {describe_value(value)}")
        return Fields(value, f"{self.where}, {name}")

    def tables(self, name: str) -> list[Fields]:
        """An array of tables; a single table is taken as an array of one."""
        value = self.raw(name)
        if isinstance(value, dict):
            return [Fields(value, f"{self.where}, {name}")]
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise self.error(name, "must be a table or a non-empty array of tables")
        return [Fields(v, f"{self.where}, {name}[{i}]") for i, v in enumerate(value, 1)]

    def text_list(self, name: str) -> list[str]:
        value = self.raw(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, "must be an array of strings")
        return list(value)

    def token(self, name: str) -> IdToken:
        """``{ battery = "B-0001" }``, ``{ rfid = "04A1B2" }``, ``{ app = "R1" }``, ..."""
        table = self.table(name)
        keys = table.names()
        if len(keys) != 1 or keys[0] not in TOKEN_KEYS:
            known = ", ".join(TOKEN_KEYS)
            raise self.error(name, f"must be a table with one key of {known}")
        key = keys[0]
        token_type = TOKEN_KEYS[key]
        if token_type is TokenType.BATTERY_SERIAL:
            value = table.serial(key)
        elif token_type is TokenType.APP:
            value = table.code(key, "rider")
        else:
            value = table.text(key)
        return IdToken(token_type, value)

    def battery(self) -> BatteryReading:
        """One pack as the station's BMS reader saw it: slot, serial, soc and soh (percent)."""
        slot, serial = self.raw("slot"), self.raw("serial")
        soc, soh = self.raw("soc"), self.raw("soh")
        # Checked one by one first so that the error names the field that is wrong.
        self.checked("soc", lambda: percent_to_bp(soc, "soc"))
        self.checked("soh", lambda: percent_to_bp(soh, "soh"))
        self.checked("serial", lambda: validate_serial(serial))
        reading = self.checked("slot", lambda: BatteryReading.parse(slot, serial, soc, soh))
        if reading.slot_no < 1:
            raise self.error("slot", f"must be a positive integer, got {reading.slot_no}")
        self.finish()
        return reading

    def finish(self) -> None:
        """Refuse fields nobody read: they are typos or belong to another kind of step."""
        unknown = [name for name in self._data if name not in self._read]
        if unknown:
            name = unknown[0]
            raise self.error(name, f"unknown field{suggestion(name, self._read)}")
