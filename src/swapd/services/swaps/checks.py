"""Checks of a swap event's input that need no database, and the batteries against the station's
slots. Each raises InvalidInput, which the gateway answers as PropertyConstraintViolation."""

from __future__ import annotations

from collections.abc import Sequence

from swapd.domain.errors import InvalidInput
from swapd.domain.packs import validate_serial
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.stations import Station
from swapd.services.swaps.records import MAX_PACKS_PER_SWAP, BatteryReading


def check_request_id(request_id: object) -> str:
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        request_id = str(request_id)
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64 or not request_id.isprintable():
        raise InvalidInput(f"requestId must be 1-64 printable characters, got {request_id!r}")
    return request_id


def check_token(token: IdToken) -> IdToken:
    if token.type is TokenType.BATTERY_SERIAL:
        validate_serial(token.value)
    elif token.type is not TokenType.NO_AUTHORIZATION and (
        not 1 <= len(token.value) <= 255 or not token.value.isprintable()
    ):
        raise InvalidInput(f"idToken must be 1-255 printable characters, got {token.value!r}")
    return token


def check_batteries(station: Station, batteries: Sequence[BatteryReading]) -> None:
    if not 1 <= len(batteries) <= MAX_PACKS_PER_SWAP:
        raise InvalidInput(f"a swap event carries 1..{MAX_PACKS_PER_SWAP} packs, got {len(batteries)}")
    for battery in batteries:
        station.check_slot(battery.slot_no)
    if len({b.slot_no for b in batteries}) != len(batteries):
        raise InvalidInput("two packs reported in the same slot")
    if len({b.serial for b in batteries}) != len(batteries):
        raise InvalidInput("the same pack reported twice in one event")
