"""Pack models and packs, and where a pack is. A pack is always in exactly one place."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from swapd.domain.errors import InvalidInput
from swapd.domain.quantities import PERCENT_BP, ceil_div

# OCPP carries the serial in idToken (CiString) and batteryData.serialNumber (<= 50 chars).
_SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-/#*+@=]{0,49}$")
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,39}$")


def validate_serial(serial: object) -> str:
    if not isinstance(serial, str) or not _SERIAL_RE.fullmatch(serial):
        raise InvalidInput(
            f"pack serial must be 1-50 printable characters without spaces, got {serial!r}"
        )
    return serial


def validate_code(code: object, what: str) -> str:
    """Identifiers chosen by operators: stations, riders, plans, pack models."""
    if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
        raise InvalidInput(
            f"{what} id must be 1-40 characters of letters, digits, '.', '_' or '-', got {code!r}"
        )
    return code


class PackStatus(enum.StrEnum):
    IN_STOCK = "in_stock"  # registered, in the depot, not in any station yet
    IN_SLOT = "in_slot"
    WITH_RIDER = "with_rider"
    QUARANTINED = "quarantined"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class PackModel:
    code: str
    nominal_wh: int

    def __post_init__(self) -> None:
        validate_code(self.code, "pack model")
        if isinstance(self.nominal_wh, bool) or not isinstance(self.nominal_wh, int):
            raise InvalidInput(f"nominal_wh must be an integer, got {self.nominal_wh!r}")
        if not 1 <= self.nominal_wh <= 1_000_000:
            raise InvalidInput(f"nominal_wh must be 1..1,000,000 Wh, got {self.nominal_wh}")


@dataclass(frozen=True, slots=True)
class Pack:
    serial: str
    model_code: str
    nominal_wh: int
    soh_bp: int
    soc_bp: int
    cycle_count: int
    status: PackStatus
    station_id: str | None = None
    slot_no: int | None = None
    rider_id: str | None = None
    reserved_swap_id: int | None = None
    # When the pack was put where it is: read with a station's stock only (the fleet policy's
    # "rested" rule), None elsewhere.
    placed_at: datetime | None = None

    @property
    def deliverable_wh(self) -> int:
        """Energy a rider can draw from this pack as it is now, rounded up (the hold of R-holds)."""
        return deliverable_energy_wh(self.nominal_wh, self.soh_bp, self.soc_bp)

    def place(self) -> str:
        if self.status is PackStatus.IN_SLOT:
            return f"slot {self.slot_no} of station {self.station_id}"
        if self.status is PackStatus.WITH_RIDER:
            return f"with rider {self.rider_id}"
        return self.status.value.replace("_", " ")

    # -- moves: every change of where a pack is goes through one of these ------------------------

    def _left_slot(self) -> tuple[str, int] | None:
        if (
            self.status is PackStatus.IN_SLOT
            and self.station_id is not None
            and self.slot_no is not None
        ):
            return (self.station_id, self.slot_no)
        return None

    def into_slot(self, station_id: str, slot_no: int, soc_bp: int, soh_bp: int) -> PackMoved:
        """Returned by a rider or restocked by an operator: the pack now sits in that slot."""
        return PackMoved(
            self.serial, PackStatus.IN_SLOT, station_id, slot_no, None, self._left_slot(), soc_bp, soh_bp
        )

    def to_rider(self, rider_id: str, soc_bp: int, soh_bp: int) -> PackMoved:
        """Handed over (R2): the pack leaves its slot with the rider, and starts a cycle (a cycle
        here is one hand-over: one discharge on the road, what the fleet policy spreads)."""
        return PackMoved(
            self.serial,
            PackStatus.WITH_RIDER,
            None,
            None,
            rider_id,
            self._left_slot(),
            soc_bp,
            soh_bp,
            self.cycle_count + 1,
        )

    def to_stock(self, soc_bp: int | None = None, soh_bp: int | None = None) -> PackMoved:
        """Withdrawn to the depot by an operator."""
        return PackMoved(
            self.serial, PackStatus.IN_STOCK, None, None, None, self._left_slot(), soc_bp, soh_bp
        )

    def to_quarantine(self) -> PackMoved:
        """Out of service: it left a station without a known rider, or an operator took it out."""
        return PackMoved(self.serial, PackStatus.QUARANTINED, None, None, None, self._left_slot())

    def to_retired(self) -> PackMoved:
        """Out of the fleet for good."""
        return PackMoved(self.serial, PackStatus.RETIRED, None, None, None, self._left_slot())


@dataclass(frozen=True, slots=True)
class PackMoved:
    """Where a pack goes, as its record's fields, and the slot it leaves (emptied). A move also
    ends any reservation of the pack: a pack that moved can no longer be handed out as offered.
    ``soc_bp``/``soh_bp``/``cycle_count`` of None leave them as they are.

    Invariant: a pack in a slot names its station and slot and no rider; a pack with a rider
    names that rider and no slot; elsewhere it names neither."""

    serial: str
    status: PackStatus
    station_id: str | None
    slot_no: int | None
    rider_id: str | None
    left: tuple[str, int] | None  # (station, slot) the pack was in, emptied by the move
    soc_bp: int | None = None
    soh_bp: int | None = None
    cycle_count: int | None = None  # None: unchanged

    def __post_init__(self) -> None:
        in_slot = self.station_id is not None and self.slot_no is not None
        assert in_slot == (self.status is PackStatus.IN_SLOT), "a pack in a slot names it"
        assert (self.rider_id is not None) == (self.status is PackStatus.WITH_RIDER)


def deliverable_energy_wh(nominal_wh: int, soh_bp: int, soc_bp: int) -> int:
    return ceil_div(nominal_wh * soh_bp * soc_bp, PERCENT_BP * PERCENT_BP)
