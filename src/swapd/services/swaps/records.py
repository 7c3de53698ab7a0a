"""The values the swap events take and answer: a pack's reading, an Authorize's answer, and what a
BatterySwap event did with each pack (its recorded result, replayed for a repeated event)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from swapd.domain.errors import InvalidInput
from swapd.domain.packs import validate_serial
from swapd.domain.quantities import percent_to_bp

MAX_PACKS_PER_SWAP = 8


class EventType:
    BATTERY_IN = "BatteryIn"
    BATTERY_OUT = "BatteryOut"
    BATTERY_OUT_TIMEOUT = "BatteryOutTimeout"


@dataclass(frozen=True, slots=True)
class BatteryReading:
    """One pack as the station's BMS reader saw it in a slot."""

    slot_no: int
    serial: str
    soc_bp: int
    soh_bp: int

    @classmethod
    def parse(cls, slot_no: object, serial: object, soc: object, soh: object) -> BatteryReading:
        if isinstance(slot_no, bool) or not isinstance(slot_no, int):
            raise InvalidInput(f"slot number must be an integer, got {slot_no!r}")
        return cls(
            slot_no, validate_serial(serial), percent_to_bp(soc, "soc"), percent_to_bp(soh, "soh")
        )


@dataclass(frozen=True, slots=True)
class OfferedPack:
    slot_no: int
    serial: str
    soc_bp: int
    hold_units: int


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    accepted: bool
    reason: str | None
    text: str
    swap_id: int | None = None
    rider_id: str | None = None
    operator: bool = False
    offered: tuple[OfferedPack, ...] = ()
    unit: str | None = None
    available_units: int = 0  # after the holds of this offer
    required_units: int = 0
    currency: str | None = None
    available_value_minor: int = 0  # the prepaid money the available allowance stands for
    # A right-sized offer (domain.right_sizing). ``asks``: not accepted yet, the packs in
    # ``offered`` are reserved for the rider's yes (a second Authorize, or the app) until the
    # offer expires; ``text`` is the question the station shows.
    right_sized: bool = False
    asks: bool = False
    request_id: str | None = None  # the swap's: an app request confirms an offer made earlier

    @property
    def offered_slots(self) -> list[int]:
        return [o.slot_no for o in self.offered]


@dataclass(frozen=True, slots=True)
class PackOutcome:
    serial: str
    slot_no: int
    outcome: str  # a PackOutcomeKind (a plain string when read back from a recorded result)
    rider_id: str | None = None
    usage_units: int = 0
    charged_units: int = 0  # taken from the allowance
    beyond_units: int = 0  # used beyond the allowance (overage or overdrawn)
    revenue_minor: int = 0
    overage_minor: int = 0
    hold_units: int = 0
    anomaly: str | None = None


_OUTCOME_FIELDS = tuple(field.name for field in dataclasses.fields(PackOutcome))


@dataclass(frozen=True, slots=True)
class EventResult:
    swap_id: int | None
    event_type: str
    packs: tuple[PackOutcome, ...]
    repeated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "swap_id": self.swap_id,
            "event_type": self.event_type,
            # Shallow: an outcome holds only plain values (asdict's deep copy cost 2 % of the
            # SQLite writer's time).
            "packs": [{name: getattr(p, name) for name in _OUTCOME_FIELDS} for p in self.packs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventResult:
        return cls(
            data["swap_id"],
            data["event_type"],
            tuple(PackOutcome(**p) for p in data["packs"]),
            repeated=True,
        )
