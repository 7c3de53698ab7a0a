"""The swap lifecycle: a swap, the packs it offers, and the possessions hand-overs open (R2, R3).

Pure: an entity holds what its row holds; a transition checks its preconditions and returns what
changed as an event, which the caller writes. The state values are the strings stored in
``swaps.state`` and ``swap_offers.state``, so an enum member and a stored value compare equal.

    swap:        offered -> completed | abandoned;  refused and returned are recorded as such
    offer:       offered -> taken | released        (taken and released are final)
    possession:  open -> closed                     (closed is final)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from swapd.domain.errors import Conflict
from swapd.domain.riders import IdToken


class SwapState(enum.StrEnum):
    OFFERED = "offered"  # packs reserved and held for the rider; no station event claimed it yet
    REFUSED = "refused"
    COMPLETED = "completed"  # packs left the station in this swap's BatteryOut
    ABANDONED = "abandoned"  # the offered packs were not taken; their holds are released
    RETURNED = "returned"  # packs came back, none was handed out (yet)


class OfferState(enum.StrEnum):
    OFFERED = "offered"  # the pack is reserved and its hold is pending
    TAKEN = "taken"  # the hold moved onto the possession the hand-over opened
    RELEASED = "released"  # the hold is voided and the reservation cleared


class PossessionState(enum.StrEnum):
    """Not stored: a possession is open while its return time (``at_in``) is unset."""

    OPEN = "open"
    CLOSED = "closed"


class PackOutcomeKind(enum.StrEnum):
    """What one BatterySwap event did with one pack, as stored in the event's recorded result."""

    RETURNED = "returned"
    RESTOCKED = "restocked"
    HANDED_OVER = "handed_over"
    WITHDRAWN = "withdrawn"
    RELEASED = "released"
    ALREADY_IN_SLOT = "already_in_slot"
    # The pack is not where the report says; each of these also raises an alert of the same kind.
    FOREIGN_PACK = "foreign_pack"
    PACK_TWO_PLACES = "pack_two_places"
    PACK_NOT_ASSIGNED = "pack_not_assigned"
    HANDOVER_WITHOUT_RIDER = "handover_without_rider"
    WITHDRAW_MISMATCH = "withdraw_mismatch"
    # Replayed offline events (services/swaps/offline.py): a reading older than what is known of
    # the pack changes nothing; a newer one moves it from where swapd had it. Both raise an
    # "offline_conflict" alert.
    STALE_READING = "stale_reading"
    RELOCATED = "relocated"


# -- events: what a transition changed ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwapCompleted:
    swap_id: int
    previous: SwapState
    state: SwapState = SwapState.COMPLETED


@dataclass(frozen=True, slots=True)
class SwapAbandoned:
    swap_id: int
    state: SwapState = SwapState.ABANDONED


@dataclass(frozen=True, slots=True)
class OfferTaken:
    """The offer's pending hold now belongs to the possession the hand-over opens."""

    swap_id: int
    pack_serial: str
    hold_units: int
    hold_transfer_id: int | None
    state: OfferState = OfferState.TAKEN


@dataclass(frozen=True, slots=True)
class OfferReleased:
    """The offer's pending hold is to be voided and the pack's reservation cleared."""

    swap_id: int
    pack_serial: str
    slot_no: int
    hold_units: int
    hold_transfer_id: int | None
    state: OfferState = OfferState.RELEASED


@dataclass(frozen=True, slots=True)
class PossessionClosed:
    """The return readings of a possession; field names are those of the possession's record."""

    possession_id: int
    swap_in_id: int
    station_in: str
    slot_in: int
    at_in: datetime
    soc_in_bp: int
    soh_in_bp: int
    usage_units: int
    anomaly: str | None


@dataclass(frozen=True, slots=True)
class PossessionOpened:
    """R2: a pack handed to a rider, with the hold that covers it; field names are those of the
    possession's record."""

    rider_id: str
    pack_serial: str
    plan_id: str
    swap_out_id: int | None
    station_out: str
    slot_out: int | None
    at_out: datetime
    soc_out_bp: int
    soh_out_bp: int
    hold_units: int
    hold_transfer_id: int | None

    def __post_init__(self) -> None:
        assert self.hold_units >= 0, "a hold is never negative"
        assert self.hold_units == 0 or self.hold_transfer_id is not None, "units held have a hold"


# -- entities -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Swap:
    id: int
    station_id: str
    rider_id: str | None
    state: SwapState
    request_id: str | None = None
    reason: str | None = None  # a refused swap's RefusalReason
    token: IdToken | None = None  # the token it was authorized (or recorded) with

    @property
    def is_open(self) -> bool:
        """Still offered: the only state a station event or a timeout may abandon."""
        return self.state is SwapState.OFFERED

    def complete(self) -> SwapCompleted:
        """Packs left the station in this swap's BatteryOut. Allowed from every state: the
        station reports a fact (the packs are gone), so the record follows it; e.g. a return and
        a hand-out in one request complete a ``returned`` swap, a late hand-out an abandoned one."""
        return SwapCompleted(self.id, self.state)

    def abandon(self) -> SwapAbandoned:
        if not self.is_open:
            raise Conflict(f"swap {self.id} is {self.state}, not offered: it cannot be abandoned")
        return SwapAbandoned(self.id)


@dataclass(frozen=True, slots=True)
class Offer:
    """One pack a swap offered, with the pending hold placed on the rider's allowance for it.

    Invariant: ``hold_transfer_id`` is None exactly when nothing was held (``hold_units`` 0 or a
    hold that was never needed); ``hold_units`` is 0..MAX_TRANSFER_AMOUNT.
    """

    swap_id: int
    pack_serial: str
    slot_no: int
    hold_units: int
    hold_transfer_id: int | None
    state: OfferState

    def __post_init__(self) -> None:
        assert self.hold_units >= 0, "a hold is never negative"

    @property
    def is_open(self) -> bool:
        return self.state is OfferState.OFFERED

    def take(self) -> OfferTaken:
        self._require_open("taken")
        return OfferTaken(self.swap_id, self.pack_serial, self.hold_units, self.hold_transfer_id)

    def release(self) -> OfferReleased:
        self._require_open("released")
        return OfferReleased(
            self.swap_id, self.pack_serial, self.slot_no, self.hold_units, self.hold_transfer_id
        )

    def _require_open(self, verb: str) -> None:
        if not self.is_open:
            raise Conflict(
                f"pack {self.pack_serial} of swap {self.swap_id} is {self.state}: it cannot be {verb}"
            )


@dataclass(frozen=True, slots=True)
class Possession:
    """R2: a pack with a rider, from hand-over to return. A pack has at most one open."""

    id: int
    rider_id: str
    pack_serial: str
    plan_id: str
    at_out: datetime
    soc_out_bp: int
    soh_out_bp: int
    hold_units: int
    hold_transfer_id: int | None
    at_in: datetime | None = None
    swap_out_id: int | None = None  # the swap it was handed over in (None: issued outside one)
    station_out: str | None = None
    slot_out: int | None = None

    @property
    def state(self) -> PossessionState:
        return PossessionState.OPEN if self.at_in is None else PossessionState.CLOSED

    @property
    def held_units(self) -> int:
        """What the pending hold still covers: nothing if no hold was placed."""
        return self.hold_units if self.hold_transfer_id is not None else 0

    def close(
        self,
        *,
        swap_in_id: int,
        station_in: str,
        slot_in: int,
        at_in: datetime,
        soc_in_bp: int,
        soh_in_bp: int,
        usage_units: int,
        anomaly: str | None,
    ) -> PossessionClosed:
        if self.state is not PossessionState.OPEN:
            raise Conflict(f"the possession of pack {self.pack_serial} is already closed")
        assert usage_units >= 0, "metering never yields negative usage"
        return PossessionClosed(
            self.id, swap_in_id, station_in, slot_in, at_in, soc_in_bp, soh_in_bp, usage_units, anomaly
        )
