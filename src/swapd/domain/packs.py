"""Pack models and packs, and where a pack is. A pack is always in exactly one place."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

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


def deliverable_energy_wh(nominal_wh: int, soh_bp: int, soc_bp: int) -> int:
    return ceil_div(nominal_wh * soh_bp * soc_bp, PERCENT_BP * PERCENT_BP)
