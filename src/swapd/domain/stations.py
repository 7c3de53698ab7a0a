"""Stations and their numbered slots."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from swapd.domain.errors import InvalidInput
from swapd.domain.pack_choice import PackPolicy

MAX_SLOTS = 512


class SlotState(enum.StrEnum):
    """Availability as OCPP reports it for the EVSE that is the slot."""

    AVAILABLE = "available"  # empty
    OCCUPIED = "occupied"
    UNAVAILABLE = "unavailable"  # out of use (maintenance, fault)


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    slot_count: int
    enabled: bool = True
    charged_soc_bp: int = 9_000  # a pack at or above this SoC is "charged" and may be handed out
    min_soh_bp: int = 7_000  # below this SoH a pack is not handed out and a returned one is flagged
    # Right-sized offers (domain.right_sizing): the lowest SoC offered to a rider whose allowance
    # cannot hold a charged pack; None: right-sizing is off here, such a rider is refused.
    right_size_floor_bp: int | None = None
    policy: PackPolicy = field(
        default_factory=PackPolicy
    )  # how the pack is chosen among those that qualify

    def check_slot(self, slot_no: object) -> int:
        if isinstance(slot_no, bool) or not isinstance(slot_no, int):
            raise InvalidInput(f"slot number must be an integer, got {slot_no!r}")
        if not 1 <= slot_no <= self.slot_count:
            raise InvalidInput(
                f"slot {slot_no} does not exist at station {self.id} (slots 1..{self.slot_count})"
            )
        return slot_no


def validate_slot_count(slot_count: object) -> int:
    if isinstance(slot_count, bool) or not isinstance(slot_count, int):
        raise InvalidInput(f"slot count must be an integer, got {slot_count!r}")
    if not 2 <= slot_count <= MAX_SLOTS:
        raise InvalidInput(f"a station has 2..{MAX_SLOTS} slots, got {slot_count}")
    return slot_count


@dataclass(frozen=True, slots=True)
class Slot:
    station_id: str
    slot_no: int
    state: SlotState
    pack_serial: str | None
