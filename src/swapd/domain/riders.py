"""Riders and the tokens that identify them at a station."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from swapd.domain.errors import InvalidInput
from swapd.domain.right_sizing import Consent


class RiderStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Rider:
    id: str
    plan_id: str
    status: RiderStatus = RiderStatus.ACTIVE
    vehicle_packs: int = 1  # how many packs the rider's vehicle takes: the most they may hold
    right_size_consent: Consent = Consent.ASK  # whether to take a pack with less charge

    def __post_init__(self) -> None:
        if not 1 <= self.vehicle_packs <= 8:
            raise InvalidInput(f"a vehicle takes 1..8 packs, got {self.vehicle_packs}")


class TokenType(enum.StrEnum):
    """How the station identified whoever stands in front of it (OCPP IdTokenEnumType + ours)."""

    BATTERY_SERIAL = "BatterySerial"  # the profile's one extension: the pack is the key
    RFID = "ISO14443"
    RFID_15693 = "ISO15693"
    APP = "Central"  # a swap the server itself started for a rider (S02); value = rider id
    OPERATOR = "Operator"  # staff card: restock and withdraw without billing
    NO_AUTHORIZATION = "NoAuthorization"


# The kinds an operator registers (rider cards and staff cards); the others need no table.
CARD_TOKEN_TYPES = frozenset({TokenType.RFID, TokenType.RFID_15693})


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Whom a registered card names: a rider, or staff (``operator``: restock without billing)."""

    rider_id: str | None
    operator: bool


@dataclass(frozen=True, slots=True)
class IdToken:
    type: TokenType
    value: str
